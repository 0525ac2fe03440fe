"""A single-statement read compiled once per dialect and run on the pool's DBAPI connection.

Written for a measured need, beside SQLAlchemy rather than instead of it.
A guarded ``get`` is one SELECT of a consumer with its owners. Run through
``Connection.execute`` (Connection construction, cache-key generation, an
execution context, a ``CursorResult``) it cost three quarters of the whole
guarded get, about 40 us of 53 on a SQLite file (cProfile: 74%); the same
SQL on the pooled DBAPI cursor costs 15-18 us with the pool's checkout and
checkin, and the guarded get went from 0.66x a plain engine's Core select
to 1.4x (in process, with ``guard.tools.bench.repository``'s get lines).

:class:`PreparedRead` keeps what matters of SQLAlchemy and skips the rest:

* the SQL is SQLAlchemy's own compilation of the statement for the engine's
  dialect (after its first connect, as ``Connection.execute`` compiles it),
  with the dialect's bind processors and its result processors (chosen, as
  SQLAlchemy chooses them, from the cursor's description), so SQLite
  datetimes, MariaDB ``VARBINARY`` ids and the rest come out exactly as
  through a ``Connection``;
* the connection is the pool's (``Engine.raw_connection``): pre-ping,
  recycling, size bounds and the reset on checkin (a rollback) are the pool's;
* the transaction handling is the one :func:`guard.db.api.run_in_transaction`
  gives a single-statement read: none on SQLite (pysqlite begins nothing
  for a SELECT), AUTOCOMMIT on PostgreSQL (reset before checkin), the
  session's READ COMMITTED on MySQL/MariaDB (rolled back on checkin);
* a driver error is wrapped as ``Connection.execute`` wraps it
  (:class:`sqlalchemy.exc.DBAPIError`, ``connection_invalidated`` when the
  dialect says the connection is gone), and a dropped connection is
  invalidated in the pool (it is never handed out again), so the caller's
  retries (:func:`guard.db.api.run_read`) behave as for a ``Connection``.

An engine with connection event listeners (statement tracing, tests that
record SQL) or with its statement log on (``echo``, or the
``sqlalchemy.engine`` logger at INFO) must see every statement:
:func:`needs_connection` says when the caller must take the ``Connection``
path instead.

Three of SQLAlchemy's internals are used as ``Connection`` uses them: the
engine's and dialect's ``_has_events`` flags and ``Pool._invalidate``.
``tests/functional/test_db_prepared.py`` holds what they do for this module
(listeners seen, a dead connection never handed out again) on every backend,
so a SQLAlchemy upgrade that changes them fails there, not in service.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.events import ConnectionEvents, DialectEvents
from sqlalchemy.pool import PoolProxiedConnection

_Processor = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


#: The events only a ``Connection`` fires (``handle_error`` and the
#: ``do_*`` hooks are the dialect's).
_CONNECTION_EVENTS: Final = tuple(
    name for name in dir(ConnectionEvents) if not name.startswith("_") and name != "dispatch"
)
_DIALECT_EVENTS: Final = tuple(
    name for name in dir(DialectEvents) if not name.startswith("_") and name != "dispatch"
)


def needs_connection(engine: Engine) -> bool:
    """Whether a read on ``engine`` must go through a ``Connection`` to be seen.

    ``Connection`` and dialect events (``before_cursor_execute``,
    ``handle_error``, ...) fire only on a ``Connection``, and only a
    ``Connection`` writes SQLAlchemy's statement log. SQLAlchemy's own flags
    say at once that an engine never had such a listener (the common case);
    once set, they stay set after a listener is removed, so the listeners
    are then looked at. Pool events (``connect``, ``checkout``) fire on both
    paths.
    """
    if engine.logger.isEnabledFor(logging.INFO):
        return True
    if not (engine._has_events or engine.dialect._has_events):
        return False
    return any(getattr(engine.dispatch, name) for name in _CONNECTION_EVENTS) or any(
        getattr(engine.dialect.dispatch, name) for name in _DIALECT_EVENTS
    )


class _Plan:
    """The statement as one dialect runs it: SQL, how to bind, how to read a row."""

    __slots__ = ("autocommit", "bind", "processors", "sql", "types")

    def __init__(self, statement: sqlalchemy.Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        for name in names:
            if not compiled.binds[name].required:
                raise ValueError(f"bind {name!r} has a value: a prepared read takes every value")
        escaped = compiled.escaped_bind_names
        binders = [
            (
                escaped.get(name, name),
                name,
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) or _same,
            )
            for name in names
        ]
        if compiled.positional:
            sequence = dialect.execute_sequence_format

            def bind(values: Mapping[str, Any]) -> Any:
                return sequence([process(values[name]) for _, name, process in binders])
        else:

            def bind(values: Mapping[str, Any]) -> Any:
                return {key: process(values[name]) for key, name, process in binders}

        self.sql: str = compiled.string
        self.bind = bind
        self.types = [column.type.dialect_impl(dialect) for column in statement.selected_columns]
        # SQLite, PostgreSQL and MySQL/MariaDB: a single read as run_in_transaction runs it.
        self.autocommit = dialect.name == "postgresql"
        # Chosen from the first cursor's description, as SQLAlchemy does (and caches).
        self.processors: list[tuple[int, _Processor]] | None = None

    def read_processors(self, dialect: Dialect, description: Sequence[Any]) -> None:
        """The result processors of the columns that have one, from the cursor's types."""
        processors: list[tuple[int, _Processor]] = []
        for index, (impl, column) in enumerate(zip(self.types, description, strict=True)):
            processor = impl.result_processor(dialect, column[1])
            if processor is not None:
                processors.append((index, processor))
        self.processors = processors


class PreparedRead:
    """One SELECT, compiled once per dialect, whose first row is read on a pooled connection.

    Every value of the statement is a required :func:`sqlalchemy.bindparam`;
    :meth:`first` takes them by name.
    """

    def __init__(self, statement: sqlalchemy.Select[Any]) -> None:
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    def first(self, engine: Engine, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row for ``values`` (processed), or ``None``.

        One attempt; raises :class:`sqlalchemy.exc.DBAPIError` (and the
        pool's own errors) as ``Connection.execute`` would, for the caller's
        retry loop.
        """
        dialect = engine.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            connection = engine.raw_connection()
        except dbapi_error as error:  # as Connection() wraps a failed connect
            raise sqlalchemy.exc.DBAPIError.instance(
                None,
                None,
                error,
                dbapi_error,
                hide_parameters=engine.hide_parameters,
                connection_invalidated=dialect.is_disconnect(error, None, None),
                dialect=dialect,
            ) from error
        try:
            plan = self._plans.get(dialect)
            if plan is None:
                # After the first connect: the dialect knows its server by now.
                plan = self._plans[dialect] = _Plan(self.statement, dialect)
            return _read(engine, connection, plan, values)
        finally:
            if connection.is_valid:  # an invalidated connection is checked in already
                connection.close()


def _read(
    engine: Engine, connection: PoolProxiedConnection, plan: _Plan, values: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    dialect = engine.dialect
    dbapi_connection = connection.dbapi_connection
    assert dbapi_connection is not None  # checked out just now
    cursor = None
    autocommit = False
    try:
        if plan.autocommit:
            dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")
            autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute(plan.sql, plan.bind(values))
        row = cursor.fetchone()
        if plan.processors is None:
            plan.read_processors(dialect, cursor.description)
        cursor.close()  # SQLite: resets the statement, so no read snapshot stays open
        cursor = None
        if autocommit:
            dialect.reset_isolation_level(dbapi_connection)
            autocommit = False
        if row is None:
            return None
        processors = plan.processors
        if processors:
            row = list(row)
            for index, processor in processors:
                row[index] = processor(row[index])
        return tuple(row)
    except dialect.loaded_dbapi.Error as error:
        disconnect = dialect.is_disconnect(error, dbapi_connection, cursor)
        if disconnect:
            # As Connection does: this connection, and the pool's older ones
            # (checked at their next checkout), are never handed out again.
            engine.pool._invalidate(connection, error)
        else:
            _restore(engine, connection, cursor, autocommit)
        raise sqlalchemy.exc.DBAPIError.instance(
            plan.sql,
            values,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=engine.hide_parameters,
            connection_invalidated=disconnect,
            dialect=dialect,
        ) from error
    except BaseException as error:
        if not isinstance(error, Exception):  # interrupted mid-statement: state unknown
            connection.invalidate(error)
        else:
            _restore(engine, connection, cursor, autocommit)
        raise


def _restore(
    engine: Engine, connection: PoolProxiedConnection, cursor: Any, autocommit: bool
) -> None:
    """Make ``connection`` fit for the pool after a failed read; invalidate it when it is not.

    (A connection left in AUTOCOMMIT would commit the next caller's writes
    statement by statement.)
    """
    dbapi_connection = connection.dbapi_connection
    try:
        if cursor is not None:
            cursor.close()
        if autocommit and dbapi_connection is not None:
            engine.dialect.reset_isolation_level(dbapi_connection)
    except Exception as error:
        connection.invalidate(error)
