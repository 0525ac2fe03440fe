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
