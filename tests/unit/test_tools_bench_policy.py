"""The policy benchmark compares like with like: both engines decide the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.policies import list_rules
from guard.tools.bench import policy as bench


@pytest.mark.parametrize(
    ("defaults", "rules"),
    [
        (list_rules, [r.name for r in list_rules() if r.name.startswith("guard:")]),
        (bench.placement_defaults, bench.PLACEMENT_API),
    ],
)
def test_both_enforcers_make_the_same_decisions_on_the_workload(tmp_path: Path, defaults, rules):
    policy_file = tmp_path / "policy.yaml"
    defaults = defaults()
    policy_file.write_text(f'"{rules[-1]}": "rule:{defaults[0].name}"\n')
    stock, guard = bench._enforcers(defaults, policy_file)
    decisions = [
        (
            stock.authorize(rule, dict(bench.TARGET), dict(creds)),
            guard.authorize(rule, dict(bench.TARGET), dict(creds)),
        )
        for rule in rules
        for creds in bench.PERSONAS
    ]
    assert all(mine == theirs for theirs, mine in decisions)
    # The personas are not all allowed or all denied: the workload decides.
    assert {theirs for theirs, _ in decisions} == {True, False}
