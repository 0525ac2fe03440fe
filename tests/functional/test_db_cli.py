"""``guard db upgrade`` and ``guard db version`` as processes, on real databases.

Each case runs ``python -m guard db ...`` in a fresh working directory and
reads what an operator reads: the exit status, stdout and stderr. They name
the database with its credentials as ``***``, refuse to invent a SQLite file
nobody asked for, and say what failed (refused, authentication, missing
database, schema not at head) without the driver's text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from guard.db import errors, migration
from tests.fixtures.mariadb import MariaDBServer
from tests.fixtures.pgcluster import PostgresCluster

REPO_ROOT = Path(__file__).resolve().parents[2]


def guard_db(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("GUARD_CONFIG_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "guard", "db", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_no_credentials(result: subprocess.CompletedProcess[str], url: str) -> None:
    parsed = make_url(url)
    output = result.stdout + result.stderr
    if parsed.password:
        assert parsed.password not in output
    if parsed.username:  # (a user name like "guard" is also a word of the output)
        assert f"//{parsed.username}" not in output


def test_no_database_named_is_refused_and_creates_no_file(tmp_path: Path):
    for action in ("upgrade", "version"):
        refused = guard_db(action, cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert "no database configured" in refused.stderr
        assert "--demo" in refused.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_upgrades_the_embedded_default_and_names_it(tmp_path: Path):
    first = guard_db("upgrade", "--demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    default = tmp_path / "var" / "guard.sqlite"
    assert first.stdout.splitlines() == [
        f"guard db upgrade: sqlite:///{default}",
        f"database schema at revision {migration.head()}",
    ]
    again = guard_db("upgrade", "--demo", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, first.stdout)
    version = guard_db("version", "--demo", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert f"revision {migration.head()} (head: {migration.head()})" in version.stdout


def test_the_config_files_connection_is_used(tmp_path: Path, sqlite_url: str):
    config = tmp_path / "guard.conf"
    config.write_text(f"[database]\nconnection = {sqlite_url}\n")
    done = guard_db("upgrade", "--config-file", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert migration.current(sqlite_url) == migration.head()
    assert not (tmp_path / "var").exists()


def test_upgrade_then_version_on_each_database(tmp_path: Path, database_url: str):
    before = guard_db("version", "--database", database_url, cwd=tmp_path)
    assert before.returncode == 1
    assert "run guard db upgrade" in before.stderr
    upgraded = guard_db("upgrade", "--database", database_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    named = upgraded.stdout.splitlines()[0]
    parsed = make_url(database_url)
    assert named.startswith(f"guard db upgrade: {parsed.drivername}://")
    assert named.endswith(f"/{parsed.database}")
    if parsed.username:
        assert "***@" in named
    assert migration.current(database_url) == migration.head()
    version = guard_db("version", "--database", database_url, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert f"revision {migration.head()} (head: {migration.head()})" in version.stdout
    for result in (before, upgraded, version):
        assert_no_credentials(result, database_url)


def test_version_of_an_older_schema_says_run_upgrade(tmp_path: Path, mariadb_url: str):
    migration.upgrade(mariadb_url, "0001")
    behind = guard_db("version", "--database", mariadb_url, cwd=tmp_path)
    assert behind.returncode == 1
    assert "revision 0001 (head:" in behind.stdout
    assert "not at the head: run guard db upgrade" in behind.stderr


def test_version_of_a_missing_sqlite_file_creates_none(tmp_path: Path):
    missing = tmp_path / "nothing-here.sqlite"
    result = guard_db("version", "--database", f"sqlite:///{missing}", cwd=tmp_path)
    assert result.returncode == 1
    assert "does not exist: run guard db upgrade" in result.stderr
    assert not missing.exists()


def _failure_cases(
    postgresql: PostgresCluster, mariadb: MariaDBServer, tmp_path: Path
) -> list[tuple[str, str]]:
    mysql = make_url(mariadb.url())
    stranger, stranger_password = mariadb.create_user()
    return [
        ("postgresql+psycopg://dbadmin:hunter2@127.0.0.1:1/guard", errors.REFUSED),
        ("mysql+pymysql://dbadmin:hunter2@127.0.0.1:1/guard", errors.REFUSED),
        (f"postgresql+psycopg://nobody@127.0.0.1:{postgresql.port}/postgres", errors.AUTH_FAILED),
        (mysql.set(password="hunter2-wrong").render_as_string(False), errors.AUTH_FAILED),
        (postgresql.url("no_such_database"), errors.MISSING_DATABASE),
        (mysql.set(database="no_such_database").render_as_string(False), errors.MISSING_DATABASE),
        (
            mysql.set(username=stranger, password=stranger_password).render_as_string(False),
            errors.NO_ACCESS,
        ),
        (f"sqlite:///{tmp_path / 'no-such-dir' / 'guard.sqlite'}", errors.SQLITE_CANNOT_OPEN),
        ("not a URL: dbadmin hunter2", errors.BAD_URL),
        # A Unix socket where no server listens (database error (OperationalError), or
        # "unknown host" on MySQL, before).
        ("postgresql+psycopg://dbadmin:hunter2@/guard?host=/nonexistent", errors.NO_SOCKET),
        (
            "mysql+pymysql://dbadmin:hunter2@localhost/guard?unix_socket=/nonexistent/m.sock",
            errors.NO_SOCKET,
        ),
    ]  # fmt: skip


def test_failures_say_what_failed_and_nothing_secret(
    tmp_path: Path, postgresql_cluster: PostgresCluster, mariadb_server: MariaDBServer
):
    cases = _failure_cases(postgresql_cluster, mariadb_server, tmp_path)
    # version reports through the same code as upgrade: two of its cases suffice.
    runs = [("upgrade", *case) for case in cases] + [("version", *case) for case in cases[:2]]
    for action, url, sentence in runs:
        failed = guard_db(action, "--database", url, cwd=tmp_path)
        assert failed.returncode == 1, (url, failed.stdout)
        assert failed.stderr.strip() == f"guard db {action}: {sentence}"
        output = failed.stdout + failed.stderr
        for secret in ("dbadmin", "hunter2", "Traceback", "SELECT"):
            assert secret not in output
        if "://" in url:
            assert_no_credentials(failed, url)


def test_a_user_that_may_not_create_tables_is_told_which_privilege(
    tmp_path: Path, postgresql_cluster: PostgresCluster, mariadb_server: MariaDBServer
):
    """The everyday set-up: the database made by the server's administrator, a
    login for guard that may connect and read but not create tables (on
    PostgreSQL 15 a database owned by postgres no longer lets every user
    create in its public schema). It said "database error (ProgrammingError:
    InsufficientPrivilege)", or OperationalError on MariaDB."""
    import psycopg

    pg_database = make_url(postgresql_cluster.create_database()).database
    pg_user = "guard_reader"
    with psycopg.connect(
        host="127.0.0.1", port=postgresql_cluster.port, user=postgresql_cluster.superuser,
        dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute(f"CREATE ROLE {pg_user} LOGIN PASSWORD 'hunter2-pg'")
    pg_url = f"postgresql+psycopg://{pg_user}:hunter2-pg@127.0.0.1:{postgresql_cluster.port}"
    maria_database = make_url(mariadb_server.create_database()).database
    maria_user, maria_password = mariadb_server.create_user()
    with mariadb_server.admin_connection() as conn, conn.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON `{maria_database}`.* TO '{maria_user}'@'%'")
    maria_url = make_url(mariadb_server.url(maria_database)).set(
        username=maria_user, password=maria_password
    )
    for url in (f"{pg_url}/{pg_database}", maria_url.render_as_string(False)):
        failed = guard_db("upgrade", "--database", url, cwd=tmp_path)
        assert failed.returncode == 1, (url, failed.stdout)
        assert failed.stderr.strip() == f"guard db upgrade: {errors.NOT_PERMITTED}"
        assert "Traceback" not in failed.stdout + failed.stderr
        assert_no_credentials(failed, url)
