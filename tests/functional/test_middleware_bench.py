"""The pipeline benchmark runs end to end (its numbers are printed, never asserted)."""

from __future__ import annotations

import pytest

from guard.tools.bench import pipeline

# The benchmark sets logging up as `guard serve` does (guard.log.install());
# isolated_install undoes that so later tests in this process see raw records.
pytestmark = pytest.mark.usefixtures("isolated_install")


def test_pipeline_benchmark_measures_both_apps() -> None:
    # raises if either app answers anything but 200
    over_http, in_process = pipeline.run(quick=True)
    for result in (over_http, in_process):
        assert result.subject == "whole trusted pipeline"
        assert result.baseline == "bare WebOb app, same query"
        assert result.subject_per_second > 0 and result.baseline_per_second > 0
        assert result.to_dict()["ratio"] == result.ratio
    assert "in process" in in_process.name and "in process" not in over_http.name


def test_http_only_measures_over_http() -> None:
    (result,) = pipeline.run(quick=True, in_process=False)
    assert result.name == "pipeline GET /consumers/{uuid}"
