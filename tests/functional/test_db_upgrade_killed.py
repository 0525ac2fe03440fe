"""``guard db upgrade`` killed with SIGKILL in the middle of a SQLite migration.

The database must be left at the old revision or at the new one, never
half-migrated (tables without the version row, or a version row without its
tables), and the next ``guard db upgrade`` must finish the job.

The real command runs in its own process on a real file; a
``sitecustomize`` module on its ``PYTHONPATH`` hooks SQLite's statement
trace on every connection SQLAlchemy opens and sends the process SIGKILL
just before the chosen statement runs, so that each kill lands at a known
point of the migration (one that no timer could hit reliably).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from guard.db import migration

KILL_ENV = "GUARD_TEST_KILL_BEFORE"
SITECUSTOMIZE = f'''
import os
import signal

_prefix = os.environ.get("{KILL_ENV}")
if _prefix:
    import sqlalchemy.pool
    from sqlalchemy import event

    def _on_statement(sql):
        if sql.strip().startswith(_prefix):
            os.kill(os.getpid(), signal.SIGKILL)

    @event.listens_for(sqlalchemy.pool.Pool, "connect")
    def _trace(dbapi_connection, record):
        dbapi_connection.set_trace_callback(_on_statement)
'''
#: guard's tables at the head (alembic's own aside).
TABLES = {"projects", "users", "consumer_types", "consumers"}
RUN_TIMEOUT = 120


def guard_db(tmp_path: Path, *args: str, kill_before: str | None = None):
    """``guard db ARGS`` in a process of its own; killed before ``kill_before``'s statement."""
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(hooks)}
    env.pop(KILL_ENV, None)
    if kill_before:
        env[KILL_ENV] = kill_before
    return subprocess.run(
        [sys.executable, "-m", "guard", "db", *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, check=False,
    )  # fmt: skip


def state(path: Path) -> tuple[set[str], str | None]:
    """guard's tables in the file and its alembic revision (None without a version row)."""
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        revision = None
        if "alembic_version" in names:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            assert len(rows) <= 1
            revision = rows[0][0] if rows else None
    connection.close()
    return names & TABLES, revision


def assert_upgrade_finishes(tmp_path: Path, url: str, path: Path) -> None:
    done = guard_db(tmp_path, "upgrade", "--database", url)
    assert done.returncode == 0, done.stderr
    assert state(path) == (TABLES, migration.head())
    version = guard_db(tmp_path, "version", "--database", url)
    assert version.returncode == 0, version.stderr


#: The statement before which a fresh database's upgrade to the head is killed
#: -> whether the migration's transaction had committed by then.
FRESH = {
    "CREATE TABLE projects": False,  # the first of the schema
    "CREATE INDEX": False,  # tables made, indexes not
    "UPDATE alembic_version": False,  # 0001 recorded, 0002 not
    "COMMIT": False,  # everything done, nothing committed
    "SELECT alembic_version.version_num": True,  # the revision read back after the commit
}


@pytest.mark.parametrize(("kill_before", "committed"), FRESH.items(), ids=FRESH.keys())
def test_a_fresh_database_is_empty_or_at_the_head(
    tmp_path: Path, kill_before: str, committed: bool
) -> None:
    path = tmp_path / "guard.sqlite"
    url = f"sqlite:///{path}"
    killed = guard_db(tmp_path, "upgrade", "--database", url, kill_before=kill_before)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # the kill point was reached
    assert state(path) == ((TABLES, migration.head()) if committed else (set(), None))
    assert_upgrade_finishes(tmp_path, url, path)


def test_an_upgrade_from_0001_keeps_the_old_revision_and_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "guard.sqlite"
    url = f"sqlite:///{path}"
    assert guard_db(tmp_path, "upgrade", "--database", url, "--revision", "0001").returncode == 0
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO projects (external_id) VALUES ('p1')")
    connection.close()
    killed = guard_db(tmp_path, "upgrade", "--database", url, kill_before="UPDATE alembic_version")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert state(path) == (TABLES, "0001")
    assert_upgrade_finishes(tmp_path, url, path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT external_id FROM projects").fetchall() == [("p1",)]
    connection.close()
