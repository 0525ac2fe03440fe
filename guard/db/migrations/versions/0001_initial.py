"""Initial schema: projects, users, consumer_types and consumers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.UniqueConstraint("external_id"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.UniqueConstraint("external_id"),
    )
    op.create_table(
        "consumer_types",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "consumers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column(
            "consumer_type_id", sa.Integer(), sa.ForeignKey("consumer_types.id"), nullable=True
        ),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("ix_consumers_project_id_uuid", "consumers", ["project_id", "uuid"])
    op.create_index("ix_consumers_user_id_uuid", "consumers", ["user_id", "uuid"])
    op.create_index("ix_consumers_consumer_type_id", "consumers", ["consumer_type_id"])


def downgrade() -> None:
    op.drop_table("consumers")
    op.drop_table("consumer_types")
    op.drop_table("users")
    op.drop_table("projects")
