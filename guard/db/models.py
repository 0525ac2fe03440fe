"""SQLAlchemy 2.x typed models of guard's schema, shaped like Placement's.

Owners are normalized into ``projects``, ``users`` and ``consumer_types``
(one row per external id or name) so that a consumer row stays narrow and
the list query can filter on indexed integer keys.

Ids, names and uuids compare byte for byte on every backend. SQLite and
PostgreSQL compare text that way; MySQL's collations fold case and accents
and pad with spaces, so that a project ``ABC`` (or ``abc ``) would find the
rows of ``abc``. On MySQL these columns are therefore ``VARBINARY``, whose
comparison is the bytes' (no folding, no padding), holding UTF-8.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

# keystone ids and consumer type names are at most 255 characters (contract).
EXTERNAL_ID_LENGTH = 255
UUID_LENGTH = 36
#: The names SQLAlchemy gives the MySQL family's dialects.
MYSQL_DIALECTS = ("mysql", "mariadb")
#: Table options on MySQL: transactional tables, 4-byte UTF-8.
MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class Utf8Varbinary(mysql.VARBINARY):
    """MySQL ``VARBINARY`` holding UTF-8 text: Python sees ``str``, the server compares bytes.

    Used only through :func:`exact_string` (a variant for MySQL), so SQLite
    and PostgreSQL bind and read their text columns with no extra step.
    """

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        def process(value: Any) -> Any:
            return value.encode("utf-8") if isinstance(value, str) else value

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        def process(value: Any) -> Any:
            return value.decode("utf-8") if isinstance(value, bytes | bytearray) else value

        return process


def exact_string(length: int) -> TypeEngine[str]:
    """A string column of ``length`` that compares byte for byte on every backend."""
    return String(length).with_variant(Utf8Varbinary(length), *MYSQL_DIALECTS)


class fold_case(FunctionElement[str]):
    """``lower(text)`` that also folds text built from :func:`exact_string` columns.

    MySQL's ``LOWER()`` leaves binary strings as they are, so there the text
    is read as UTF-8 first, and the result made binary again so that it
    compares byte for byte (as ``lower()`` does on SQLite and PostgreSQL).
    """

    type = String()
    inherit_cache = True
    name = "lower"


@compiles(fold_case)
def _fold_case(element: fold_case, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(fold_case, *MYSQL_DIALECTS)
def _fold_case_mysql(element: fold_case, compiler: SQLCompiler, **kw: Any) -> str:
    return (
        f"CAST(LOWER(CONVERT({compiler.process(element.clauses, **kw)} USING utf8mb4)) AS BINARY)"
    )


class Base(DeclarativeBase):
    """Declarative base holding guard's metadata (the alembic target)."""


class Project(Base):
    """A keystone project that owns consumers, by its external id."""

    __tablename__ = "projects"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(
        exact_string(EXTERNAL_ID_LENGTH), unique=True, nullable=False
    )


class User(Base):
    """A keystone user that owns consumers, by its external id."""

    __tablename__ = "users"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(
        exact_string(EXTERNAL_ID_LENGTH), unique=True, nullable=False
    )


class ConsumerType(Base):
    """A named kind of consumer (``INSTANCE``, ``MIGRATION``, ...)."""

    __tablename__ = "consumer_types"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(
        exact_string(EXTERNAL_ID_LENGTH), unique=True, nullable=False
    )


class Consumer(Base):
    """A consumer: a globally named (uuid) thing owned by a project and a user."""

    __tablename__ = "consumers"
    __table_args__ = (
        # A project member's list page: WHERE project_id = ? ORDER BY uuid.
        Index("ix_consumers_project_id_uuid", "project_id", "uuid"),
        # Lists filtered by user (``?user_id=``) in uuid order.
        Index("ix_consumers_user_id_uuid", "user_id", "uuid"),
        Index("ix_consumers_consumer_type_id", "consumer_type_id"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(exact_string(UUID_LENGTH), unique=True, nullable=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    consumer_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("consumer_types.id"), nullable=True
    )
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
