"""The pipeline benchmark runs end to end (its numbers are printed, never asserted)."""

from __future__ import annotations

from guard.bench import pipeline


def test_pipeline_benchmark_measures_both_apps() -> None:
    (result,) = pipeline.run(quick=True)  # raises if either app answers anything but 200
    assert result.subject == "whole trusted pipeline"
    assert result.baseline == "bare WebOb app, same query"
    assert result.subject_per_second > 0 and result.baseline_per_second > 0
    assert result.to_dict()["ratio"] == result.ratio
