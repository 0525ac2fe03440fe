"""What must hold: the invariants a run's history (and the final rows) is judged by."""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

from guard.tools.load.history import (
    IN_DOUBT,
    NO_RESPONSE,
    Record,
    Window,
    acknowledged_generation,
)


@dataclasses.dataclass(frozen=True)
class StoredConsumer:
    """A consumer row as the database holds it at the end of a run."""

    project_id: str
    generation: int


@dataclasses.dataclass
class InvariantResult:
    """The verdict of one invariant: how many things it checked and what broke."""

    name: str
    checked: int = 0
    violations: list[str] = dataclasses.field(default_factory=list)
    #: Why it was not checked (e.g. no database given); None when it was.
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.skipped is None and not self.violations

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "checked": self.checked,
            "skipped": self.skipped,
            "violation_count": len(self.violations),
            "violations": self.violations[:20],
        }


def _short(consumer_uuid: str | None) -> str:
    """The first block of a uuid: enough to find the row, short enough for a terminal."""
    return f"{(consumer_uuid or '?')[:8]}..."


def _by_uuid(records: Iterable[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = collections.defaultdict(list)
    for record in records:
        if record.uuid is not None:
            grouped[record.uuid].append(record)
    return grouped


def check_acknowledged_writes(
    records: Sequence[Record], stored: Mapping[str, StoredConsumer] | None
) -> InvariantResult:
    """Every acknowledged write is in the database; every acknowledged delete is gone.

    Assumes, as the generator guarantees, that a uuid is created at most once.
    """
    result = InvariantResult("acknowledged_writes_kept")
    if stored is None:
        result.skipped = "no --database given"
        return result
    for consumer_uuid, history in _by_uuid(records).items():
        writes = [r for r in history if r.acknowledged_write]
        deleted = any(r.action == "delete" and r.status == 204 for r in history)
        if not writes and not deleted:
            continue
        result.checked += 1
        row = stored.get(consumer_uuid)
        if deleted:
            if row is not None:
                result.violations.append(
                    f"consumer {_short(consumer_uuid)}: delete was acknowledged, row is there"
                )
            continue
        maybe_deleted = any(r.action == "delete" and r.status in IN_DOUBT for r in history)
        if row is None:
            if not maybe_deleted:
                result.violations.append(
                    f"consumer {_short(consumer_uuid)}: acknowledged write lost, row is missing"
                )
            continue
        owner = writes[-1].target_project
        if owner is not None and row.project_id != owner:
            result.violations.append(f"consumer {_short(consumer_uuid)}: owner changed")
        acknowledged = max(acknowledged_generation(r) or 0 for r in writes)
        maybe_updated = any(r.action == "update" and r.status in IN_DOUBT for r in history)
        if row.generation < acknowledged or (row.generation != acknowledged and not maybe_updated):
            result.violations.append(
                f"consumer {_short(consumer_uuid)}: stored generation {row.generation}, "
                f"last acknowledged {acknowledged}"
            )
    return result


@dataclasses.dataclass(frozen=True)
class _Observation:
    generation: int
    started: float
    finished: float
    write: bool


def check_generations(records: Sequence[Record]) -> InvariantResult:
    """No generation goes backwards or repeats, and no update skips one.

    Requests overlapping in time may be served in any order; a request that
    started after another's answer arrived must see that answer's effect
    (PostgreSQL commits before guard answers), which is what "in
    acknowledgement order" can promise over a network.
    """
    result = InvariantResult("generations_monotonic")
    observations: dict[str, list[_Observation]] = collections.defaultdict(list)
    deletes: dict[str, float] = {}
    for record in records:
        if record.action == "delete" and record.status == 204 and record.uuid:
            deletes[record.uuid] = min(deletes.get(record.uuid, math.inf), record.finished)
        if record.status not in (200, 201):
            continue
        write = record.acknowledged_write
        for seen in record.seen:
            observations[seen.uuid].append(
                _Observation(seen.generation, record.started, record.finished, write)
            )
        if record.action == "update" and record.status == 200:
            answered = acknowledged_generation(record)
            if record.sent_generation is None or answered != record.sent_generation + 1:
                result.violations.append(
                    f"consumer {_short(record.uuid)}: update from generation "
                    f"{record.sent_generation} answered generation {answered}"
                )
    for consumer_uuid, observed in observations.items():
        result.checked += 1
        written = [o.generation for o in observed if o.write]
        repeated = {g for g in written if written.count(g) > 1}
        if repeated:
            result.violations.append(
                f"consumer {_short(consumer_uuid)}: generation(s) {sorted(repeated)} "
                "acknowledged to more than one write (a lost update)"
            )
        result.violations.extend(
            f"consumer {_short(consumer_uuid)}: {problem}" for problem in _out_of_order(observed)
        )
        gone = deletes.get(consumer_uuid)
        if gone is not None and any(o.started > gone for o in observed):
            result.violations.append(
                f"consumer {_short(consumer_uuid)}: seen again after its delete was acknowledged"
            )
    return result


def _out_of_order(seen: list[_Observation]) -> Iterator[str]:
    """Observations that contradict one acknowledged before they started.

    A sweep over observations by start time, folding in those that finished
    before each start: O(n log n) per consumer instead of comparing all pairs.
    """
    by_finish = sorted(seen, key=lambda o: o.finished)
    newest = -1
    folded = 0
    for observation in sorted(seen, key=lambda o: o.started):
        while folded < len(by_finish) and by_finish[folded].finished < observation.started:
            newest = max(newest, by_finish[folded].generation)
            folded += 1
        if observation.write and observation.generation <= newest:
            yield (
                f"write acknowledged generation {observation.generation} after generation "
                f"{newest} had been acknowledged"
            )
        elif not observation.write and observation.generation < newest:
            yield f"read generation {observation.generation} after {newest} (went backwards)"


def check_server_errors(
    records: Sequence[Record], windows: Sequence[Window] = (), grace: float = 5.0
) -> InvariantResult:
    """Every request was answered; 5xx only as 503 ``guard.unavailable`` in an outage."""
    result = InvariantResult("no_server_errors")
    for record in records:
        result.checked += 1
        if record.status == NO_RESPONSE:
            result.violations.append(f"{record.persona} {record.action}: no response")
        elif record.status >= 500:
            expected = (
                record.status == 503
                and record.code == "guard.unavailable"
                and any(window.covers(record, grace) for window in windows)
            )
            if not expected:
                result.violations.append(
                    f"{record.persona} {record.action}: {record.status} {record.code or ''}"
                    f"{'' if windows else ' (no outage was marked)'}".rstrip()
                )
    return result


def check_project_isolation(records: Sequence[Record]) -> InvariantResult:
    """No project-scoped persona sees another project's consumer, id or existence."""
    result = InvariantResult("project_isolation")
    for record in records:
        if record.scope is None:
            continue
        result.checked += 1
        label = f"{record.persona} {record.action}"
        foreign = [s for s in record.seen if s.project_id != record.scope]
        if foreign:
            result.violations.append(
                f"{label}: received {len(foreign)} consumer(s) of another project"
            )
        elif record.mentioned_projects - {record.scope}:
            result.violations.append(f"{label}: response names another project's id")
        if (
            record.target_project not in (None, record.scope)
            and record.action in ("show", "update", "delete")
            and record.status not in (404, NO_RESPONSE)
            and record.status < 500
        ):
            result.violations.append(
                f"{label}: another project's consumer answered {record.status}, not 404"
            )
    return result


def check_invariants(
    records: Sequence[Record],
    *,
    stored: Mapping[str, StoredConsumer] | None = None,
    windows: Sequence[Window] = (),
    grace: float = 5.0,
) -> list[InvariantResult]:
    """Judge a run's history (and, if given, the database's final rows)."""
    return [
        check_acknowledged_writes(records, stored),
        check_generations(records),
        check_server_errors(records, windows, grace),
        check_project_isolation(records),
    ]
