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
import re
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


#: How a revision id is written (alembic's own are 12 hex digits; some projects
#: name theirs, e.g. ``0001_initial``): shown to the operator when it has this shape.
_REVISION_SHAPE = re.compile(r"[A-Za-z0-9_]{1,32}")
#: ... but not when it has a keystone id's shape (32 hex digits), which the log
#: redaction would fingerprint.
_ID_SHAPE = re.compile(r"[0-9A-Fa-f]{32}")


#: What stands for a revision that does not have a revision id's shape.
NOT_SHOWN = "<not a revision id: not shown>"


def shown_revision(revision: str) -> str:
    """``revision`` when it has a revision id's shape, else :data:`NOT_SHOWN`.

    The version table of a database guard does not own holds whatever its
    application wrote there; only what looks like a revision id is repeated.
    """
    if _REVISION_SHAPE.fullmatch(revision) and not _ID_SHAPE.fullmatch(revision):
        return revision
    return NOT_SHOWN


def unknown_revision_help(unknown: list[str]) -> str:
    """What to tell the operator of a database at revisions guard does not know.

    Such a database is another application's (OpenStack Placement's, say:
    alembic too, its own revisions) or one a newer guard migrated; either
    way no guard db upgrade of this guard can migrate it.
    """
    noun = "revision" if len(unknown) == 1 else "revisions"
    shown = ", ".join(
        repr(revision) if shown_revision(revision) == revision else NOT_SHOWN
        for revision in unknown
    )
    return (
        f"the database holds alembic {noun} {shown}, which this guard does not know: it is "
        "another application's database, or a newer guard migrated it; guard db upgrade "
        "cannot migrate it: point [database] connection at guard's own database, or run "
        "the newer guard"
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
