"""A database of another alembic application: refused as such, nothing changed.

An operator points ``[database] connection`` at OpenStack Placement's
database (alembic too, with its own revisions). guard refused it asking "a
newer guard migrated it?", which sends the operator after a guard upgrade
that does not exist. The refusal now says the database holds an alembic
revision guard does not know: another application's, or a newer guard's.
What the version table holds is repeated only when it has a revision id's
shape. The foreign database is made by alembic itself (a real environment
with one migration, Placement's first revision id), on a real SQLite file;
real ``guard db`` processes. guard's own tables have the names and columns
of Placement's, and a pipeline loaded without migrating (PasteDeploy,
guard.wsgi) on such a database served and deleted Placement's consumers: it
now refuses to load.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
import webtest
from alembic import command
from alembic.config import Config
from paste.deploy import loadapp

from guard.api.environ import identity_headers
from guard.db import migration
from tests.functional.processes import guard

#: Placement's first alembic revision (placement/db/sqlalchemy/alembic/versions).
PLACEMENT_REVISION = "b4ed3a175331"
TIMEOUT = 120
PASTE_INI = Path(__file__).resolve().parents[2] / "etc" / "guard" / "api-paste.ini"
CONSUMER = "0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77"
ADMIN = identity_headers("admin-user", "ops", ["admin", "member", "reader"])
MIGRATION = '''"""Placement-like initial schema."""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "resource_providers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    )
'''


def _foreign_database(tmp_path: Path, revision: str) -> Path:
    """An SQLite database another alembic application migrated to ``revision``."""
    database = tmp_path / "placement.sqlite"
    scripts = tmp_path / "placement_alembic"
    config = Config(str(tmp_path / "alembic.ini"))
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{database}")
    command.init(config, str(scripts))
    (scripts / "versions" / "initial.py").write_text(MIGRATION.format(revision=revision))
    command.upgrade(config, "head")
    return database


def _contents(database: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(database) as connection:
        tables = connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return [*tables, *versions]


def _run(home: Path, *args: str) -> tuple[int, str, str]:
    process = guard(home, *args)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout, stderr


def test_placements_database_is_named_another_applications(tmp_path: Path) -> None:
    database = _foreign_database(tmp_path, PLACEMENT_REVISION)
    before = _contents(database)
    url = f"sqlite:///{database}"
    said = (
        f"the database holds alembic revision '{PLACEMENT_REVISION}', which this guard does "
        "not know: it is another application's database, or a newer guard migrated it"
    )
    for action in ("upgrade", "version"):
        status, stdout, stderr = _run(tmp_path, "db", action, "--database", url)
        assert status == 1, stderr
        assert said in stderr, stderr
        assert "a newer guard migrated it?" not in stdout + stderr
        assert "Traceback" not in stderr and "run guard db upgrade" not in stderr, stderr
    assert _contents(database) == before


@pytest.mark.parametrize(
    "revision",
    ["0b7c3a525c1e4b7e9a512f0d8e6b1a77", "0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77", "x" * 33],
    ids=["keystone-id-shape", "uuid", "too-long"],
)
def test_a_version_that_is_not_a_revision_id_is_not_repeated(
    tmp_path: Path, revision: str
) -> None:
    """A version table holds what its application wrote (set directly: alembic takes no dash)."""
    database = _foreign_database(tmp_path, PLACEMENT_REVISION)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    before = _contents(database)
    url = f"sqlite:///{database}"
    for action in ("upgrade", "version"):
        status, stdout, stderr = _run(tmp_path, "db", action, "--database", url)
        assert status == 1, stderr
        assert "alembic revision <not a revision id: not shown>, which this guard" in stderr
        assert revision not in stdout + stderr
    assert _contents(database) == before


def _placement_shaped(tmp_path: Path) -> Path:
    """guard's tables (Placement's names and columns) at Placement's revision, one row in."""
    database = tmp_path / "placement.sqlite"
    migration.upgrade(f"sqlite:///{database}")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (PLACEMENT_REVISION,))
        connection.execute("INSERT INTO projects (external_id) VALUES ('placement-project')")
        connection.execute("INSERT INTO users (external_id) VALUES ('placement-user')")
        connection.execute(
            "INSERT INTO consumers (uuid, project_id, user_id, generation, created_at, "
            "updated_at) VALUES (?, 1, 1, 3, '2026-01-01', '2026-01-01')",
            (CONSUMER,),
        )
    return database


@pytest.mark.usefixtures("isolated_install")
def test_a_pipeline_loaded_on_placements_database_refuses_to_load(tmp_path: Path) -> None:
    """Loading never migrates, and never serves another application's rows either.

    It served them: GET /consumers listed Placement's consumer and DELETE removed it.
    """
    database = _placement_shaped(tmp_path)
    before = _contents(database)
    config = tmp_path / "guard.conf"
    config.write_text(f"[database]\nconnection = sqlite:///{database}\n")
    with pytest.raises(migration.MigrationError) as refused:
        loadapp(f"config:{PASTE_INI}", name="trusted", global_conf={"config_file": str(config)})
    assert f"alembic revision '{PLACEMENT_REVISION}', which this guard does not know" in str(
        refused.value
    )
    assert _contents(database) == before


@pytest.mark.usefixtures("isolated_install")
def test_a_database_unreachable_at_load_still_loads(tmp_path: Path) -> None:
    """The check reads the database only if it answers: one down at load is 503 till it is up."""
    with socket.socket() as nowhere:
        nowhere.bind(("127.0.0.1", 0))
        port = nowhere.getsockname()[1]
        config = tmp_path / "guard.conf"
        config.write_text(
            f"[database]\nconnection = postgresql+psycopg://guard:pw@127.0.0.1:{port}/guard\n"
        )
        app = webtest.TestApp(
            loadapp(
                f"config:{PASTE_INI}", name="trusted", global_conf={"config_file": str(config)}
            )
        )
        response = app.get("/consumers", headers=ADMIN, status="*")
    assert response.status_int == 503
    assert response.json["errors"][0]["code"] == "guard.unavailable"
