"""The pipeline benchmark runs end to end (its numbers are printed, never asserted)."""

from __future__ import annotations

import pytest
import sqlalchemy

from guard.tools.bench import pipeline

# The benchmark sets logging up as `guard serve` does (guard.log.install());
# isolated_install undoes that so later tests in this process see raw records.
pytestmark = pytest.mark.usefixtures("isolated_install")


def test_pipeline_benchmark_measures_both_apps_on_both_databases(postgresql_url: str) -> None:
    # raises if either app answers anything but 200
    results = pipeline.run(quick=True, postgresql_url=postgresql_url, rounds=2)
    names = [result.name for result in results]
    assert names == [
        "pipeline GET /consumers/{uuid} over HTTP, SQLite",
        "pipeline GET /consumers/{uuid} over HTTP, PostgreSQL",
        "pipeline GET /consumers/{uuid} in process (CPU time), SQLite",
        "pipeline GET /consumers/{uuid} in process (CPU time), PostgreSQL",
        "logging per request: access line + decision line",
    ]
    for result in results[:4]:
        assert result.subject == "whole trusted pipeline"
        assert result.baseline == "bare WebOb app, plain engine, same query"
        assert len(result.round_ratios) == 2
    for result in results:
        assert result.subject_per_second > 0 and result.baseline_per_second > 0
        assert result.to_dict()["ratio"] == result.ratio
    assert results[-1].baseline_us == pipeline.LOG_BUDGET_US


def test_the_baseline_runs_no_guard_code() -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    bare = pipeline.BareConsumerApp(engine)
    assert type(bare.engine) is sqlalchemy.engine.Engine
    assert not bare.engine.dispatch.begin and not bare.engine.dispatch.before_execute


def test_http_only_measures_over_http() -> None:
    results = pipeline.run(quick=True, in_process=False, postgresql=False, rounds=2)
    assert [result.name for result in results] == [
        "pipeline GET /consumers/{uuid} over HTTP, SQLite"
    ]
