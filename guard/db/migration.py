"""Schema migrations with alembic, located inside the installed package.

The alembic environment ships in the wheel (``guard/db/migrations``), so
``guard db upgrade`` works from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from guard.db import api

_HERE = Path(__file__).resolve().parent
ALEMBIC_INI = _HERE / "alembic.ini"
MIGRATIONS = _HERE / "migrations"


def alembic_config(url: str = "") -> Config:
    """An alembic ``Config`` for guard's migrations (``url`` for offline use)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' would be taken for ConfigParser interpolation in a password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``; running it again changes nothing."""
    engine = api.create_engine(url)
    try:
        with engine.connect() as connection:
            # A writer from the start: on SQLite, BEGIN IMMEDIATE.
            connection.execution_options(**{api.WRITE_OPTION: True})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None`` before the first upgrade)."""
    engine = api.create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
