"""Schema, migrations and engine set-up on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import fnmatch
import os
import sqlite3
import subprocess
import sys
import threading
import tomllib
import uuid as uuidlib
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import guard
from guard.db import api, migration, models

REPO_ROOT = Path(__file__).resolve().parents[2]


def count_projects_after_a_dropped_connection(engine: sqlalchemy.Engine) -> int:
    """A read through run_in_transaction, retried on a new connection if the pooled one died."""
    return api.run_in_transaction(
        engine,
        lambda conn: conn.execute(
            sqlalchemy.select(sqlalchemy.func.count()).select_from(models.Project)
        ).scalar(),
        write=False,
    )


def test_upgrade_is_idempotent_and_matches_the_models(database_url: str):
    assert migration.current(database_url) is None
    migration.upgrade(database_url)
    migration.upgrade(database_url)  # a second run changes nothing and does not fail
    assert migration.current(database_url) == migration.head() == "0002"
    engine = api.create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), models.Base.metadata)
            indexes = {ix["name"] for ix in sqlalchemy.inspect(conn).get_indexes("consumers")}
    finally:
        engine.dispose()
    assert diff == []
    assert {"ix_consumers_project_id_uuid", "ix_consumers_user_id_uuid"} <= indexes


def test_foreign_keys_are_enforced(database_url: str):
    migration.upgrade(database_url)
    engine = api.create_engine(database_url)
    try:
        with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sqlalchemy.insert(models.Consumer).values(
                    uuid=str(uuidlib.uuid4()),
                    project_id=12345,
                    user_id=12345,
                    generation=0,
                    created_at=sqlalchemy.func.now(),
                    updated_at=sqlalchemy.func.now(),
                )
            )
    finally:
        engine.dispose()


def test_sqlite_engine_uses_wal_and_a_busy_timeout(sqlite_url: str):
    engine = api.create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == api.SQLITE_BUSY_TIMEOUT * 1000
    finally:
        engine.dispose()


def test_sqlite_writer_waits_for_another_writers_lock(sqlite_url: str):
    """A writer that finds the database locked waits (busy timeout) instead of failing."""
    migration.upgrade(sqlite_url)
    engine = api.create_engine(sqlite_url)
    blocker = api.create_engine(sqlite_url)
    try:
        with blocker.connect() as held:
            api.begin_write(held)
            held.execute(sqlalchemy.insert(models.Project).values(external_id="holder"))
            release = threading.Timer(0.3, held.commit)
            release.start()
            api.run_in_transaction(
                engine,
                lambda conn: conn.execute(
                    sqlalchemy.insert(models.Project).values(external_id="waiter")
                ),
                write=True,
            )
            release.join()
        with engine.connect() as conn:
            names = set(conn.execute(sqlalchemy.select(models.Project.external_id)).scalars())
        assert names == {"holder", "waiter"}
    finally:
        engine.dispose()
        blocker.dispose()


def test_postgresql_engine_has_timeouts_and_survives_a_dropped_connection(postgresql_url: str):
    migration.upgrade(postgresql_url)
    engine = api.create_engine(postgresql_url.replace("postgresql+psycopg", "postgresql"))
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "10s"
            victim = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        # The server drops the pooled connection (a restart, an idle timeout).
        with sqlalchemy.create_engine(postgresql_url).connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(victim)})")
        assert count_projects_after_a_dropped_connection(engine) == 0
    finally:
        engine.dispose()


def test_mariadb_engine_has_timeouts_read_committed_strict_mode_and_survives_a_kill(
    mariadb_url: str,
):
    migration.upgrade(mariadb_url)
    engine = api.create_engine(mariadb_url.replace("mysql+pymysql", "mysql"))
    try:
        assert engine.dialect.driver == "pymysql"
        with engine.connect() as conn:
            settings = conn.exec_driver_sql(
                "SELECT @@max_statement_time, @@innodb_lock_wait_timeout, @@lock_wait_timeout, "
                "@@tx_isolation, @@sql_mode, @@character_set_client"
            ).one()
            victim = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        assert settings[:3] == (
            api.MYSQL_STATEMENT_TIMEOUT_S,
            api.MYSQL_LOCK_TIMEOUT_S,
            api.MYSQL_LOCK_TIMEOUT_S,
        )
        assert settings[3] == "READ-COMMITTED"
        assert "STRICT_ALL_TABLES" in settings[4].split(",")
        assert settings[5] == "utf8mb4"
        # The server drops the pooled connection (a restart, wait_timeout).
        with sqlalchemy.create_engine(mariadb_url).connect() as admin:
            admin.exec_driver_sql(f"KILL {int(victim)}")
        assert count_projects_after_a_dropped_connection(engine) == 0
    finally:
        engine.dispose()


def test_mariadb_tables_are_innodb_utf8mb4_with_binary_ids(mariadb_url: str):
    migration.upgrade(mariadb_url)
    engine = api.create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            tables = dict(
                conn.exec_driver_sql(
                    "SELECT table_name, engine FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'"
                ).all()
            )
            id_types = set(
                conn.exec_driver_sql(
                    "SELECT column_type FROM information_schema.columns "
                    "WHERE table_schema = DATABASE() AND column_name IN "
                    "('external_id', 'name', 'uuid')"
                ).scalars()
            )
    finally:
        engine.dispose()
    assert tables == dict.fromkeys(["projects", "users", "consumer_types", "consumers"], "InnoDB")
    assert id_types == {"varbinary(255)", "varbinary(36)"}


def _guard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "guard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_migration_file_ships_in_the_wheel():
    """The package data globs in pyproject.toml cover the alembic environment."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    package_root = Path(guard.__file__).parent
    migrations = package_root / "db" / "migrations"
    shipped = [package_root / "db" / "alembic.ini"] + [
        path
        for path in migrations.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert any(path.parent.name == "versions" for path in shipped)
    for path in shipped:
        package = path.parent
        while not (package / "__init__.py").exists():
            package = package.parent
        dotted = ".".join(package.relative_to(package_root.parent).parts)
        relative = path.relative_to(package).as_posix()
        patterns = package_data.get(dotted, [])
        assert (path.suffix == ".py" and path.parent == package) or any(
            fnmatch.fnmatch(relative, pattern) for pattern in patterns
        ), f"{relative} of {dotted} is not package data"


def test_a_busy_sqlite_database_is_a_retryable_error(tmp_path: Path):
    """What SQLite raises when another connection holds the write lock is retried."""
    path = tmp_path / "busy.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    impatient = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError) as busy, impatient.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert api.is_retryable(busy.value)
        with pytest.raises(sqlalchemy.exc.OperationalError) as missing, impatient.begin() as conn:
            conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")
        assert not api.is_retryable(missing.value)
    finally:
        holder.rollback()
        holder.close()
        impatient.dispose()


def test_sqlite_engine_has_no_per_statement_listener(sqlite_url: str):
    """BEGIN is emitted where a transaction starts, not by an event on every execute."""
    engine = api.create_engine(sqlite_url)
    try:
        for name in ("begin", "before_execute", "after_execute", "before_cursor_execute"):
            assert not getattr(engine.dispatch, name), name
    finally:
        engine.dispose()


def test_sqlite_read_of_several_statements_sees_one_snapshot(sqlite_url: str):
    migration.upgrade(sqlite_url)
    engine = api.create_engine(sqlite_url)
    writer = api.create_engine(sqlite_url)
    count = sqlalchemy.select(sqlalchemy.func.count()).select_from(models.Project)

    def work(conn: sqlalchemy.Connection) -> tuple[int, int]:
        before = conn.execute(count).scalar_one()
        api.run_in_transaction(
            writer,
            lambda other: other.execute(sqlalchemy.insert(models.Project).values(external_id="p")),
            write=True,
        )
        return before, conn.execute(count).scalar_one()

    try:
        assert api.run_in_transaction(engine, work, write=False) == (0, 0)
        assert (
            api.run_in_transaction(engine, lambda c: c.execute(count).scalar_one(), write=False)
            == 1
        )
    finally:
        engine.dispose()
        writer.dispose()
