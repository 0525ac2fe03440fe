"""guard's benchmarks: each measures guard against a baseline in the same process.

A benchmark never asserts a timing; it reports rates and their ratio so that a
person (or ``guard bench``) can compare them on the machine at hand: the best
rate of each side, the time of one call it means (microseconds), and, when
the two were measured in alternating rounds, the spread of the per-round
ratios (how much the machine's load moved them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class BenchResult:
    """One measurement: guard's rate beside its baseline's, and the ratio."""

    name: str
    subject: str
    baseline: str
    subject_per_second: float
    baseline_per_second: float
    goal: str = ""
    #: The ratio of each alternating round (subject's rate / baseline's), if any.
    round_ratios: tuple[float, ...] = field(default=())

    @property
    def ratio(self) -> float:
        """Relative throughput: subject rate / baseline rate (2.0: twice as fast)."""
        return self.subject_per_second / self.baseline_per_second

    @property
    def subject_us(self) -> float:
        """Microseconds one call of the subject takes at its best rate."""
        return 1e6 / self.subject_per_second

    @property
    def baseline_us(self) -> float:
        """Microseconds one call of the baseline takes at its best rate."""
        return 1e6 / self.baseline_per_second

    @property
    def spread(self) -> str:
        """The lowest and highest per-round ratio (``""`` without rounds)."""
        if not self.round_ratios:
            return ""
        return f"{min(self.round_ratios):.2f}-{max(self.round_ratios):.2f}"

    def to_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "ratio": self.ratio,
            "subject_us": self.subject_us,
            "baseline_us": self.baseline_us,
            "spread": self.spread,
        }

    def __str__(self) -> str:
        spread = f" (rounds {self.spread})" if self.spread else ""
        return (
            f"{self.name}: {self.subject} {self.subject_per_second:,.0f}/s "
            f"({self.subject_us:,.1f} us) vs {self.baseline} {self.baseline_per_second:,.0f}/s "
            f"({self.baseline_us:,.1f} us) -> {self.ratio:.2f}x{spread} "
            f"{'(' + self.goal + ')' if self.goal else ''}"
        ).rstrip()


#: A clock for :func:`rate`: wall time (``time.perf_counter``) measures what a
#: client waits for; this process's CPU time (``time.process_time``, all its
#: threads) measures what a call costs the host, and other processes on a
#: shared machine move it far less.
Clock = Callable[[], float]


def rate(
    func: Callable[[], object],
    *,
    min_seconds: float = 0.5,
    repeat: int = 3,
    clock: Clock = time.perf_counter,
    settle: Callable[[], object] | None = None,
) -> float:
    """Calls per second of ``func``: the best of ``repeat`` runs of ``min_seconds`` each.

    ``settle`` runs at the end of each run, inside the timed span: work that
    ``func`` hands to another thread (the decision log's writer) is then
    charged to it.
    """
    best = 0.0
    for _ in range(repeat):
        calls = 0
        batch = 1
        start = clock()
        while True:
            for _ in range(batch):
                func()
            calls += batch
            if settle is not None:
                settle()
            elapsed = clock() - start
            if elapsed >= min_seconds:
                break
            batch *= 2
        best = max(best, calls / elapsed)
    return best


def paired_rates(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int = 12,
    min_seconds: float = 0.15,
) -> tuple[float, float]:
    """Best rates of ``subject`` and ``baseline`` measured in alternation.

    Alternating short runs (``rounds`` of ``min_seconds`` each) exposes both
    to the same background load, so the ratio stays meaningful on a busy
    machine instead of charging the noise to whichever ran second; many
    short rounds give each side more chances of a quiet moment than a few
    long ones.
    """
    subject_rates, baseline_rates = paired_rounds(
        subject, baseline, rounds=rounds, min_seconds=min_seconds
    )
    return max(subject_rates), max(baseline_rates)


def paired_rounds(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int = 12,
    min_seconds: float = 0.15,
    clock: Clock = time.perf_counter,
    settle_subject: Callable[[], object] | None = None,
) -> tuple[list[float], list[float]]:
    """The rate of ``subject`` and of ``baseline`` in each of ``rounds`` alternating rounds."""
    subject_rates: list[float] = []
    baseline_rates: list[float] = []
    for _ in range(rounds):
        subject_rates.append(
            rate(subject, min_seconds=min_seconds, repeat=1, clock=clock, settle=settle_subject)
        )
        baseline_rates.append(rate(baseline, min_seconds=min_seconds, repeat=1, clock=clock))
    return subject_rates, baseline_rates


def paired_result(
    subject_rates: list[float], baseline_rates: list[float], **fields: str
) -> BenchResult:
    """A result of alternating rounds: each side's best rate, and every round's ratio."""
    return BenchResult(
        subject_per_second=max(subject_rates),
        baseline_per_second=max(baseline_rates),
        round_ratios=tuple(s / b for s, b in zip(subject_rates, baseline_rates, strict=True)),
        **fields,
    )


def format_table(results: list[BenchResult]) -> str:
    """Render results as a Markdown table (the README shows this table)."""
    lines = [
        "| benchmark | guard | baseline | guard/s | baseline/s | guard us | baseline us "
        "| ratio | rounds | goal |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.subject} | {r.baseline} | {r.subject_per_second:,.0f} | "
            f"{r.baseline_per_second:,.0f} | {r.subject_us:,.1f} | {r.baseline_us:,.1f} | "
            f"{r.ratio:.2f} | {r.spread} | {r.goal} |"
        )
    return "\n".join(lines)
