"""The logging-cost benchmark runs end to end (its numbers are printed, never asserted)."""

from __future__ import annotations

import logging

import pytest

from guard.tools.bench import logcost, pipeline

# The benchmark sets logging up as `guard serve` does (guard.log.install(),
# oslo.log's setup); isolated_install undoes the filter's process-wide parts.
pytestmark = pytest.mark.usefixtures("isolated_install")


def test_the_logging_cost_is_measured_in_place_and_through_oslo_log() -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    results = logcost.run(quick=True, rounds=2)
    assert [result.name for result in results] == [
        "logging per request in place, a stream handler: GET /consumers/{uuid}, SQLite",
        "logging per request in place, oslo.log's handler: GET /consumers/{uuid}, SQLite",
        "logging per request through oslo.log's handler",
        "logging per request through oslo.log's handler, with a log file (two handlers)",
    ]
    for result in results:
        assert result.subject_per_second > 0
        assert result.baseline_us == pipeline.LOG_BUDGET_US
        assert len(result.round_ratios) == 2
    assert root.handlers == handlers  # oslo.log's handler is gone again
    assert logging.getLogger("guard").handlers == []
