"""Schema migrations with alembic, located inside the installed package.

The alembic environment ships in the wheel (``guard/db/migrations``), so
``guard db upgrade`` works from any working directory.

Concurrent upgrades of one database (several hosts' units starting at once)
take turns: on PostgreSQL each holds an advisory lock for its migration, on
MySQL/MariaDB a named lock (``GET_LOCK``; its DDL commits at once, so no
transaction could serialize it), on SQLite its write transaction (``BEGIN
IMMEDIATE``); the later ones then find the schema current and change nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic import util as alembic_util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from guard.db import api

_HERE = Path(__file__).resolve().parent
ALEMBIC_INI = _HERE / "alembic.ini"
MIGRATIONS = _HERE / "migrations"
#: Key of the PostgreSQL advisory lock held by an upgrade (any fixed bigint;
#: these are the bytes "guarddb1").
MIGRATION_LOCK_KEY = 0x6775617264646231
#: Name of the MySQL/MariaDB lock held by an upgrade (one per server: the
#: database's name is part of it).
MYSQL_LOCK_PREFIX = "guard-db-upgrade:"
#: How long an upgrade waits for another one's migration (milliseconds),
#: instead of the engine's lock and statement timeouts meant for requests.
MIGRATION_LOCK_WAIT_MS = 300_000


def alembic_config(url: str = "") -> Config:
    """An alembic ``Config`` for guard's migrations (``url`` for offline use)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' would be taken for ConfigParser interpolation in a password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class MigrationError(ValueError):
    """The schema cannot be migrated as asked; the message says why, for the operator."""


def unknown_revisions(revisions: Iterable[str]) -> list[str]:
    """Those of ``revisions`` that are not revisions of guard's migrations."""
    script = ScriptDirectory.from_config(alembic_config())
    unknown = []
    for revision in revisions:
        try:
            known = script.get_revision(revision) is not None
        except alembic_util.CommandError:
            known = False
        if not known:
            unknown.append(revision)
    return unknown


def unknown_revision_help(unknown: list[str]) -> str:
    """What to tell the operator of a database at revisions guard does not know."""
    shown = ", ".join(repr(revision[:40]) for revision in unknown)
    return (
        f"the database's schema is at revision {shown}, which this guard does not know "
        "(a newer guard migrated it?): guard db upgrade cannot migrate it; run the guard "
        "that did, or restore the database"
    )


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``; running it again changes nothing.

    :class:`MigrationError` when the database is at a revision guard does not
    know (nothing is changed) or ``revision`` is not one of guard's.
    """
    engine = api.create_engine(url)
    try:
        with engine.connect() as connection:
            # A writer from the start: on SQLite, BEGIN IMMEDIATE.
            api.begin_write(connection)
            with _one_upgrade_at_a_time(connection):
                unknown = unknown_revisions(current_heads(connection))
                if unknown:  # alembic's answer would be a traceback naming only the revision
                    raise MigrationError(unknown_revision_help(unknown))
                config = alembic_config()
                config.attributes["connection"] = connection
                try:
                    command.upgrade(config, revision)
                except alembic_util.CommandError as error:  # an unknown target revision
                    raise MigrationError(f"cannot migrate to {revision[:40]!r}: {error}") from None
                connection.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _one_upgrade_at_a_time(connection: Connection) -> Iterator[None]:
    """Hold guard's migration lock on ``connection`` (PostgreSQL) while the block runs.

    Without it, two upgrades of a fresh database both create alembic's
    version table and one fails on a unique violation. The lock is taken on
    the connection alembic migrates on, so the waiting upgrade reads the
    version table only after the first committed. A session lock: should
    the migration fail, closing the connection (the engine is disposed)
    releases it. SQLite needs none: the write transaction already excludes
    any other writer until it commits.
    """
    if connection.dialect.name in api.MYSQL_BACKENDS:
        with _mysql_named_lock(connection):
            yield
        return
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.exec_driver_sql(f"SET lock_timeout = {MIGRATION_LOCK_WAIT_MS}")
    connection.exec_driver_sql(f"SET statement_timeout = {MIGRATION_LOCK_WAIT_MS}")
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # Back to the engine's timeouts (its connect options) for the migration.
    connection.exec_driver_sql("RESET lock_timeout")
    connection.exec_driver_sql("RESET statement_timeout")
    yield
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()


@contextlib.contextmanager
def _mysql_named_lock(connection: Connection) -> Iterator[None]:
    """Hold a MySQL/MariaDB named lock for this database while the block runs.

    ``GET_LOCK`` belongs to the session, not to a transaction (MySQL's DDL
    commits implicitly), and is released when the connection closes.
    """
    name = MYSQL_LOCK_PREFIX + (connection.exec_driver_sql("SELECT DATABASE()").scalar() or "")
    # The wait is bounded by GET_LOCK's own timeout, not the statement timeout.
    wait_s = MIGRATION_LOCK_WAIT_MS // 1000
    statement_timeout = _mysql_statement_timeout_variable(connection)
    connection.exec_driver_sql(f"SET SESSION {statement_timeout} = 0")
    got = connection.execute(
        text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": wait_s}
    ).scalar()
    connection.exec_driver_sql(
        f"SET SESSION {statement_timeout} = {_mysql_statement_timeout(statement_timeout)}"
    )
    connection.commit()
    if got != 1:
        raise TimeoutError("another guard db upgrade holds the migration lock")
    try:
        yield
    finally:
        connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        connection.commit()


def _mysql_statement_timeout_variable(connection: Connection) -> str:
    mariadb = getattr(connection.dialect, "is_mariadb", False)
    return "max_statement_time" if mariadb else "max_execution_time"


def _mysql_statement_timeout(variable: str) -> int:
    if variable == "max_statement_time":
        return api.MYSQL_STATEMENT_TIMEOUT_S
    return api.MYSQL_STATEMENT_TIMEOUT_S * 1000


def head() -> str:
    """The newest revision of guard's schema (what ``guard db upgrade`` migrates to)."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "guard ships at least one migration"
    return revision


#: alembic's version table (guard keeps alembic's default name).
_VERSION_TABLE = sqlalchemy.table("alembic_version", sqlalchemy.column("version_num"))


def current_heads(connection: Connection) -> frozenset[str]:
    """The revisions the database on ``connection`` is at (empty before the first upgrade).

    What alembic's ``MigrationContext.get_current_heads()`` answers, read
    directly: building a ``MigrationContext`` logs two INFO lines each time,
    and the healthcheck asks on every load balancer probe.
    """
    if not sqlalchemy.inspect(connection).has_table(_VERSION_TABLE.name):
        return frozenset()
    return frozenset(connection.execute(sqlalchemy.select(_VERSION_TABLE.c.version_num)).scalars())


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None`` before the first upgrade)."""
    engine = api.create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
