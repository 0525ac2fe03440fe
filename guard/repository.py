"""The only door to consumer rows: authorize, then query, in one transaction.

Every method takes the caller's request context first, validates its input
before any SQL runs, and asks the policy engine about the *stored row's*
owners (for a create, the requested owner), never about the caller's own ids.

* A row the caller may not show is reported exactly as a missing one (same
  error, same detail), for get, update and delete: no existence oracle.
* A denied write issues no INSERT, UPDATE or DELETE.
* Writes are compare-and-swaps on the row's generation, so a decision made
  on a row can never be applied to a row that changed in between.
* Lists are filtered in SQL: the list rule is compiled for the caller
  (:mod:`guard.policy.sqlfilter`) and paged by uuid (keyset), so a page costs
  the same at a thousand rows as at a million.

Only :mod:`guard.exception` errors leave this module; database faults become
``Unavailable`` with a detail that names no host, user or SQL.
"""

from __future__ import annotations

import builtins
import datetime
import logging
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy
from sqlalchemy import bindparam, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row

from guard import exception, validation
from guard.db import api as db_api
from guard.db import models
from guard.policy import PolicySnapshot, sqlfilter

LOG = logging.getLogger(__name__)

LIST: Final = "guard:consumers:list"
SHOW: Final = "guard:consumers:show"
CREATE: Final = "guard:consumers:create"
UPDATE: Final = "guard:consumers:update"
DELETE: Final = "guard:consumers:delete"

#: The one detail of a missing *and* of an invisible consumer.
NOT_FOUND_DETAIL: Final = "The consumer could not be found."
EXISTS_DETAIL: Final = (
    "A consumer with this uuid already exists; send its consumer_generation to update it."
)
CEILING_DETAIL: Final = (
    f"The consumer's generation is at its maximum ({validation.MAX_GENERATION}); "
    "it cannot be updated any more."
)
CHANGED_DETAIL: Final = "The consumer changed while the request ran; read it again and retry."
# Rows read per batch when the list rule must be evaluated row by row.
PER_ROW_BATCH: Final = 200


class _Keep:
    """Type of :data:`KEEP`: "leave this attribute as it is" in an update."""

    def __repr__(self) -> str:
        return "KEEP"


#: ``update(consumer_type=KEEP)`` (the default) leaves the type unchanged;
#: ``None`` clears it.
KEEP: Final = _Keep()


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
        """The policy target: this consumer's owners."""
        return {
            "project_id": self.project_id,
            "user_id": self.user_id,
            "consumer_type": self.consumer_type,
            "uuid": self.uuid,
        }


@dataclass(frozen=True)
class ConsumerPage:
    """One page of a list; ``next_marker`` is ``None`` exactly when no visible row follows."""

    consumers: builtins.list[Consumer]
    next_marker: str | None


def _iso8601(moment: datetime.datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime.datetime:
    """Naive UTC, whole seconds: the same value round-trips on SQLite and PostgreSQL."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


# The typed models' Core tables. Queries are Core statements: they skip the
# ORM compile step, which otherwise costs a guarded get more than its SQL.
_consumers: Final = models.Consumer.__table__
_projects: Final = models.Project.__table__
_users: Final = models.User.__table__
_types: Final = models.ConsumerType.__table__

# The target keys a rule may format, and the columns holding them.
_TARGET_COLUMNS: Final = {
    "project_id": _projects.c.external_id,
    "user_id": _users.c.external_id,
    "consumer_type": _types.c.name,
    "uuid": _consumers.c.uuid,
}

# A consumer with its owners' external ids. Core rows, not ORM objects: a
# guarded get must cost little more than the bare select (benchmarked). The
# columns after ``id`` are Consumer's fields in order: _consumer() relies on it.
_SELECT_CONSUMER: Final = (
    select(
        _consumers.c.id,
        _consumers.c.uuid,
        _projects.c.external_id.label("project_id"),
        _users.c.external_id.label("user_id"),
        _types.c.name.label("consumer_type"),
        _consumers.c.generation,
        _consumers.c.created_at,
        _consumers.c.updated_at,
    )
    .select_from(_consumers)
    .join(_projects, _projects.c.id == _consumers.c.project_id)
    .join(_users, _users.c.id == _consumers.c.user_id)
    .outerjoin(_types, _types.c.id == _consumers.c.consumer_type_id)
)


# Built once: the statement (and its cache key) is the same for every get.
_SELECT_BY_UUID: Final = _SELECT_CONSUMER.where(_consumers.c.uuid == bindparam("uuid"))


def _consumer(row: Row[Any]) -> Consumer:
    # Positional: the select's columns after ``id`` are Consumer's fields, in
    # order (a guarded get builds one per call; keywords cost a third more).
    return Consumer(*row[1:])


def _select_by_uuid(conn: Connection, uuid: str) -> Row[Any] | None:
    """The row of consumer ``uuid`` with its owners, or ``None``."""
    # first(): the uuid is unique, so there is no second row to look for.
    return conn.execute(_SELECT_BY_UUID, {"uuid": uuid}).first()


class ConsumerRepository:
    """Guarded access to consumers: ``ConsumerRepository(engine, enforcer)``.

    ``enforcer`` is a :class:`guard.policy.Enforcer`. Each call takes one
    policy snapshot and makes all of its decisions on it, so a policy reload
    between two decisions of one call cannot mix two rule sets.
    """

    def __init__(self, engine: Engine, enforcer: Any) -> None:
        self._engine = engine
        self._enforcer = enforcer

    # -- decisions --------------------------------------------------------------------

    def _allowed(
        self, snapshot: PolicySnapshot, ctx: Any, action: str, target: dict[str, Any]
    ) -> bool:
        """One decision; an engine that fails to decide denies (fail closed)."""
        try:
            return bool(self._enforcer.authorize_in(snapshot, action, target, ctx, do_raise=False))
        except Exception as error:
            LOG.warning("policy check %s failed (%s); denied", action, type(error).__name__)
            return False

    def _visible_row(
        self, conn: Connection, snapshot: PolicySnapshot, ctx: Any, uuid: str
    ) -> tuple[int, Consumer]:
        """The row id and consumer ``uuid`` if the caller may show it; else the one NotFound."""
        row = _select_by_uuid(conn, uuid)
        if row is None:
            raise exception.NotFound(NOT_FOUND_DETAIL)
        return row.id, self._shown(snapshot, ctx, row)

    def _shown(self, snapshot: PolicySnapshot, ctx: Any, row: Row[Any] | None) -> Consumer:
        """The consumer of ``row`` if the caller may show it; else the one NotFound."""
        if row is None:
            raise exception.NotFound(NOT_FOUND_DETAIL)
        consumer = _consumer(row)
        if not self._allowed(snapshot, ctx, SHOW, consumer.target()):
            raise exception.NotFound(NOT_FOUND_DETAIL)
        return consumer

    def _compile_list_rule(self, snapshot: PolicySnapshot, ctx: Any) -> sqlfilter.RowFilter:
        return sqlfilter.compile_filter(snapshot, LIST, ctx, _TARGET_COLUMNS)

    # -- reads ------------------------------------------------------------------------

    def get(self, ctx: Any, uuid: str) -> Consumer:
        """The consumer ``uuid``; ``NotFound`` when missing or not visible to the caller."""
        uuid = validation.normalize_uuid(uuid)
        snapshot = self._enforcer.snapshot()
        # One SELECT is atomic on its own; the decision is made on the row it
        # read, after the connection is back in the pool (held no longer than
        # the query needs).
        row = self._run(
            lambda conn: _select_by_uuid(conn, uuid), write=False, single_statement=True
        )
        return self._shown(snapshot, ctx, row)

    def can_list(self, ctx: Any) -> bool:
        """Whether the list rule can allow any row for these credentials (not the data)."""
        return self._compile_list_rule(self._enforcer.snapshot(), ctx).kind != "deny"

    def list(
        self,
        ctx: Any,
        *,
        project_id: str | None = None,
        user_id: str | None = None,
        consumer_type: str | None = None,
        limit: int = validation.DEFAULT_LIMIT,
        marker: str | None = None,
    ) -> ConsumerPage:
        """One page of the consumers the list rule lets the caller see, in uuid order.

        ``project_id``, ``user_id`` and ``consumer_type`` narrow the list;
        ``marker`` is the ``next_marker`` of the previous page. ``Forbidden``
        when the rule cannot allow any row for these credentials.
        """
        if project_id is not None:
            project_id = validation.validate_external_id(project_id, "project_id")
        if user_id is not None:
            user_id = validation.validate_external_id(user_id, "user_id")
        consumer_type = validation.validate_consumer_type(consumer_type)
        limit = validation.validate_limit(limit)
        if marker is not None:
            marker = validation.normalize_uuid(marker, "marker")
        snapshot = self._enforcer.snapshot()
        row_filter = self._compile_list_rule(snapshot, ctx)
        if row_filter.kind == "deny":
            raise exception.Forbidden()
        query = _SELECT_CONSUMER.order_by(_consumers.c.uuid)
        if project_id is not None:
            query = query.where(_projects.c.external_id == project_id)
        if user_id is not None:
            query = query.where(_users.c.external_id == user_id)
        if consumer_type is not None:
            query = query.where(_types.c.name == consumer_type)
        if row_filter.kind == "per_row":
            LOG.warning(
                "listing consumers row by row: the list rule has a part SQL cannot express (%s)",
                row_filter.reason,
            )
            rows = self._run(
                lambda conn: self._scan_per_row(conn, snapshot, ctx, query, marker, limit + 1),
                write=False,
            )
        else:
            if row_filter.kind == "condition":
                query = query.where(row_filter.condition)
            if marker is not None:
                query = query.where(_consumers.c.uuid > marker)
            query = query.limit(limit + 1)
            rows = self._run(
                lambda conn: conn.execute(query).all(), write=False, single_statement=True
            )
        page = [_consumer(row) for row in rows[:limit]]
        next_marker = page[-1].uuid if len(rows) > limit else None
        return ConsumerPage(consumers=page, next_marker=next_marker)

    def _scan_per_row(
        self,
        conn: Connection,
        snapshot: PolicySnapshot,
        ctx: Any,
        query: sqlalchemy.Select[Any],
        marker: str | None,
        wanted: int,
    ) -> builtins.list[Row[Any]]:
        """Up to ``wanted`` rows the list rule allows, deciding row by row."""
        allowed: builtins.list[Row[Any]] = []
        while len(allowed) < wanted:
            batch_query = query.limit(PER_ROW_BATCH)
            if marker is not None:
                batch_query = batch_query.where(_consumers.c.uuid > marker)
            batch = conn.execute(batch_query).all()
            for row in batch:
                if self._allowed(snapshot, ctx, LIST, _consumer(row).target()):
                    allowed.append(row)
                    if len(allowed) == wanted:
                        break
            if len(batch) < PER_ROW_BATCH:
                break
            marker = batch[-1].uuid
        return allowed

    # -- writes -----------------------------------------------------------------------

    def create(
        self,
        ctx: Any,
        uuid: str,
        *,
        project_id: str,
        user_id: str,
        consumer_type: str | None = None,
    ) -> Consumer:
        """Create consumer ``uuid`` owned by ``project_id``/``user_id``, at generation 0.

        ``Forbidden`` unless the create rule allows the requested owner;
        ``ConcurrentUpdate`` when the uuid exists already (a uuid is a global
        name: so it is whoever owns it, and even if another create wins a race).
        """
        uuid = validation.normalize_uuid(uuid)
        project_id = validation.validate_external_id(project_id, "project_id")
        user_id = validation.validate_external_id(user_id, "user_id")
        consumer_type = validation.validate_consumer_type(consumer_type)
        target = {
            "project_id": project_id,
            "user_id": user_id,
            "consumer_type": consumer_type,
            "uuid": uuid,
        }
        if not self._allowed(self._enforcer.snapshot(), ctx, CREATE, target):
            raise exception.Forbidden()

        def work(conn: Connection) -> Consumer:
            existing = conn.execute(
                select(_consumers.c.id).where(_consumers.c.uuid == uuid)
            ).first()
            if existing is not None:
                raise exception.ConcurrentUpdate(EXISTS_DETAIL)
            now = _now()
            values = {
                "uuid": uuid,
                "project_id": _get_or_create(conn, _projects.c.external_id, project_id),
                "user_id": _get_or_create(conn, _users.c.external_id, user_id),
                "consumer_type_id": (
                    None
                    if consumer_type is None
                    else _get_or_create(conn, _types.c.name, consumer_type)
                ),
                "generation": 0,
                "created_at": now,
                "updated_at": now,
            }
            # ON CONFLICT DO NOTHING: a create that loses a race to another one
            # is answered like the duplicate it is, not with an integrity error.
            inserted = conn.execute(
                _insert_ignoring_conflict(conn, _consumers, "uuid")
                .values(values)
                .returning(_consumers.c.id)
            ).first()
            if inserted is None:
                raise exception.ConcurrentUpdate(EXISTS_DETAIL)
            return Consumer(
                uuid=uuid,
                project_id=project_id,
                user_id=user_id,
                consumer_type=consumer_type,
                generation=0,
                created_at=now,
                updated_at=now,
            )

        return self._run(work, write=True)

    def update(
        self,
        ctx: Any,
        uuid: str,
        *,
        generation: int,
        project_id: str | None = None,
        user_id: str | None = None,
        consumer_type: str | _Keep | None = KEEP,
    ) -> Consumer:
        """Set the owners (``None``: unchanged) and type of consumer ``uuid``; bump its generation.

        ``generation`` must equal the stored one. ``NotFound`` when missing or
        not visible; ``Forbidden`` without the update right on the current
        owner, or without the create right on a new project or user;
        ``ConcurrentUpdate`` on a stale generation; ``Conflict`` at the
        generation ceiling.
        """
        uuid = validation.normalize_uuid(uuid)
        generation = validation.validate_generation(generation)
        if project_id is not None:
            project_id = validation.validate_external_id(project_id, "project_id")
        if user_id is not None:
            user_id = validation.validate_external_id(user_id, "user_id")
        if not isinstance(consumer_type, _Keep):
            consumer_type = validation.validate_consumer_type(consumer_type)
        snapshot = self._enforcer.snapshot()

        def work(conn: Connection) -> Consumer:
            row_id, current = self._visible_row(conn, snapshot, ctx, uuid)
            if not self._allowed(snapshot, ctx, UPDATE, current.target()):
                raise exception.Forbidden()
            wanted = Consumer(
                uuid=uuid,
                project_id=current.project_id if project_id is None else project_id,
                user_id=current.user_id if user_id is None else user_id,
                consumer_type=(
                    current.consumer_type if isinstance(consumer_type, _Keep) else consumer_type
                ),
                generation=generation + 1,
                created_at=current.created_at,
                updated_at=_now(),
            )
            moves = (wanted.project_id, wanted.user_id) != (current.project_id, current.user_id)
            if moves and not self._allowed(snapshot, ctx, CREATE, wanted.target()):
                raise exception.Forbidden()
            _check_generation(generation, current.generation)
            if current.generation >= validation.MAX_GENERATION:
                raise exception.Conflict(CEILING_DETAIL)
            # Only owners that change are looked up (or created).
            values: dict[str, Any] = {
                "generation": generation + 1,
                "updated_at": wanted.updated_at,
            }
            if wanted.project_id != current.project_id:
                values["project_id"] = _get_or_create(
                    conn, _projects.c.external_id, wanted.project_id
                )
            if wanted.user_id != current.user_id:
                values["user_id"] = _get_or_create(conn, _users.c.external_id, wanted.user_id)
            if wanted.consumer_type != current.consumer_type:
                values["consumer_type_id"] = (
                    None
                    if wanted.consumer_type is None
                    else _get_or_create(conn, _types.c.name, wanted.consumer_type)
                )
            changed = conn.execute(
                sql_update(_consumers)
                .where(_consumers.c.id == row_id, _consumers.c.generation == generation)
                .values(values)
            ).rowcount
            if changed != 1:
                _raise_lost_race(conn, uuid, generation)
            return wanted

        return self._run(work, write=True)

    def delete(self, ctx: Any, uuid: str, *, generation: int | None = None) -> None:
        """Delete consumer ``uuid`` (at ``generation``, when given).

        ``NotFound`` when missing or not visible; ``Forbidden`` without the
        delete right; ``ConcurrentUpdate`` on a stale generation.
        """
        uuid = validation.normalize_uuid(uuid)
        if generation is not None:
            generation = validation.validate_generation(generation)
        snapshot = self._enforcer.snapshot()

        def work(conn: Connection) -> None:
            row_id, current = self._visible_row(conn, snapshot, ctx, uuid)
            if not self._allowed(snapshot, ctx, DELETE, current.target()):
                raise exception.Forbidden()
            if generation is not None:
                _check_generation(generation, current.generation)
            # The decision was made on this generation of the row: delete that one only.
            deleted = conn.execute(
                sql_delete(_consumers).where(
                    _consumers.c.id == row_id,
                    _consumers.c.generation == current.generation,
                )
            ).rowcount
            if deleted != 1:
                _raise_lost_race(conn, uuid, current.generation)

        self._run(work, write=True)

    def ping(self) -> None:
        """Check that the database answers; ``Unavailable`` when it does not."""
        self._run(
            lambda conn: conn.execute(select(1)).scalar_one(), write=False, single_statement=True
        )

    # -- plumbing ---------------------------------------------------------------------

    def _run(self, work: Any, *, write: bool, single_statement: bool = False) -> Any:
        try:
            return db_api.run_in_transaction(
                self._engine, work, write=write, single_statement=single_statement
            )
        except sqlalchemy.exc.IntegrityError as error:
            # Every uniqueness race is handled above; what remains is a fault.
            LOG.warning("integrity error (%s)", type(error.orig).__name__)
            raise exception.Conflict() from None


def _check_generation(expected: int, actual: int) -> None:
    if expected != actual:
        raise exception.ConcurrentUpdate(
            f"Expected generation {expected}, but the consumer is at generation {actual}."
        )


def _raise_lost_race(conn: Connection, uuid: str, expected: int) -> None:
    """A compare-and-swap matched no row: say why, after the fact."""
    actual = conn.execute(
        select(_consumers.c.generation).where(_consumers.c.uuid == uuid)
    ).scalar_one_or_none()
    if actual is None:
        raise exception.NotFound(NOT_FOUND_DETAIL)
    _check_generation(expected, actual)
    raise exception.ConcurrentUpdate(CHANGED_DETAIL)


def _insert_ignoring_conflict(conn: Connection, table: sqlalchemy.Table, column: str) -> Any:
    """``INSERT .. ON CONFLICT (column) DO NOTHING`` in the connection's dialect."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=[column])


def _get_or_create(conn: Connection, name_column: sqlalchemy.Column[str], name: str) -> int:
    """The id of the row whose ``name_column`` is ``name``, inserted if needed.

    Safe when creates race: ``ON CONFLICT DO NOTHING`` then a re-read (a new
    snapshot under READ COMMITTED) instead of catching the unique violation,
    which on PostgreSQL would abort the whole transaction.
    """
    table = name_column.table
    lookup = select(table.c.id).where(name_column == name)
    found = conn.execute(lookup).scalar_one_or_none()
    if found is not None:
        return found
    inserted = conn.execute(
        _insert_ignoring_conflict(conn, table, name_column.key)
        .values({name_column.key: name})
        .returning(table.c.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return inserted
    return conn.execute(lookup).scalar_one()


__all__ = ["KEEP", "Consumer", "ConsumerPage", "ConsumerRepository"]
