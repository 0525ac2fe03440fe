"""A database of another alembic application: refused as such, nothing changed.

An operator points ``[database] connection`` at OpenStack Placement's
database (alembic too, with its own revisions). guard refused it asking "a
newer guard migrated it?", which sends the operator after a guard upgrade
that does not exist. The refusal now says the database holds an alembic
revision guard does not know: another application's, or a newer guard's.
What the version table holds is repeated only when it has a revision id's
shape. The foreign database is made by alembic itself (a real environment
with one migration, Placement's first revision id), on a real SQLite file;
real ``guard db`` processes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from tests.functional.processes import guard

#: Placement's first alembic revision (placement/db/sqlalchemy/alembic/versions).
PLACEMENT_REVISION = "b4ed3a175331"
TIMEOUT = 120
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
