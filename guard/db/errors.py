"""What went wrong with a database, in words an operator can act on.

A driver's own message names the host, the user, sometimes the password or
the SQL, so it is never shown. :func:`describe` reads the driver's error
(PostgreSQL's psycopg, MySQL's PyMySQL, SQLite) and answers with one of a
few fixed sentences: connection refused, no server at a Unix socket, host
unknown or unreachable, authentication failed, database missing, a privilege
missing, file cannot be opened. Anything else is named by its kind only.
"""

from __future__ import annotations

import re
from typing import Final

import sqlalchemy

from guard.db import api

REFUSED: Final = (
    "connection refused: is the database server running and listening on that host and port?"
)
UNREACHABLE: Final = "cannot reach the database server: unknown host, or no route to it"
NO_SOCKET: Final = (
    "no database server listens on that Unix socket: is it running, and is the socket's "
    "directory the one the URL names?"
)
AUTH_FAILED: Final = "authentication failed: check the user and password of [database] connection"
NO_ACCESS: Final = "the user may not use that database: grant it the rights on it"
MISSING_DATABASE: Final = (
    "the database does not exist on the server: create it first (CREATE DATABASE)"
)
SQLITE_CANNOT_OPEN: Final = "cannot open the SQLite file: its directory must exist and be writable"
CONNECTION_LOST: Final = "the connection to the database server was lost"
NOT_PERMITTED: Final = (
    "the database user lacks a privilege this needs (guard db upgrade creates tables): "
    "grant it on the database, or make the user the database's owner (PostgreSQL 15 and "
    "later no longer let every user create tables in the public schema)"
)
BAD_URL: Final = "the database URL is not valid, or names a driver that is not installed"

# MySQL/MariaDB client and server error numbers.
_MYSQL: Final = {
    1045: AUTH_FAILED,  # ER_ACCESS_DENIED_ERROR
    1044: NO_ACCESS,  # ER_DBACCESS_DENIED_ERROR
    1049: MISSING_DATABASE,  # ER_BAD_DB_ERROR
    1142: NOT_PERMITTED,  # ER_TABLEACCESS_DENIED_ERROR: "CREATE command denied"
    2005: UNREACHABLE,  # CR_UNKNOWN_HOST
    2006: CONNECTION_LOST,  # CR_SERVER_GONE_ERROR
    2013: CONNECTION_LOST,  # CR_SERVER_LOST
}
# SQLSTATE 42501: "permission denied for schema public" and the like.
_PG_INSUFFICIENT_PRIVILEGE: Final = "42501"
# libpq's connection messages (a failed connection carries no SQLSTATE), by
# the start of the server's FATAL line or libpq's own words.
_POSTGRESQL: Final = (
    (re.compile(r"connection refused"), REFUSED),
    (re.compile(r"on socket .* failed: no such file or directory"), NO_SOCKET),
    (re.compile(r"password authentication failed|no password supplied"), AUTH_FAILED),
    (re.compile(r'fatal:\s+role "'), AUTH_FAILED),  # role "x" does not exist
    (re.compile(r'fatal:\s+database "'), MISSING_DATABASE),  # database "x" does not exist
    (re.compile(r"resolve host|translate host name|no route to host|timeout"), UNREACHABLE),
    (re.compile(r"server closed the connection"), CONNECTION_LOST),
)


def describe(error: BaseException) -> str:
    """One sentence saying what failed; it names no host, user, password, path or SQL."""
    if isinstance(error, sqlalchemy.exc.ArgumentError):
        return BAD_URL  # its text quotes the URL, password included
    orig = getattr(error, "orig", None) or error
    errno = api.mysql_errno(orig)
    if errno is not None:
        if errno == 2003:  # CR_CONN_HOST_ERROR: refused, no socket file, or the host unknown
            text = str(orig).lower()
            if "refused" in text:
                return REFUSED
            return NO_SOCKET if "no such file or directory" in text else UNREACHABLE
        return _MYSQL.get(errno, _kind(error, orig))
    module = type(orig).__module__
    message = str(orig).lower()
    if module.startswith("psycopg"):
        if getattr(orig, "sqlstate", None) == _PG_INSUFFICIENT_PRIVILEGE:
            return NOT_PERMITTED
        for pattern, sentence in _POSTGRESQL:
            if pattern.search(message):
                return sentence
    if module == "sqlite3" and "unable to open database file" in message:
        return SQLITE_CANNOT_OPEN
    return _kind(error, orig)


def _kind(error: BaseException, orig: BaseException) -> str:
    if orig is error:
        return f"database error ({type(error).__name__})"
    return f"database error ({type(error).__name__}: {type(orig).__name__})"
