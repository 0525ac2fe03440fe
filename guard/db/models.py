"""SQLAlchemy 2.x typed models of guard's schema, shaped like Placement's.

Owners are normalized into ``projects``, ``users`` and ``consumer_types``
(one row per external id or name) so that a consumer row stays narrow and
the list query can filter on indexed integer keys.
"""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# keystone ids and consumer type names are at most 255 characters (contract).
EXTERNAL_ID_LENGTH = 255
UUID_LENGTH = 36


class Base(DeclarativeBase):
    """Declarative base holding guard's metadata (the alembic target)."""


class Project(Base):
    """A keystone project that owns consumers, by its external id."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(
        String(EXTERNAL_ID_LENGTH), unique=True, nullable=False
    )


class User(Base):
    """A keystone user that owns consumers, by its external id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(
        String(EXTERNAL_ID_LENGTH), unique=True, nullable=False
    )


class ConsumerType(Base):
    """A named kind of consumer (``INSTANCE``, ``MIGRATION``, ...)."""

    __tablename__ = "consumer_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH), unique=True, nullable=False)


class Consumer(Base):
    """A consumer: a globally named (uuid) thing owned by a project and a user."""

    __tablename__ = "consumers"
    __table_args__ = (
        # A project member's list page: WHERE project_id = ? ORDER BY uuid.
        Index("ix_consumers_project_id_uuid", "project_id", "uuid"),
        # Lists filtered by user (``?user_id=``) in uuid order.
        Index("ix_consumers_user_id_uuid", "user_id", "uuid"),
        Index("ix_consumers_consumer_type_id", "consumer_type_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LENGTH), unique=True, nullable=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    consumer_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("consumer_types.id"), nullable=True
    )
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
