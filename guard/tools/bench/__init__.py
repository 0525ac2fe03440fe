"""guard's benchmarks: each measures guard against a baseline in the same process.

A benchmark never asserts a timing; it reports rates and their ratio so that a
person (or ``guard bench``) can compare them on the machine at hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BenchResult:
    """One measurement: guard's rate beside its baseline's, and the ratio."""

    name: str
    subject: str
    baseline: str
    subject_per_second: float
    baseline_per_second: float
    goal: str = ""

    @property
    def ratio(self) -> float:
        """Relative throughput: subject rate / baseline rate (2.0: twice as fast)."""
        return self.subject_per_second / self.baseline_per_second

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio}

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.subject} {self.subject_per_second:,.0f}/s vs "
            f"{self.baseline} {self.baseline_per_second:,.0f}/s -> {self.ratio:.2f}x "
            f"{'(' + self.goal + ')' if self.goal else ''}"
        ).rstrip()


def rate(func: Callable[[], object], *, min_seconds: float = 0.5, repeat: int = 3) -> float:
    """Calls per second of ``func``: the best of ``repeat`` runs of ``min_seconds`` each."""
    best = 0.0
    for _ in range(repeat):
        calls = 0
        batch = 1
        start = time.perf_counter()
        while True:
            for _ in range(batch):
                func()
            calls += batch
            elapsed = time.perf_counter() - start
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
    subject_best = baseline_best = 0.0
    for _ in range(rounds):
        subject_best = max(subject_best, rate(subject, min_seconds=min_seconds, repeat=1))
        baseline_best = max(baseline_best, rate(baseline, min_seconds=min_seconds, repeat=1))
    return subject_best, baseline_best
