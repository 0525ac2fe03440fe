"""Whether this process can write its SQLite file, checked once before it serves.

SQLite opens a file it may not write read-only, without a word: a service
whose user could read but not write the database (a file left owned by root
after ``guard db upgrade`` ran as root, a directory the service user cannot
create the file's ``-wal`` and ``-shm`` in) started, said ``ok`` on its
healthcheck and answered every write 503, or did not start and said only
"database error (OperationalError)". :func:`check_writable` runs a write
transaction that it rolls back (nothing changes) and, when SQLite refuses,
raises :class:`NotWritable` saying which file or directory this process's
user cannot write and what to do, so that ``guard serve``, the WSGI entry
point and ``guard db upgrade`` refuse to start with that message.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import urllib.parse
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from guard.db import api

#: A write SQLite must do (take the write lock, change the schema), then undo.
_PROBE = ("BEGIN IMMEDIATE", "CREATE TABLE guard_write_probe (x INTEGER)", "ROLLBACK")
#: SQLite's answers that mean "this process may not write there".
_REFUSALS = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
#: What SQLite creates beside a database in WAL mode (guard's journal mode).
_SIDE_FILES = ("-wal", "-shm")


class NotWritable(ValueError):
    """This process's user cannot write the SQLite database (its file, directory or side files)."""


def database_path(url: str) -> Path | None:
    """The file a ``sqlite:`` URL names (a URI filename read as SQLite reads it); else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database
    if database.startswith("file:") and str(parsed.query.get("uri", "")).lower() in {
        "true", "yes", "on", "y", "t", "1",
    }:  # fmt: skip
        database = urllib.parse.unquote(urllib.parse.urlsplit(database).path)
    return Path(database).absolute()


def check_writable(url: str) -> None:
    """Raise :class:`NotWritable` when ``url`` is a SQLite file this process cannot write.

    Does nothing for other databases. A file that does not exist yet is not
    created: only its directory is checked (``guard db upgrade`` creates it).
    Otherwise one connection opens the file as guard's engine does (WAL
    journal) and runs a write transaction that is rolled back. A database
    busy with another writer for longer than the busy timeout is taken as
    writable (another process writes it; the requests will queue as usual).
    """
    path = database_path(url)
    if path is None:
        return
    engine = api.create_engine(url, poolclass=NullPool)  # refuses a URL that names no file
    try:
        if not path.exists():
            # A missing directory is reported as before (the file cannot be opened).
            if path.parent.is_dir() and not os.access(
                path.parent, os.W_OK | os.X_OK, effective_ids=True
            ):
                raise NotWritable(_why(path, sqlite_said="no such file"))
            return
        _probe(engine)
    except (sqlite3.Error, sqlalchemy.exc.DBAPIError) as error:
        orig = getattr(error, "orig", None) or error
        name = getattr(orig, "sqlite_errorname", "") or type(orig).__name__
        if name.startswith("SQLITE_BUSY"):
            return
        if not name.startswith(_REFUSALS):
            raise  # not about writing (not a database, ...): reported as before
        raise NotWritable(_why(path, sqlite_said=name)) from None
    finally:
        engine.dispose()


def _probe(engine: sqlalchemy.Engine) -> None:
    """Open the file as guard does (WAL), take the write lock, change the schema, roll back."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for statement in _PROBE:
            cursor.execute(statement)
    finally:
        connection.close()


def _why(path: Path, *, sqlite_said: str) -> str:
    """Which of the file, its directory or its side files this user cannot write, and the fix."""
    user = _user()
    directory = path.parent
    fix = f"give {user}, which guard runs as, write access to it"
    try:
        read_only_fs = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_fs = False
    if read_only_fs:
        return f"the SQLite file {path} is on a read-only file system: move it to a writable one"
    if path.exists() and not os.access(path, os.W_OK, effective_ids=True):
        return f"the SQLite file {path} is read-only for {user}: {fix}"
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=True):
        return (
            f"the directory {directory} of the SQLite file is not writable by {user}: SQLite "
            f"creates the file's -wal and -shm files beside it; {fix}"
        )
    for suffix in _SIDE_FILES:
        side = Path(f"{path}{suffix}")
        if side.exists() and not os.access(side, os.W_OK, effective_ids=True):
            return (
                f"{side} (SQLite's {suffix[1:]} file of the database) is read-only for {user}, "
                f"left by a process of another user: remove it while no guard runs, or {fix}"
            )
    return f"the SQLite file {path} cannot be written by {user} (SQLite said {sqlite_said})"


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
