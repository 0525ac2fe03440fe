"""Engine factory and the one way guard runs a database transaction.

SQLite (a file) is the embedded default; PostgreSQL (psycopg 3) and
MySQL/MariaDB (PyMySQL) the multi-worker choices; the same queries run on
all three. What differs is set up here, once per engine:

* SQLite: WAL journal (readers never block the writer), foreign keys on, a
  busy timeout, and write transactions opened with ``BEGIN IMMEDIATE``
  (:func:`begin_write`) so that two writers queue on the busy timeout
  instead of failing at once with "database is locked" when a deferred
  reader tries to upgrade its lock. The BEGIN is emitted where a
  transaction starts, not by an engine ``begin`` event listener: any
  listener of SQLAlchemy's connection events makes every statement of the
  engine pay for event dispatch (measured: a third of a single select).
* PostgreSQL: pre-ping on checkout (a restarted server costs one reconnect,
  not a failed request), a statement timeout and a lock timeout so that a
  stuck query ends as ``Unavailable`` instead of holding a worker forever.
  The pool's size is the caller's (``guard.deploy`` passes ``[database]``).
* MySQL/MariaDB: the same pre-ping and timeouts (``max_statement_time``,
  ``innodb_lock_wait_timeout``), utf8mb4, strict SQL mode, and READ
  COMMITTED as on PostgreSQL: InnoDB's default REPEATABLE READ would keep a
  transaction's first snapshot, so a get-or-create that lost an insert race
  could never read the winner's row.

:func:`run_in_transaction` runs one unit of work in one transaction and
retries the whole of it, a bounded number of times, when the database
reports lock contention (a read also after a dropped connection); it turns
every other database fault except an integrity violation into
:class:`guard.exception.Unavailable`, whose detail names no host, user or SQL.
:func:`run_read` gives the same retries and errors to a single-statement
read that runs on the pool's DBAPI connection (:mod:`guard.db.prepared`).

Why not oslo.db's enginefacade and exception filters (weighed for MySQL
support): its retry decorator retries a write after a dropped connection
(``retry_on_disconnect``), whose COMMIT may have happened; it has no
``BEGIN IMMEDIATE`` for SQLite writers and no AUTOCOMMIT single-statement
read; and it costs more per transaction (CPU per transaction of one select,
measured against this module on the same databases: SQLite file 970 us
against 89 us, as it gives a file NullPool and reconnects every time;
MariaDB 416 against 181; PostgreSQL 1048 against 677). What guard needs of
its error filters is small: :func:`is_retryable` and :mod:`guard.db.errors`.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from guard import exception

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a SQLite connection waits for another writer's lock (seconds).
SQLITE_BUSY_TIMEOUT = 10.0
#: SQLite memory map and page cache sizes (per connection; the map is shared).
SQLITE_MMAP_BYTES = 256 * 1024 * 1024
SQLITE_CACHE_KIB = 32 * 1024
#: PostgreSQL statement and lock timeouts (milliseconds).
POSTGRESQL_STATEMENT_TIMEOUT_MS = 30_000
POSTGRESQL_LOCK_TIMEOUT_MS = 10_000
POSTGRESQL_CONNECT_TIMEOUT_S = 10
#: MySQL/MariaDB statement and lock timeouts (seconds: the servers' unit),
#: connect timeout, and the age after which a pooled connection is replaced
#: (before the server's ``wait_timeout`` closes it under us).
MYSQL_STATEMENT_TIMEOUT_S = 30
MYSQL_LOCK_TIMEOUT_S = 10
MYSQL_CONNECT_TIMEOUT_S = 10
MYSQL_POOL_RECYCLE_S = 3600
#: Attempts of one transaction when the database reports lock contention,
#: and the time after which no new attempt starts (each may wait for a lock).
MAX_ATTEMPTS = 6
RETRY_BUDGET_S = 15.0
_BACKOFF_BASE_S = 0.01

# PostgreSQL SQLSTATEs that mean "the transaction lost a race; run it again":
# serialization_failure, deadlock_detected, lock_not_available.
_PG_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
# MySQL/MariaDB error numbers of the same meaning: ER_LOCK_WAIT_TIMEOUT,
# ER_LOCK_DEADLOCK, and ER_CHECKREAD ("record has changed since last read").
_MYSQL_RETRYABLE_ERRNOS = frozenset({1205, 1213, 1020})
#: The names the MySQL family goes by in SQLAlchemy URLs and dialects.
MYSQL_BACKENDS = frozenset({"mysql", "mariadb"})


class DatabaseURLError(ValueError):
    """A database URL guard cannot use, said in guard's own words.

    The message names what is wrong and what to write instead, never the URL
    itself (it may carry a password): the commands show it as it is.
    """


#: What a SQLite URL that names no file, or one that has a host part, is told.
SQLITE_FILE_HELP = "name a file, sqlite:///relative/path.sqlite or sqlite:////absolute/path.sqlite"

#: ``uri=`` values SQLAlchemy's pysqlite dialect takes as true (``sqlalchemy.util.asbool``).
_SQLITE_URI_ON = re.compile(r"\s*(true|yes|on|y|t|1)\s*$", re.IGNORECASE)


def _check_sqlite_url(url: sqlalchemy.URL) -> None:
    """Refuse a SQLite URL that names no file guard could keep its rows in.

    An in-memory database (``sqlite://``, ``:memory:``, ``mode=memory``)
    lives as long as one connection: ``guard db upgrade`` migrated one and
    reported success, and ``guard serve`` started and answered every request
    503 (each pooled connection opened an empty database). ``sqlite://var/x``
    (two slashes) makes ``var`` a host, which SQLite has none of. With
    ``uri=true`` the database is SQLite's URI filename: ``file::memory:`` is
    in memory, as is any file of the ``memdb`` VFS (``vfs=memdb``), and an
    empty ``file:`` a temporary file deleted on close.
    """
    if url.host:
        raise DatabaseURLError(f"a SQLite URL has no host part: {SQLITE_FILE_HELP}")
    database = url.database
    if (
        database
        and database.startswith("file:")
        and _SQLITE_URI_ON.match(str(url.query.get("uri")))
    ):
        database = urllib.parse.urlsplit(database).path  # as SQLite reads a URI filename
    in_memory = url.query.get("mode") == "memory" or url.query.get("vfs") == "memdb"
    if database in (None, "", ":memory:") or in_memory:
        raise DatabaseURLError(
            "an in-memory SQLite database is gone when its connection closes: " + SQLITE_FILE_HELP
        )


class _RowsWithheld(logging.Filter):
    """SQLAlchemy's DEBUG line of each fetched row, with the row's values withheld."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Row %r":
            record.msg, record.args = "Row (values withheld)", ()
        return True


_ROWS_WITHHELD = _RowsWithheld()
# The logger of every engine made without ``echo`` (guard never sets it).
_ENGINE_LOG = logging.getLogger("sqlalchemy.engine.Engine")


def create_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``: ``sqlite:///file``, ``postgresql[+psycopg]://``
    or ``mysql[+pymysql]://`` (``mariadb[+pymysql]://``).

    A bare ``postgresql://`` URL is given the psycopg 3 driver, a bare
    ``mysql://`` or ``mariadb://`` PyMySQL. Extra keyword arguments go to
    :func:`sqlalchemy.create_engine` (pool sizes, echo). A backend guard
    does not support, or a SQLite URL that names no file, is
    :class:`DatabaseURLError`.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    # Statement parameters are ids (uuids, keystone ids of any shape, another
    # project's filter): SQLAlchemy's statement log (on whenever a logging
    # configuration sets its logger to INFO) and its error texts leave them
    # out, as no pattern could find a non-hex id in them; its row log (DEBUG)
    # likewise.
    kwargs.setdefault("hide_parameters", True)
    if _ROWS_WITHHELD not in _ENGINE_LOG.filters:
        _ENGINE_LOG.addFilter(_ROWS_WITHHELD)
    if backend == "sqlite":
        _check_sqlite_url(parsed)
        return _create_sqlite_engine(parsed, **kwargs)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return _create_postgresql_engine(parsed, **kwargs)
    if backend in MYSQL_BACKENDS:
        if parsed.drivername == backend:
            parsed = parsed.set(drivername=f"{backend}+pymysql")
        return _create_mysql_engine(parsed, **kwargs)
    raise DatabaseURLError(
        f"unsupported database backend {backend!r}: use sqlite, postgresql or mysql"
    )


def display_url(url: str) -> str:
    """``url`` as an operator may see it: credentials (and query options) replaced by ``***``.

    What ``guard db`` names as the database it works on; the password, and
    the user name with it, never reach a terminal or a log.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # A host part (``sqlite://var/x``, a slash short) shown as written.
        return f"{parsed.drivername}://{parsed.host or ''}/{parsed.database or ''}"
    credentials = "***@" if parsed.username or parsed.password else ""
    host = parsed.host or ""
    if "@" in host:  # an "@" left unencoded in the password: the rest of it is no host
        credentials, host = "***@", host.rsplit("@", 1)[1]
    port = f":{parsed.port}" if parsed.port else ""
    options = "?***" if parsed.query else ""
    where = f"{host}{port}/{parsed.database or ''}"
    return f"{parsed.drivername}://{credentials}{where}{options}"


def _create_sqlite_engine(url: sqlalchemy.URL, **kwargs: Any) -> Engine:
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, **kwargs)

    # A pool event, paid once per new connection. pysqlite keeps its own
    # transaction handling: it opens a (deferred) transaction before the first
    # INSERT, UPDATE or DELETE and none for a SELECT, so a single read runs
    # without BEGIN; writers and multi-statement reads BEGIN explicitly in
    # run_in_transaction, which pysqlite then leaves alone.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            # Safe with WAL: a power loss may drop the last commits, never corrupt.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Read pages through a memory map and keep more of them cached: a
            # list page reads rows scattered over the file (uuid order is not
            # insertion order), and a read() per page would dominate its cost.
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        finally:
            cursor.close()

    return engine


def begin_write(conn: Connection) -> sqlalchemy.RootTransaction:
    """Begin ``conn``'s transaction as a writer; on SQLite with ``BEGIN IMMEDIATE``.

    The write lock is taken at once, so a second writer waits on the busy
    timeout instead of failing when its deferred read lock cannot be
    upgraded. Other databases begin as usual.
    """
    transaction = conn.begin()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    return transaction


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Put the file in WAL mode (once per file: the mode persists).

    When several connections open a new file at the same moment (concurrent
    ``guard db upgrade`` runs), SQLite answers all but one SQLITE_BUSY at
    once, without waiting on the busy timeout. Hand-written retry, for that
    one statement only, bounded by the same timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = (getattr(error, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(_BACKOFF_BASE_S)


def _create_postgresql_engine(url: sqlalchemy.URL, **kwargs: Any) -> Engine:
    options = (
        f"-c statement_timeout={POSTGRESQL_STATEMENT_TIMEOUT_MS} "
        f"-c lock_timeout={POSTGRESQL_LOCK_TIMEOUT_MS}"
    )
    connect_args = {"options": options, "connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S}
    kwargs.setdefault("pool_pre_ping", True)
    return sqlalchemy.create_engine(url, connect_args=connect_args, **kwargs)


def _create_mysql_engine(url: sqlalchemy.URL, **kwargs: Any) -> Engine:
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    connect_args = {"connect_timeout": MYSQL_CONNECT_TIMEOUT_S}
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", MYSQL_POOL_RECYCLE_S)
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # MariaDB bounds any statement (seconds); MySQL only SELECTs (ms).
        mariadb = "mariadb" in dbapi_connection.get_server_info().lower()
        statement_timeout = (
            f"max_statement_time={MYSQL_STATEMENT_TIMEOUT_S}"
            if mariadb
            else f"max_execution_time={MYSQL_STATEMENT_TIMEOUT_S * 1000}"
        )
        cursor = dbapi_connection.cursor()
        try:
            # Strict: a too-long value is an error, never silently truncated.
            cursor.execute(
                "SET SESSION sql_mode='TRADITIONAL,NO_AUTO_VALUE_ON_ZERO', "
                f"innodb_lock_wait_timeout={MYSQL_LOCK_TIMEOUT_S}, "
                f"lock_wait_timeout={MYSQL_LOCK_TIMEOUT_S}, {statement_timeout}"
            )
        finally:
            cursor.close()

    return engine


def mysql_errno(error: BaseException | None) -> int | None:
    """The server's error number of a PyMySQL error (``None`` for other drivers)."""
    if error is None or not type(error).__module__.startswith("pymysql"):
        return None
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_retryable(error: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether ``error`` means the transaction lost a race and may simply run again.

    Each of these errors guarantees that the transaction did not commit, so
    running a write again cannot apply it twice. A dropped connection is not
    one of them: see :func:`may_retry`.
    """
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _PG_RETRYABLE_SQLSTATES:
        return True
    if mysql_errno(error.orig) in _MYSQL_RETRYABLE_ERRNOS:
        return True
    # sqlite3 (Python 3.11+) names the primary result code: SQLITE_BUSY is
    # "database is locked" (another connection writes), SQLITE_LOCKED a
    # conflict within one shared cache; extended codes add a suffix.
    sqlite_error = getattr(error.orig, "sqlite_errorname", "") or ""
    return sqlite_error.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def may_retry(error: sqlalchemy.exc.DBAPIError, *, write: bool) -> bool:
    """Whether a transaction that failed with ``error`` may run again.

    A read changes nothing, so it may also run again after the connection
    dropped. A write may not: had the connection dropped during COMMIT, the
    server may have committed it without the answer reaching us, and a
    second run would apply it twice or answer 404/409 for what succeeded.
    Its outcome is unknown, which only ``Unavailable`` says truthfully.
    """
    if is_retryable(error):
        return True
    return not write and error.connection_invalidated


def run_in_transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    write: bool,
    single_statement: bool = False,
) -> T:
    """Run ``work(connection)`` in one transaction: commit on return, roll back on error.

    The whole transaction is retried, with jittered exponential backoff, up
    to :data:`MAX_ATTEMPTS` times (none starting after :data:`RETRY_BUDGET_S`)
    while the database reports lock contention, or for a read a dropped
    connection (:func:`may_retry`); ``work`` must therefore have no effect
    outside the database. An :class:`sqlalchemy.exc.IntegrityError` is
    re-raised for the caller to interpret; any other database error becomes
    ``Unavailable``. Errors of guard's own (``GuardError``) raised by
    ``work`` roll back and pass through.
    """

    def attempt() -> T:
        with engine.connect() as conn:
            if not write:
                _begin_read(conn, single_statement)
                # Rolled back when the connection returns to the pool:
                # a read has nothing to commit.
                return work(conn)
            with begin_write(conn):
                return work(conn)

    return _with_retries(attempt, write=write)


def run_read(read: Callable[[], T]) -> T:
    """Run ``read()``, one single-statement read with a connection of its own, as
    :func:`run_in_transaction` runs a read: the same retries and the same errors.

    For :class:`guard.db.prepared.PreparedRead`, which reads on the pool's
    DBAPI connection and raises what ``Connection.execute`` raises.
    """
    return _with_retries(read, write=False)


def _with_retries(attempt: Callable[[], T], *, write: bool) -> T:
    """``attempt()``, run again while :func:`may_retry` allows; database faults mapped."""
    deadline = time.monotonic() + RETRY_BUDGET_S
    for number in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt()
        except sqlalchemy.exc.IntegrityError:
            raise
        except sqlalchemy.exc.DBAPIError as error:
            again = number < MAX_ATTEMPTS and time.monotonic() < deadline
            if again and may_retry(error, write=write):
                time.sleep(_BACKOFF_BASE_S * 2**number * random.uniform(0.5, 1.5))  # noqa: S311 jitter
                continue
            failure: sqlalchemy.exc.SQLAlchemyError = error
        except sqlalchemy.exc.SQLAlchemyError as error:
            failure = error
        # Logged and raised outside the except block: oslo.log appends the
        # exception being handled to a WARNING line, the driver's text with it
        # (the server's host and port, the database user).
        raise _unavailable(failure) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _begin_read(conn: Connection, single_statement: bool) -> None:
    """Set up a read: one transaction for several statements, none for one.

    One statement is atomic on its own, so it runs without BEGIN (SQLite) or
    in AUTOCOMMIT (PostgreSQL). Measured need: the BEGIN/ROLLBACK pair was a
    tenth of a guarded get's cost (guard.tools.bench.repository). Several
    statements read one snapshot: PostgreSQL's first statement begins the
    transaction; SQLite's pysqlite would not, so BEGIN is explicit.
    """
    dialect = conn.dialect.name
    if single_statement:
        if dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
    elif dialect == "sqlite":
        conn.exec_driver_sql("BEGIN")


def _unavailable(error: Exception) -> exception.Unavailable:
    """Log a database fault by kind only (its text may name host, user or SQL)."""
    orig = getattr(error, "orig", None)
    LOG.warning(
        "database error %s (%s, code %s)",
        type(error).__name__,
        type(orig).__name__ if orig is not None else "-",
        getattr(orig, "sqlstate", None) or mysql_errno(orig) or "-",
    )
    return exception.Unavailable()
