"""The benchmark report: ratios are relative throughput and the table shows them."""

import itertools

from guard.cmd.bench import format_table
from guard.tools.bench import BenchResult, rate


def test_ratio_is_subject_over_baseline():
    result = BenchResult("x", "guard", "oslo", subject_per_second=2000, baseline_per_second=100)
    assert result.ratio == 20
    assert result.to_dict()["ratio"] == 20
    assert "20.00x" in str(result)


def test_table_has_a_row_per_result():
    results = [
        BenchResult("a", "s1", "b1", 10, 5, goal=">= 2"),
        BenchResult("b", "s2", "b2", 1, 4),
    ]
    table = format_table(results).splitlines()
    assert len(table) == 4
    assert "| a | s1 | b1 | 10 | 5 | 2.00 | >= 2 |" in table
    assert "| b | s2 | b2 | 1 | 4 | 0.25 |  |" in table


def test_rate_counts_calls():
    counter = itertools.count()
    per_second = rate(lambda: next(counter), min_seconds=0.01, repeat=2)
    assert per_second > 0
    assert next(counter) > 2
