"""alembic environment: migrate guard's schema on a connection guard set up.

``guard.db.migration.upgrade`` hands alembic an open connection (created by
``guard.db.api.create_engine``, so SQLite gets WAL and foreign keys). Run
through the ``alembic`` tool instead, the URL comes from ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from guard.db import api, models

config = context.config
target_metadata = models.Base.metadata


def run_migrations_offline() -> None:
    """Emit the migration SQL for ``sqlalchemy.url`` without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on the given connection, or on a new one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = api.create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as new_connection:
            _migrate(new_connection)
    finally:
        engine.dispose()


def _migrate(connection: object) -> None:
    # render_as_batch: SQLite can only alter tables by copying them.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
