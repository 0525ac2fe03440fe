"""Figures and verdicts of a finished run, for ``--json`` and for a terminal."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from typing import Any

from guard.tools.load.engine import LoadRun
from guard.tools.load.history import NO_RESPONSE, Record, Window
from guard.tools.load.invariants import InvariantResult, check_invariants
from guard.tools.load.readback import read_stored


def judge(
    run: LoadRun, *, database_url: str | None = None, grace: float = 5.0
) -> dict[str, object]:
    """Check a finished run's invariants (against the database, if given) and summarize it."""
    records = run.recorder.snapshot()
    stored = None
    if database_url:
        stored = read_stored(database_url, {r.uuid for r in records if r.uuid})
    invariants = check_invariants(records, stored=stored, windows=run.outages.windows, grace=grace)
    return summarize(run, invariants, grace)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(
    run: LoadRun, invariants: Sequence[InvariantResult], grace: float = 5.0
) -> dict[str, object]:
    """The run's figures and verdicts, as ``--json`` prints them."""
    records = run.recorder.snapshot()
    timed = [r for r in records if r.started >= run.seeded]
    latencies = sorted(r.finished - r.started for r in timed if r.status != NO_RESPONSE)
    elapsed = max(run.finished - run.seeded, 1e-9)
    by_persona: dict[str, dict[str, dict[str, int]]] = {}
    for record in records:
        counts = by_persona.setdefault(record.persona, {}).setdefault(record.action, {})
        counts[str(record.status)] = counts.get(str(record.status), 0) + 1
    return {
        "target": run.config.url,
        "threads": run.config.threads,
        "requests": len(timed),
        "seed_requests": len(records) - len(timed),
        "elapsed_seconds": round(elapsed, 3),
        "requests_per_second": round(len(timed) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "max": round((latencies[-1] if latencies else 0.0) * 1000, 2),
        },
        "statuses": dict(sorted(collections.Counter(str(r.status) for r in records).items())),
        "conflicts": sum(1 for r in records if r.code == "guard.concurrent_update"),
        "by_persona": by_persona,
        "outages": [
            _outage_summary(run, records, window, grace) for window in run.outages.windows
        ],
        "invariants": [result.to_dict() for result in invariants],
        "passed": all(result.passed or result.skipped for result in invariants),
    }


def _outage_summary(
    run: LoadRun, records: Sequence[Record], window: Window, grace: float
) -> dict[str, object]:
    """How the service behaved in an outage: its 503s and when it answered again."""
    after = sorted(
        (r for r in records if r.started >= window.end and 200 <= r.status < 500),
        key=lambda r: r.finished,
    )
    return {
        "start_seconds": round(window.start - run.seeded, 3),
        "duration_seconds": round(window.end - window.start, 3),
        "unavailable": sum(1 for r in records if r.status == 503 and window.covers(r, grace)),
        "recovered_after_seconds": (round(after[0].finished - window.end, 3) if after else None),
    }


def render_text(summary: Mapping[str, Any]) -> str:
    """The summary for a terminal."""
    latency = summary["latency_ms"]
    lines = [
        f"{summary['requests']} requests in {summary['elapsed_seconds']} s with "
        f"{summary['threads']} threads: {summary['requests_per_second']} requests/s, "
        f"p50 {latency['p50']} ms, p99 {latency['p99']} ms",
        "statuses: " + ", ".join(f"{k}: {v}" for k, v in dict(summary["statuses"]).items())
        + f" ({summary['conflicts']} generation conflicts)",
    ]  # fmt: skip
    for outage in summary["outages"]:
        recovered = outage["recovered_after_seconds"]
        lines.append(
            f"outage at {outage['start_seconds']} s for {outage['duration_seconds']} s: "
            f"{outage['unavailable']} answered 503, "
            + (f"recovered {recovered} s after it ended" if recovered is not None
               else "no success after it ended")
        )  # fmt: skip
    lines.append("invariants:")
    for result in summary["invariants"]:
        verdict = "SKIP" if result["skipped"] else ("PASS" if result["passed"] else "FAIL")
        note = f" ({result['skipped']})" if result["skipped"] else ""
        lines.append(f"  {verdict} {result['name']}: {result['checked']} checked{note}")
        lines.extend(f"       {violation}" for violation in result["violations"])
    return "\n".join(lines)
