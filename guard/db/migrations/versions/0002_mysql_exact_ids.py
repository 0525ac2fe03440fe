"""Ids, names and uuids compare byte for byte on MySQL/MariaDB too.

MySQL's collations fold case and accents and pad with spaces, so that a
lookup of project ``ABC`` or ``abc `` would find the row of ``abc``. On
MySQL the tables become InnoDB in utf8mb4 and the id columns ``VARBINARY``
(their bytes, UTF-8). SQLite and PostgreSQL already compare text byte for
byte: nothing changes there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, column, length) of every id, name and uuid column.
_EXACT_COLUMNS = (
    ("projects", "external_id", 255),
    ("users", "external_id", 255),
    ("consumer_types", "name", 255),
    ("consumers", "uuid", 36),
)


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if not _is_mysql():
        return
    for table, column, length in _EXACT_COLUMNS:
        # Text to utf8mb4 first, so that the binary column holds UTF-8 bytes.
        op.execute(f"ALTER TABLE {table} ENGINE=InnoDB, CONVERT TO CHARACTER SET utf8mb4")
        op.execute(f"ALTER TABLE {table} MODIFY {column} VARBINARY({length}) NOT NULL")


def downgrade() -> None:
    if not _is_mysql():
        return
    for table, column, length in _EXACT_COLUMNS:
        op.execute(
            f"ALTER TABLE {table} MODIFY {column} VARCHAR({length}) "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        )
