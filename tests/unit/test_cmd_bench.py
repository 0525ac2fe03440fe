"""The benchmark report: ratios are relative throughput and the table shows them."""

import itertools
import time

from guard.cmd.bench import format_table
from guard.tools.bench import BenchResult, paired_result, rate


def test_ratio_is_subject_over_baseline():
    result = BenchResult("x", "guard", "oslo", subject_per_second=2000, baseline_per_second=100)
    assert result.ratio == 20
    assert result.to_dict()["ratio"] == 20
    assert "20.00x" in str(result)
    assert result.subject_us == 500 and result.baseline_us == 10_000
    assert "(500.0 us)" in str(result) and result.spread == ""


def test_paired_result_keeps_each_rounds_ratio():
    result = paired_result([100, 80], [200, 100], name="x", subject="s", baseline="b")
    assert result.subject_per_second == 100 and result.baseline_per_second == 200
    assert result.round_ratios == (0.5, 0.8)
    assert result.spread == "0.50-0.80" and "rounds 0.50-0.80" in str(result)
    assert result.to_dict()["spread"] == "0.50-0.80"


def test_table_has_a_row_per_result():
    results = [
        BenchResult("a", "s1", "b1", 10, 5, goal=">= 2"),
        BenchResult("b", "s2", "b2", 1, 4),
    ]
    table = format_table(results).splitlines()
    assert len(table) == 4
    assert "| a | s1 | b1 | 10 | 5 | 100,000.0 | 200,000.0 | 2.00 |  | >= 2 |" in table
    assert "| b | s2 | b2 | 1 | 4 | 1,000,000.0 | 250,000.0 | 0.25 |  |  |" in table


def test_rate_counts_calls():
    counter = itertools.count()
    per_second = rate(lambda: next(counter), min_seconds=0.01, repeat=2)
    assert per_second > 0
    assert next(counter) > 2


def test_rate_settles_inside_the_timed_span():
    settled = []
    per_second = rate(
        lambda: None,
        min_seconds=0.01,
        repeat=1,
        clock=time.process_time,
        settle=lambda: settled.append(1),
    )
    assert per_second > 0 and settled
