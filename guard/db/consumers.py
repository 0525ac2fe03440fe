"""Consumer rows in SQL: tables, statements, row mapping, get-or-create, transactions.

This module knows how consumers are stored and nothing about who may see
them: :mod:`guard.repository` makes every decision and raises every error a
caller sees, and calls these functions only once it has decided. Values
arrive here validated (:mod:`guard.validation`, applied by the repository).

Statements are SQLAlchemy Core, not ORM queries: a guarded get must cost
little more than the bare select (``guard bench``), and the ORM's compile
step would cost it more than its SQL.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import sqlalchemy
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from guard import exception
from guard.db import api as db_api
from guard.db import models, prepared

LOG = logging.getLogger(__name__)

T = TypeVar("T")

# MySQL's ER_DUP_ENTRY: a unique key already holds the value.
_MYSQL_DUPLICATE_ENTRY: Final = 1062

#: The typed models' Core tables.
CONSUMERS: Final = models.Base.metadata.tables[models.Consumer.__tablename__]
PROJECTS: Final = models.Base.metadata.tables[models.Project.__tablename__]
USERS: Final = models.Base.metadata.tables[models.User.__tablename__]
TYPES: Final = models.Base.metadata.tables[models.ConsumerType.__tablename__]

#: The keys of a consumer's policy target, and the columns of
#: :data:`SELECT_CONSUMER` holding them (what a rule compiled to SQL compares).
TARGET_COLUMNS: Final[dict[str, ColumnElement[Any]]] = {
    "project_id": PROJECTS.c.external_id,
    "user_id": USERS.c.external_id,
    "consumer_type": TYPES.c.name,
    "uuid": CONSUMERS.c.uuid,
}

#: A consumer with its owners' external ids, the row every read returns. The
#: columns after ``id`` are :class:`Consumer`'s fields in order
#: (:func:`_to_consumer` relies on it). Public: a benchmark's raw baseline
#: must be this very statement, not a copy that could drift from it.
SELECT_CONSUMER: Final = (
    select(
        CONSUMERS.c.id,
        CONSUMERS.c.uuid,
        PROJECTS.c.external_id.label("project_id"),
        USERS.c.external_id.label("user_id"),
        TYPES.c.name.label("consumer_type"),
        CONSUMERS.c.generation,
        CONSUMERS.c.created_at,
        CONSUMERS.c.updated_at,
    )
    .select_from(CONSUMERS)
    .join(PROJECTS, PROJECTS.c.id == CONSUMERS.c.project_id)
    .join(USERS, USERS.c.id == CONSUMERS.c.user_id)
    .outerjoin(TYPES, TYPES.c.id == CONSUMERS.c.consumer_type_id)
)

# Built once: the statement (and its cache key) is the same for every get.
_SELECT_BY_UUID: Final = SELECT_CONSUMER.where(CONSUMERS.c.uuid == bindparam("uuid"))
# ... and compiled once per dialect for the guarded get (guard.db.prepared says why).
_PREPARED_BY_UUID: Final = prepared.PreparedRead(_SELECT_BY_UUID)


@dataclass(frozen=True)
class Consumer:
    """A consumer as the API shows it: owners by their keystone ids."""

    uuid: str
    project_id: str
    user_id: str
    consumer_type: str | None
    generation: int
    created_at: datetime.datetime
    updated_at: datetime.datetime

    def to_dict(self) -> dict[str, Any]:
        """The contract's consumer JSON (ISO 8601 UTC timestamps)."""
        return {
            "uuid": self.uuid,
            "project_id": self.project_id,
            "user_id": self.user_id,
            "consumer_type": self.consumer_type,
            "generation": self.generation,
            "created_at": _iso8601(self.created_at),
            "updated_at": _iso8601(self.updated_at),
        }

    def target(self) -> dict[str, Any]:
        """The policy target: this consumer's owners (never the caller's)."""
        return {
            "project_id": self.project_id,
            "user_id": self.user_id,
            "consumer_type": self.consumer_type,
            "uuid": self.uuid,
        }


def _iso8601(moment: datetime.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC.

    ``isoformat`` rather than ``strftime``: a quarter of the cost, twice a
    consumer (measured with guard.tools.bench.pipeline); the same text.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def now() -> datetime.datetime:
    """Naive UTC, whole seconds: the same value round-trips on every backend."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def _to_consumer(row: Sequence[Any]) -> Consumer:
    """The consumer of a :data:`SELECT_CONSUMER` row."""
    # Positional: the select's columns after ``id`` are Consumer's fields, in
    # order (a guarded get builds one per call; keywords cost a third more).
    _id, uuid, project_id, user_id, consumer_type, generation, created_at, updated_at = row
    return Consumer(uuid, project_id, user_id, consumer_type, generation, created_at, updated_at)


# -- transactions ---------------------------------------------------------------------


def transact(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    write: bool,
    single_statement: bool = False,
) -> T:
    """``work(connection)`` in one transaction (:func:`guard.db.api.run_in_transaction`).

    Every uniqueness race is handled by the statements below; an integrity
    error that still reaches here is a fault, reported as ``Conflict``
    without the database's text.
    """
    try:
        return db_api.run_in_transaction(
            engine, work, write=write, single_statement=single_statement
        )
    except sqlalchemy.exc.IntegrityError as error:
        kind = type(error.orig).__name__
    # Outside the except block: oslo.log would append the driver's text (the
    # duplicate value itself on MySQL) to the line.
    LOG.warning("integrity error (%s)", kind)
    raise exception.Conflict()


# -- reads ----------------------------------------------------------------------------


def find_one(engine: Engine, uuid: str) -> Consumer | None:
    """Consumer ``uuid``, or ``None``: one SELECT in a connection of its own.

    On the pool's DBAPI connection (:mod:`guard.db.prepared`: about a third of
    the cost of a ``Connection``), with the retries and errors of
    :func:`guard.db.api.run_in_transaction`; through a ``Connection`` when the
    engine has event listeners or its statement log on (they must see it).
    """
    if prepared.needs_connection(engine):
        return transact(engine, lambda conn: find(conn, uuid), write=False, single_statement=True)
    row = db_api.run_read(lambda: _PREPARED_BY_UUID.first(engine, {"uuid": uuid}))
    return None if row is None else _to_consumer(row)


def find(conn: Connection, uuid: str) -> Consumer | None:
    """Consumer ``uuid``, or ``None``."""
    # first(): the uuid is unique, so there is no second row to look for.
    row = conn.execute(_SELECT_BY_UUID, {"uuid": uuid}).first()
    return None if row is None else _to_consumer(row)


def find_row(conn: Connection, uuid: str) -> tuple[int, Consumer] | None:
    """Consumer ``uuid`` and its row id (what a write names), or ``None``."""
    row = conn.execute(_SELECT_BY_UUID, {"uuid": uuid}).first()
    return None if row is None else (row.id, _to_consumer(row))


# Built once, with bound values, as _SELECT_BY_UUID: building a select with
# the value in it on every call (construction, then its cache key) cost more
# than running it (SQLite file: 97 us against 44 us for an exists check).
_ID_BY_UUID: Final = select(CONSUMERS.c.id).where(CONSUMERS.c.uuid == bindparam("uuid"))
_GENERATION_BY_UUID: Final = select(CONSUMERS.c.generation).where(
    CONSUMERS.c.uuid == bindparam("uuid")
)
_ID_BY_NAME: Final = {
    column.table.name: select(column.table.c.id).where(column == bindparam("name"))
    for column in (PROJECTS.c.external_id, USERS.c.external_id, TYPES.c.name)
}


def exists(conn: Connection, uuid: str) -> bool:
    """Whether a consumer ``uuid`` is stored (whoever owns it)."""
    return conn.execute(_ID_BY_UUID, {"uuid": uuid}).first() is not None


def generation_of(conn: Connection, uuid: str) -> int | None:
    """The stored generation of consumer ``uuid``, or ``None`` when it is gone."""
    return conn.execute(_GENERATION_BY_UUID, {"uuid": uuid}).scalar_one_or_none()


def list_query(
    *, project_id: str | None, user_id: str | None, consumer_type: str | None
) -> sqlalchemy.Select[Any]:
    """:data:`SELECT_CONSUMER` in uuid order, narrowed by the given owners and type."""
    query = SELECT_CONSUMER.order_by(CONSUMERS.c.uuid)
    if project_id is not None:
        query = query.where(PROJECTS.c.external_id == project_id)
    if user_id is not None:
        query = query.where(USERS.c.external_id == user_id)
    if consumer_type is not None:
        query = query.where(TYPES.c.name == consumer_type)
    return query


def page(
    conn: Connection, query: sqlalchemy.Select[Any], *, marker: str | None, limit: int
) -> list[Consumer]:
    """Up to ``limit`` consumers of ``query`` after uuid ``marker`` (keyset paging)."""
    if marker is not None:
        query = query.where(CONSUMERS.c.uuid > marker)
    # all(): one fetchall instead of a fetchone per row (a 51-row page on a
    # SQLite file: 165 us against 200 us).
    return [_to_consumer(row) for row in conn.execute(query.limit(limit)).all()]


def batches(
    conn: Connection, query: sqlalchemy.Select[Any], *, marker: str | None, size: int
) -> Iterator[list[Consumer]]:
    """The consumers of ``query`` after ``marker``, ``size`` at a time, until they run out."""
    while True:
        batch = page(conn, query, marker=marker, limit=size)
        if batch:
            yield batch
        if len(batch) < size:
            return
        marker = batch[-1].uuid


# -- writes ---------------------------------------------------------------------------


def insert(conn: Connection, consumer: Consumer) -> bool:
    """Store ``consumer`` with its owners; ``False`` when its uuid is taken already.

    ``ON CONFLICT DO NOTHING``: a create that loses a race to another one
    answers like the duplicate it is, not with an integrity error.
    """
    values = {
        "uuid": consumer.uuid,
        "project_id": get_or_create(conn, PROJECTS.c.external_id, consumer.project_id),
        "user_id": get_or_create(conn, USERS.c.external_id, consumer.user_id),
        "consumer_type_id": _type_id(conn, consumer.consumer_type),
        "generation": consumer.generation,
        "created_at": consumer.created_at,
        "updated_at": consumer.updated_at,
    }
    return _insert_unless_exists(conn, CONSUMERS, "uuid", values) is not None


def replace(
    conn: Connection, row_id: int, current: Consumer, wanted: Consumer, *, generation: int
) -> bool:
    """Compare-and-swap row ``row_id`` from ``current`` (at ``generation``) to ``wanted``.

    Only the owners that change are looked up (or created). ``False`` when
    the row is gone or at another generation.
    """
    values: dict[str, Any] = {
        "generation": wanted.generation,
        "updated_at": wanted.updated_at,
    }
    if wanted.project_id != current.project_id:
        values["project_id"] = get_or_create(conn, PROJECTS.c.external_id, wanted.project_id)
    if wanted.user_id != current.user_id:
        values["user_id"] = get_or_create(conn, USERS.c.external_id, wanted.user_id)
    if wanted.consumer_type != current.consumer_type:
        values["consumer_type_id"] = _type_id(conn, wanted.consumer_type)
    changed = conn.execute(
        update(CONSUMERS)
        .where(CONSUMERS.c.id == row_id, CONSUMERS.c.generation == generation)
        .values(values)
    ).rowcount
    return changed == 1


def remove(conn: Connection, row_id: int, *, generation: int) -> bool:
    """Delete row ``row_id`` if it is still at ``generation``; ``False`` otherwise."""
    deleted = conn.execute(
        delete(CONSUMERS).where(CONSUMERS.c.id == row_id, CONSUMERS.c.generation == generation)
    ).rowcount
    return deleted == 1


def _type_id(conn: Connection, consumer_type: str | None) -> int | None:
    if consumer_type is None:
        return None
    return get_or_create(conn, TYPES.c.name, consumer_type)


def _insert_unless_exists(
    conn: Connection, table: sqlalchemy.TableClause, column: str, values: dict[str, Any]
) -> int | None:
    """Insert ``values`` into ``table``: the new row's id, or ``None`` if ``column``'s is taken.

    ``INSERT .. ON CONFLICT (column) DO NOTHING RETURNING id`` where the
    dialect has it. MySQL has not: its ``INSERT IGNORE`` also hides other
    errors and ``ON DUPLICATE KEY UPDATE`` cannot tell an insert from a
    duplicate, so there a plain insert's duplicate-key error is the answer
    (it fails the statement only, never the transaction).
    """
    if conn.dialect.name in db_api.MYSQL_BACKENDS:
        try:
            result = conn.execute(sqlalchemy.insert(table).values(values))
        except sqlalchemy.exc.IntegrityError as error:
            if db_api.mysql_errno(error.orig) == _MYSQL_DUPLICATE_ENTRY:
                return None
            raise
        return int(result.lastrowid)
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    inserted = conn.execute(
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=[column])
        .values(values)
        .returning(table.c.id)
    ).scalar_one_or_none()
    return None if inserted is None else int(inserted)


def get_or_create(conn: Connection, name_column: sqlalchemy.Column[Any], name: str) -> int:
    """The id of the row whose ``name_column`` is ``name``, inserted if needed.

    Safe when creates race: ``ON CONFLICT DO NOTHING`` (MySQL: its duplicate
    key error) then a re-read (a new snapshot under READ COMMITTED, which
    :mod:`guard.db.api` sets on MySQL too) instead of catching the unique
    violation, which on PostgreSQL would abort the whole transaction.
    """
    lookup = _ID_BY_NAME[name_column.table.name]
    found = conn.execute(lookup, {"name": name}).scalar_one_or_none()
    if found is not None:
        return int(found)
    table = name_column.table
    inserted = _insert_unless_exists(conn, table, name_column.key, {name_column.key: name})
    if inserted is not None:
        return inserted
    return int(conn.execute(lookup, {"name": name}).scalar_one())
