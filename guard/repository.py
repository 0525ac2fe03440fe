"""The only door to consumer rows: validate, authorize, then query, in one transaction.

Every method takes the caller's request context first, validates its input
before any SQL runs (the one place values are validated: every caller,
tools included, comes through here), and asks the policy engine about the
*stored row's* owners (for a create, the requested owner), never about the
caller's own ids. The SQL lives in :mod:`guard.db.consumers`; this module
holds the decisions and the errors.

* A row the caller may not show is reported exactly as a missing one (same
  error, same detail), for get, update and delete: no existence oracle.
* A denied write issues no INSERT, UPDATE or DELETE.
* Writes are compare-and-swaps on the row's generation, so a decision made
  on a row can never be applied to a row that changed in between.
* A change of owner or type needs ``update`` on the row as stored and
  ``create`` on the row as it will be.
* A list shows a row only when the list rule *and* the show rule allow it
  (a list never shows what a get hides). Both are compiled for the caller
  into one SQL condition (:mod:`guard.policy.sqlfilter`) and paged by uuid
  (keyset), so a page costs the same at a thousand rows as at a million; a
  rule SQL cannot express is evaluated row by row, in batches.

Only :mod:`guard.exception` errors leave this module; database faults become
``Unavailable`` with a detail that names no host, user or SQL.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

import sqlalchemy
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from guard import exception, validation
from guard.auditline import list_branch
from guard.context import RequestContext
from guard.db import consumers as db
from guard.db.consumers import Consumer
from guard.policy import Enforcer, PolicySnapshot, sqlfilter
from guard.policy.filtercache import FilterCache

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
#: The target of a decision on a uuid no row has (see ``_Call.shown``).
_NO_OWNER: Final = {"project_id": None, "user_id": None, "consumer_type": None}
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
class ListDecision:
    """How one list request is decided, before any row is read.

    ``outcome`` is ``"denied"`` (the list rule can allow no row for these
    credentials: 403), ``"allowed_all"`` (list and show allow every row) or
    ``"filtered"`` (``row_filter`` says which rows, in SQL and, for what SQL
    cannot express, row by row). A list request is one decision: this is
    the place to record it.
    """

    outcome: Literal["denied", "allowed_all", "filtered"]
    row_filter: sqlfilter.RowFilter


@dataclass(frozen=True)
class ConsumerPage:
    """One page of a list; ``next_marker`` is ``None`` exactly when no visible row follows."""

    consumers: builtins.list[Consumer]
    next_marker: str | None


class _Call:
    """One repository call: the caller and the one policy snapshot all its decisions use.

    A policy reload between two decisions of one call cannot mix two rule sets.
    """

    __slots__ = ("ctx", "enforcer", "snapshot")

    def __init__(self, enforcer: Enforcer, ctx: RequestContext) -> None:
        self.enforcer = enforcer
        self.ctx = ctx
        self.snapshot: PolicySnapshot = enforcer.snapshot()

    def allows(self, action: str, target: dict[str, Any]) -> bool:
        """One decision; an engine that fails to decide denies (fail closed)."""
        try:
            return bool(
                self.enforcer.authorize_in(self.snapshot, action, target, self.ctx, do_raise=False)
            )
        except Exception as error:
            LOG.warning("policy check %s failed (%s); denied", action, type(error).__name__)
            return False

    def shown(self, consumer: Consumer | None, uuid: str) -> Consumer:
        """``consumer`` (of ``uuid``) if it exists and the caller may show it; else NotFound."""
        if consumer is None:
            self.missing(uuid)
        if not self.allows(SHOW, consumer.target()):
            raise exception.NotFound(NOT_FOUND_DETAIL)
        return consumer

    def missing(self, uuid: str) -> NoReturn:
        """The one NotFound of a uuid no row has, after a decision on a target with no owner.

        A missing row then costs what an invisible row costs (a decision and
        its log line), so the time a 404 takes does not tell whether another
        project's row exists (measured over loopback HTTP before: a missing
        row answered 40-70 us sooner than an invisible one).
        """
        self.allows(SHOW, {**_NO_OWNER, "uuid": uuid})
        raise exception.NotFound(NOT_FOUND_DETAIL)

    def visible(self, conn: Connection, uuid: str) -> tuple[int, Consumer]:
        """The row id and consumer ``uuid`` if the caller may show it; else the one NotFound."""
        found = db.find_row(conn, uuid)
        if found is None:
            self.missing(uuid)
        row_id, consumer = found
        return row_id, self.shown(consumer, uuid)

    def decide_list(self, decisions: FilterCache[ListDecision]) -> ListDecision:
        """The one decision of a list request (see :class:`ListDecision`).

        Made once per snapshot and credentials (:func:`_decide_list`), then
        taken from ``decisions``; this is where each request gets its answer.
        """
        return decisions.get(self.snapshot, self.ctx)

    def record_list(self, decision: ListDecision, target: dict[str, Any], started: float) -> None:
        """The one decision-log line of a list request (all rows, filtered, or denied)."""
        # A show rule that hides every row still answers 200: "filtered".
        kind = {"denied": "deny", "allowed_all": "allow"}.get(decision.outcome, "condition")
        log = getattr(self.enforcer, "decision_log", None)
        if log is None:
            return
        try:
            compiled = self.snapshot.compiled_rule(LIST)
            log.record(
                action=LIST,
                allowed=decision.outcome != "denied",
                branch=list_branch(kind, compiled.label if compiled else None),
                creds=self.ctx,
                target=target,
                revision=self.snapshot.revision,
                microseconds=(time.perf_counter() - started) * 1e6,
                request_id=getattr(self.ctx, "request_id", None),
                global_request_id=getattr(self.ctx, "global_request_id", None),
            )
        except Exception:  # the decision stands whatever the log does
            LOG.debug("The decision log failed to record a list decision", exc_info=True)


def _decide_list(snapshot: PolicySnapshot, values: Mapping[str, Any]) -> ListDecision:
    """How a list is decided for callers with these credential ``values``.

    403 is the list rule's answer alone, from the credentials (DESIGN.md);
    the show rule then narrows the rows, so a list never shows what a get
    hides. Both are compiled into one SQL condition where SQL can say them.
    """
    list_filter = sqlfilter.compile_values(snapshot, LIST, values, db.TARGET_COLUMNS)
    if list_filter.kind == "deny":
        return ListDecision("denied", sqlfilter.DENY)
    show_filter = sqlfilter.compile_values(snapshot, SHOW, values, db.TARGET_COLUMNS)
    row_filter = sqlfilter.conjoin(list_filter, show_filter)
    outcome: Literal["allowed_all", "filtered"] = (
        "allowed_all" if row_filter.kind == "allow" else "filtered"
    )
    return ListDecision(outcome, row_filter)


class ConsumerRepository:
    """Guarded access to consumers: ``ConsumerRepository(engine, enforcer)``.

    ``enforcer`` is a :class:`guard.policy.Enforcer`. Each call takes one
    policy snapshot and makes all of its decisions on it.
    """

    def __init__(self, engine: Engine, enforcer: Enforcer) -> None:
        self._engine = engine
        self._enforcer = enforcer
        self._list_decisions = FilterCache(_decide_list)

    # -- reads ------------------------------------------------------------------------

    def get(self, ctx: RequestContext, uuid: str) -> Consumer:
        """The consumer ``uuid``; ``NotFound`` when missing or not visible to the caller."""
        uuid = validation.normalize_uuid(uuid)
        call = _Call(self._enforcer, ctx)
        # One SELECT is atomic on its own; the decision is made on the row it
        # read, after the connection is back in the pool (held no longer than
        # the query needs).
        return call.shown(db.find_one(self._engine, uuid), uuid)

    def can_list(self, ctx: RequestContext) -> bool:
        """Whether the list rule can allow any row for these credentials (not the data)."""
        return _Call(self._enforcer, ctx).decide_list(self._list_decisions).outcome != "denied"

    def list(
        self,
        ctx: RequestContext,
        *,
        project_id: str | None = None,
        user_id: str | None = None,
        consumer_type: str | None = None,
        limit: int | str = validation.DEFAULT_LIMIT,
        marker: str | None = None,
    ) -> ConsumerPage:
        """One page of the consumers the list and show rules let the caller see, in uuid order.

        ``project_id``, ``user_id`` and ``consumer_type`` narrow the list;
        ``marker`` is the ``next_marker`` of the previous page. ``Forbidden``
        when the list rule cannot allow any row for these credentials.
        """
        if project_id is not None:
            project_id = validation.validate_external_id(project_id, "project_id")
        if user_id is not None:
            user_id = validation.validate_external_id(user_id, "user_id")
        consumer_type = validation.validate_consumer_type(consumer_type)
        limit = validation.validate_limit(limit)
        if marker is not None:
            marker = validation.normalize_uuid(marker, "marker")
        call = _Call(self._enforcer, ctx)
        started = time.perf_counter()
        decision = call.decide_list(self._list_decisions)
        call.record_list(decision, {"project_id": project_id, "user_id": user_id}, started)
        if decision.outcome == "denied":
            raise exception.Forbidden()
        row_filter = decision.row_filter
        query = db.list_query(project_id=project_id, user_id=user_id, consumer_type=consumer_type)
        if row_filter.condition is not None:
            query = query.where(row_filter.condition)
        if row_filter.kind == "deny":  # the show rule hides every row
            rows: builtins.list[Consumer] = []
        elif row_filter.kind == "per_row":
            LOG.warning(
                "listing consumers row by row: a rule has a part SQL cannot express (%s)",
                row_filter.reason,
            )
            check = sqlfilter.per_row_check(call.snapshot, row_filter, ctx)
            rows = db.transact(
                self._engine,
                lambda conn: _scan_per_row(conn, check, query, marker, limit + 1),
                write=False,
            )
        else:
            rows = db.transact(
                self._engine,
                lambda conn: db.page(conn, query, marker=marker, limit=limit + 1),
                write=False,
                single_statement=True,
            )
        page = rows[:limit]
        next_marker = page[-1].uuid if len(rows) > limit else None
        return ConsumerPage(consumers=page, next_marker=next_marker)

    # -- writes -----------------------------------------------------------------------

    def create(
        self,
        ctx: RequestContext,
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
        moment = db.now()
        wanted = Consumer(
            uuid=uuid,
            project_id=project_id,
            user_id=user_id,
            consumer_type=consumer_type,
            generation=0,
            created_at=moment,
            updated_at=moment,
        )
        if not _Call(self._enforcer, ctx).allows(CREATE, wanted.target()):
            raise exception.Forbidden()

        def work(conn: Connection) -> Consumer:
            if db.exists(conn, uuid) or not db.insert(conn, wanted):
                raise exception.ConcurrentUpdate(EXISTS_DETAIL)
            return wanted

        return db.transact(self._engine, work, write=True)

    def update(
        self,
        ctx: RequestContext,
        uuid: str,
        *,
        generation: int,
        project_id: str | None = None,
        user_id: str | None = None,
        consumer_type: str | _Keep | None = KEEP,
    ) -> Consumer:
        """Set the owners (``None``: unchanged) and type of consumer ``uuid``; bump its generation.

        ``generation`` must equal the stored one. ``NotFound`` when missing or
        not visible; ``Forbidden`` without the update right on the row as
        stored, or, when the owner or the type changes, without the create
        right on the row as it will be;
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
        call = _Call(self._enforcer, ctx)

        def work(conn: Connection) -> Consumer:
            row_id, current = call.visible(conn, uuid)
            if not call.allows(UPDATE, current.target()):
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
                updated_at=db.now(),
            )
            # A new owner or type is a new row as far as the rules go: the
            # caller needs the right to create it (update on the stored row
            # was checked above).
            if _attributes(wanted) != _attributes(current) and not call.allows(
                CREATE, wanted.target()
            ):
                raise exception.Forbidden()
            _check_generation(generation, current.generation)
            if current.generation >= validation.MAX_GENERATION:
                raise exception.Conflict(CEILING_DETAIL)
            if not db.replace(conn, row_id, current, wanted, generation=generation):
                _raise_lost_race(conn, uuid, generation)
            return wanted

        return db.transact(self._engine, work, write=True)

    def delete(self, ctx: RequestContext, uuid: str, *, generation: int | None = None) -> None:
        """Delete consumer ``uuid`` (at ``generation``, when given).

        ``NotFound`` when missing or not visible; ``Forbidden`` without the
        delete right; ``ConcurrentUpdate`` on a stale generation.
        """
        uuid = validation.normalize_uuid(uuid)
        if generation is not None:
            generation = validation.validate_generation(generation)
        call = _Call(self._enforcer, ctx)

        def work(conn: Connection) -> None:
            row_id, current = call.visible(conn, uuid)
            if not call.allows(DELETE, current.target()):
                raise exception.Forbidden()
            if generation is not None:
                _check_generation(generation, current.generation)
            # The decision was made on this generation of the row: delete that one only.
            if not db.remove(conn, row_id, generation=current.generation):
                _raise_lost_race(conn, uuid, current.generation)

        db.transact(self._engine, work, write=True)

    def ping(self) -> None:
        """Check that the database answers; ``Unavailable`` when it does not."""
        db.transact(
            self._engine,
            lambda conn: conn.execute(select(1)).scalar_one(),
            write=False,
            single_statement=True,
        )


def _scan_per_row(
    conn: Connection,
    check: Callable[[Mapping[str, Any]], bool],
    query: sqlalchemy.Select[Any],
    marker: str | None,
    wanted: int,
) -> builtins.list[Consumer]:
    """Up to ``wanted`` rows of ``query`` that ``check`` allows, read in batches.

    A row on which a rule raises is hidden (fail closed); such rows are
    reported in one warning per call, not one per row.
    """
    allowed: builtins.list[Consumer] = []
    failures: dict[str, int] = {}
    try:
        for batch in db.batches(conn, query, marker=marker, size=PER_ROW_BATCH):
            for consumer in batch:
                try:
                    passed = check(consumer.target())
                except Exception as error:
                    name = type(error).__name__
                    failures[name] = failures.get(name, 0) + 1
                    continue
                if passed:
                    allowed.append(consumer)
                    if len(allowed) == wanted:
                        return allowed
        return allowed
    finally:
        if failures:
            LOG.warning(
                "policy check failed on %d listed row(s) (%s); those rows are hidden",
                sum(failures.values()),
                ", ".join(sorted(failures)),
            )


def _attributes(consumer: Consumer) -> tuple[str, str, str | None]:
    """The attributes whose change needs the create right: the owners and the type."""
    return consumer.project_id, consumer.user_id, consumer.consumer_type


def _check_generation(expected: int, actual: int) -> None:
    if expected != actual:
        raise exception.ConcurrentUpdate(
            f"Expected generation {expected}, but the consumer is at generation {actual}."
        )


def _raise_lost_race(conn: Connection, uuid: str, expected: int) -> None:
    """A compare-and-swap matched no row: say why, after the fact."""
    actual = db.generation_of(conn, uuid)
    if actual is None:
        raise exception.NotFound(NOT_FOUND_DETAIL)
    _check_generation(expected, actual)
    raise exception.ConcurrentUpdate(CHANGED_DETAIL)


__all__ = ["KEEP", "Consumer", "ConsumerPage", "ConsumerRepository"]
