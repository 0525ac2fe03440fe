"""Benchmark: guard's ``Enforcer.authorize()`` against stock oslo.policy's.

Both enforcers run in this process on the same rules, credentials and
targets, each with a policy file on disk that it checks for changes as it
does in a service (stock oslo.policy stats it on every call; guard at most
once per reload interval). Two rule sets: guard's defaults, and a
Placement-like set of base personas and per-API rules. Goal: >= 20x.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_context import context
from oslo_policy import policy

from guard.policies import list_rules
from guard.policy import Enforcer
from guard.tools.bench import BenchResult, rate

GOAL = ">= 20x"

# Placement's base rules and a selection of its API rules, as in its policies/.
PLACEMENT_BASE = {
    "admin_api": "role:admin",
    "service_api": "role:service",
    "admin_or_service_api": "rule:admin_api or rule:service_api",
    "project_reader_api": "role:reader and project_id:%(project_id)s",
    "project_member_api": "role:member and project_id:%(project_id)s",
    "project_reader_or_admin_or_service": "rule:project_reader_api or rule:admin_or_service_api",
}
PLACEMENT_API = [
    "placement:resource_providers:list",
    "placement:resource_providers:show",
    "placement:resource_providers:create",
    "placement:resource_providers:delete",
    "placement:resource_providers:update",
    "placement:resource_providers:inventories:list",
    "placement:resource_providers:inventories:update",
    "placement:resource_providers:usages",
    "placement:allocations:list",
    "placement:allocations:manage",
    "placement:allocations:update",
    "placement:allocations:delete",
    "placement:allocation_candidates:list",
    "placement:traits:list",
    "placement:usages",
]

PROJECT = "8f2c1e7a9b3d4c5e6f708192a3b4c5d6"
OTHER = "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6"
PERSONAS: list[dict[str, Any]] = [
    {"roles": ["admin", "member", "reader"], "project_id": OTHER, "user_id": "u-admin"},
    {"roles": ["service"], "project_id": OTHER, "user_id": "u-service"},
    {"roles": ["member", "reader"], "project_id": PROJECT, "user_id": "u-member"},
    {"roles": ["reader"], "project_id": PROJECT, "user_id": "u-reader"},
    {"roles": ["member", "reader"], "project_id": OTHER, "user_id": "u-other"},
    {"roles": [], "project_id": PROJECT, "user_id": "u-none"},
]
TARGET = {"project_id": PROJECT, "user_id": "u-member", "consumer_type": None}


def placement_defaults() -> list[policy.RuleDefault]:
    """A Placement-like rule set: base personas, and API rules that use them."""
    rules = [policy.RuleDefault(name, check) for name, check in PLACEMENT_BASE.items()]
    for name in PLACEMENT_API:
        reads = name.endswith((":list", ":show", ":usages"))
        check = "rule:project_reader_or_admin_or_service" if reads else "rule:admin_or_service_api"
        rules.append(policy.RuleDefault(name, check, scope_types=["project"]))
    return rules


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    return conf


def _enforcers(
    defaults: list[policy.RuleDefault], policy_file: Path
) -> tuple[policy.Enforcer, Enforcer]:
    oslo = policy.Enforcer(_conf(), policy_file=str(policy_file))
    guard = Enforcer(_conf(), policy_file=str(policy_file))
    for enforcer in (oslo, guard):
        enforcer.register_defaults(defaults)
        enforcer.load_rules()
    return oslo, guard


def _workload(
    enforcer: policy.Enforcer, rules: list[str], creds_list: list[Any]
) -> Callable[[], None]:
    authorize = enforcer.authorize
    cases = [(rule, dict(TARGET), creds) for rule in rules for creds in creds_list]

    def decide_all() -> None:
        for rule, target, creds in cases:
            authorize(rule, target, creds)

    return decide_all


def _compare(
    name: str,
    defaults: list[policy.RuleDefault],
    rules: list[str],
    creds_list: list[Any],
    directory: Path,
    quick: bool,
) -> BenchResult:
    policy_file = directory / f"{name.replace(' ', '-')}.yaml"
    # An operator override, so that both engines really read and use a file.
    policy_file.write_text(f'"{rules[-1]}": "rule:{defaults[0].name}"\n')
    stock, guard = _enforcers(defaults, policy_file)
    decisions = len(rules) * len(creds_list)
    seconds = 0.2 if quick else 1.0
    stock_rate = rate(_workload(stock, rules, creds_list), min_seconds=seconds) * decisions
    guard_rate = rate(_workload(guard, rules, creds_list), min_seconds=seconds) * decisions
    return BenchResult(
        name=f"policy authorize(), {name}",
        subject="guard.policy.Enforcer",
        baseline="oslo_policy.policy.Enforcer",
        subject_per_second=guard_rate,
        baseline_per_second=stock_rate,
        goal=GOAL,
    )


def run(quick: bool = False) -> list[BenchResult]:
    """Measure both enforcers on guard's defaults and a Placement-like rule set."""
    contexts = [
        context.RequestContext(
            roles=p["roles"], project_id=p["project_id"], user_id=p["user_id"], overwrite=False
        )
        for p in PERSONAS
    ]
    guard_rules = [r.name for r in list_rules() if r.name.startswith("guard:")]
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        directory = Path(scratch)
        return [
            _compare("guard defaults", list_rules(), guard_rules, PERSONAS, directory, quick),
            _compare(
                "placement-like rules",
                placement_defaults(),
                PLACEMENT_API,
                PERSONAS,
                directory,
                quick,
            ),
            _compare(
                "guard defaults, RequestContext creds",
                list_rules(),
                guard_rules,
                contexts,
                directory,
                quick,
            ),
        ]


def main() -> None:
    for result in run():
        print(result)


if __name__ == "__main__":
    main()
