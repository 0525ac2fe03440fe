"""guard's Enforcer decides exactly as stock oslo.policy, decision for decision.

Hypothesis generates check strings (role, rule, generic checks with target
templates and literals, ``@``, ``!``, and/or/not, nesting), rule sets,
registered defaults (scope types, deprecated rules), credentials and targets.
Each case is decided by a stock ``oslo_policy.policy.Enforcer`` and by
``guard.policy.Enforcer`` on the same inputs; the outcomes (value, or the
exception type) must be identical. The first test alone runs 10,000 cases,
with credentials as dicts and as oslo.context ``RequestContext`` objects;
another feeds both operator files with mistakes in them.
tests/unit/test_oslo_floor.py runs this module again on the oldest
oslo.policy that pyproject allows.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from oslo_context import context
from oslo_policy import policy

from guard.policy import Enforcer

ROLES = ["admin", "Admin", "member", "reader", "READER", "service"]
VALUES: list[Any] = ["p1", "p2", "u1", "admin", "True", "1", True, 1, None]
TARGET_KEYS = ["project_id", "user_id", "target.owner", "target.flag", "target.role"]
CREDS_PATHS = [
    "project_id",
    "user_id",
    "is_admin",
    "domain_id",
    "roles",
    "token.project.id",
    "token.roles.name",
    "missing.key",
]
LITERALS = ["True", "False", "1", "'p1'", "'admin'", "None"]
RULE_NAMES = ["a", "b", "default"]


def _template(key: str) -> str:
    return f"%({key})s"


right_side = st.one_of(
    st.sampled_from([*TARGET_KEYS, "missing"]).map(_template),
    st.sampled_from(["p1", "True", "1", "admin", "u1"]),
)
plain_leaf = st.one_of(
    st.sampled_from(["@", "!"]),
    st.sampled_from(ROLES).map(lambda r: f"role:{r}"),
    st.just("role:%(target.role)s"),
    st.builds(lambda k, m: f"{k}:{m}", st.sampled_from(CREDS_PATHS), right_side),
    st.builds(lambda k, m: f"{k}:{m}", st.sampled_from(LITERALS), right_side),
)


def leaves(references: list[str]) -> st.SearchStrategy[str]:
    """Leaf checks; ``rule:`` may name only ``references`` (no cycles)."""
    if not references:
        return plain_leaf
    return plain_leaf | st.sampled_from(references).map(lambda n: f"rule:{n}")


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        children.map(lambda c: f"not {c}"),
        st.builds(lambda a, b: f"({a} and {b})", children, children),
        st.builds(lambda a, b: f"({a} or {b})", children, children),
        st.builds(lambda a, b, c: f"{a} and {b} or {c}", children, children, children),
        st.builds(lambda a, b, c: f"{a} or not {b} and {c}", children, children, children),
    )


def check_strings(references: list[str], max_leaves: int = 6) -> st.SearchStrategy[str]:
    return st.recursive(leaves(references), _combine, max_leaves=max_leaves)


values = st.sampled_from(VALUES)
creds_dicts = st.fixed_dictionaries(
    {},
    optional={
        "roles": st.lists(st.sampled_from(ROLES), max_size=3),
        "project_id": st.one_of(values, st.lists(values, max_size=2)),
        "user_id": values,
        "is_admin": st.booleans(),
        "domain_id": st.sampled_from([None, "d1"]),
        "system_scope": st.sampled_from([None, "all"]),
        "token": st.fixed_dictionaries(
            {},
            optional={
                "project": st.fixed_dictionaries({}, optional={"id": values}),
                "roles": st.lists(st.fixed_dictionaries({"name": st.sampled_from(ROLES)})),
            },
        ),
    },
)
targets = st.dictionaries(st.sampled_from(TARGET_KEYS), values, max_size=4)


def _contexts(creds: dict[str, Any]) -> context.RequestContext:
    """The oslo.context RequestContext a service would pass for these credentials."""
    roles = creds.get("roles", [])
    project = creds.get("project_id")
    user = creds.get("user_id")
    return context.RequestContext(
        user_id=user if isinstance(user, str) else "u1",
        project_id=project if isinstance(project, str) else None,
        is_admin=creds.get("is_admin", False),
        roles=roles,
        system_scope=creds.get("system_scope"),
        domain_id=creds.get("domain_id"),
        overwrite=False,
    )


def _conf(enforce_new_defaults: bool = True) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    policy.Enforcer(conf)  # registers the [oslo_policy] options
    conf.set_override("enforce_new_defaults", enforce_new_defaults, group="oslo_policy")
    conf.set_override("policy_dirs", [], group="oslo_policy")
    return conf


def outcome(call: Any) -> tuple[str, Any]:
    """What a decision gave: its value and type, or the exception type raised."""
    try:
        result = call()
    except Exception as exc:  # the exception type is part of the contract
        return ("raised", type(exc).__name__)
    return ("returned", (type(result).__name__, result))


def decide(enforcer: policy.Enforcer, method: str, rule: str, target: dict, creds: Any, do_raise):
    # enforce() writes creds["system"] (top level only): a shallow copy isolates it.
    creds = creds if isinstance(creds, context.RequestContext) else dict(creds)
    return outcome(lambda: getattr(enforcer, method)(rule, dict(target), creds, do_raise=do_raise))


def assert_same(stock: policy.Enforcer, guard: Enforcer, names, creds_list, target_list) -> int:
    """Compare every decision; returns the number of cases compared."""
    cases = 0
    for name in names:
        for creds in creds_list:
            for target in target_list:
                for method, do_raise in (("enforce", False), ("authorize", True)):
                    expected = decide(stock, method, name, target, creds, do_raise)
                    actual = decide(guard, method, name, target, creds, do_raise)
                    assert actual == expected, (name, method, do_raise, creds, target)
                    cases += 1
    return cases


# One pair of enforcers for the single-rule test: rules are swapped per example
# with set_rules(), the way oslo.policy's own tests drive an enforcer.
SCOPED = {"x": None, "px": ["project"], "sx": ["system"], "psx": ["project", "system"]}


def _scoped_pair() -> tuple[policy.Enforcer, Enforcer]:
    pair = []
    for cls in (policy.Enforcer, Enforcer):
        enforcer = cls(_conf(), use_conf=False)
        for name, scopes in SCOPED.items():
            if name != "x":
                enforcer.register_default(policy.RuleDefault(name, "!", scope_types=scopes))
        pair.append(enforcer)
    return pair[0], pair[1]


PAIR = _scoped_pair()


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    check=check_strings(["a", "b", "default", "nope"]),
    helpers=st.fixed_dictionaries(
        {"a": check_strings(["b", "default", "nope"], 3), "b": plain_leaf},
        optional={"default": st.sampled_from(["@", "!", "role:reader", "rule:b"])},
    ),
    creds=st.one_of(creds_dicts, creds_dicts.map(_contexts)),
    target=targets,
)
def test_one_rule_decides_as_oslo_policy(check, helpers, creds, target):
    stock, guard = PAIR
    rules = {**helpers, **dict.fromkeys(SCOPED, check)}
    for enforcer in (stock, guard):
        enforcer.set_rules(policy.Rules.from_dict(rules, "default"), use_conf=False)
    calls = [
        ("enforce", "x", False),
        ("enforce", "px", True),
        ("enforce", "sx", True),
        ("enforce", "psx", False),
        ("enforce", "nope", True),
        ("authorize", "x", True),
    ]
    for method, name, do_raise in calls:
        expected = decide(stock, method, name, target, creds, do_raise)
        assert decide(guard, method, name, target, creds, do_raise) == expected, (method, name)


class _Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, **decision: Any) -> None:
        self.records.append(decision)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    check=check_strings(["a", "b", "nope"]),
    helpers=st.fixed_dictionaries(
        {"a": check_strings(["b", "nope"], 3), "b": plain_leaf},
    ),
    creds=creds_dicts,
    target=targets,
)
def test_the_decision_log_and_explain_agree_with_the_decision(check, helpers, creds, target):
    """Recording a decision, or explaining it, never changes it."""
    stock = policy.Enforcer(_conf(), use_conf=False)
    guard = Enforcer(_conf(), use_conf=False)
    rules = policy.Rules.from_dict({**helpers, "x": check})
    for enforcer in (stock, guard):
        enforcer.set_rules(rules, use_conf=False)
    guard.decision_log = recorder = _Recorder()
    expected = decide(stock, "enforce", "x", target, creds, False)
    assert decide(guard, "enforce", "x", target, creds, False) == expected
    if expected[0] == "raised":
        return
    allowed = bool(expected[1][1])
    assert [r["allowed"] for r in recorder.records] == [allowed]
    assert (recorder.records[0]["branch"] == "denied") is not allowed
    explanation = guard.explain("x", dict(target), copy.deepcopy(creds))
    assert explanation.allowed is allowed
    assert (explanation.deciding_branch == "denied") is not allowed


def _acyclic_rule_set(draw: st.DrawFn, names: list[str]) -> dict[str, str]:
    """Check strings where each rule refers only to rules defined before it."""
    rules: dict[str, str] = {}
    for name in names:
        rules[name] = draw(check_strings(list(rules), 4))
    return rules


@st.composite
def policy_setups(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(st.sampled_from(["r1", "r2", "r3", "r4", "base"]), min_size=1, unique=True)
    )
    simple = plain_leaf
    registered = []
    for name in names:
        deprecated = draw(st.none() | simple)
        registered.append(
            {
                "name": name,
                "check_str": draw(simple),
                "scope_types": draw(st.sampled_from([None, ["project"], ["system"]])),
                "deprecated": deprecated,
                "deprecated_name": draw(st.sampled_from([name, f"old_{name}"])),
            }
        )
    file_names = draw(
        st.lists(st.sampled_from([*names, "helper", "old_r1", "old_r2"]), unique=True)
    )
    return {
        "registered": registered,
        "file": _acyclic_rule_set(draw, file_names),
        "enforce_new_defaults": draw(st.booleans()),
    }


def _registered_defaults(setup: dict[str, Any]) -> list[policy.RuleDefault]:
    defaults = []
    for spec in setup["registered"]:
        deprecated = None
        if spec["deprecated"] is not None:
            deprecated = policy.DeprecatedRule(
                spec["deprecated_name"],
                spec["deprecated"],
                deprecated_reason="renamed",
                deprecated_since="1.0",
            )
        defaults.append(
            policy.RuleDefault(
                spec["name"],
                spec["check_str"],
                scope_types=spec["scope_types"],
                deprecated_rule=deprecated,
            )
        )
    return defaults


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    setup=policy_setups(),
    creds_list=st.lists(creds_dicts, min_size=1, max_size=3),
    target_list=st.lists(targets, min_size=1, max_size=2),
)
def test_policy_file_with_defaults_decides_as_oslo_policy(
    tmp_path_factory: pytest.TempPathFactory, setup, creds_list, target_list
):
    path = Path(tmp_path_factory.mktemp("policy")) / "policy.yaml"
    path.write_text(yaml.safe_dump(setup["file"]))
    enforcers = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cls in (policy.Enforcer, Enforcer):
            enforcer = cls(_conf(setup["enforce_new_defaults"]), policy_file=str(path))
            enforcer.register_defaults(_registered_defaults(setup))
            enforcers.append(enforcer)
        names = [spec["name"] for spec in setup["registered"]]
        names += [*setup["file"], "undefined"]
        everyone = creds_list + [_contexts(c) for c in creds_list]
        assert assert_same(enforcers[0], enforcers[1], names, everyone, target_list) > 0


def test_a_reference_cycle_raises_as_in_oslo_policy():
    stock, guard = _scoped_pair()
    rules = {"x": "rule:px", "px": "role:admin or rule:x", "sx": "@", "psx": "@"}
    for enforcer in (stock, guard):
        enforcer.set_rules(policy.Rules.from_dict(rules), use_conf=False)
    admin, nobody = {"roles": ["admin"]}, {"roles": []}
    assert decide(guard, "enforce", "x", {}, admin, False) == ("returned", ("bool", True))
    expected = decide(stock, "enforce", "x", {}, nobody, False)
    assert expected[0] == "raised"  # oslo.policy recurses until Python gives up
    assert decide(guard, "enforce", "x", {}, nobody, False) == expected


# Operator mistakes: each is refused by guard's whole-file validation; stock
# oslo.policy loads most of them (a deny-all, an undefined rule falling back
# to the default rule, a cycle) and raises on a value that is no check string.
MISTAKES = {
    "undefined": "rule:nobody_defined_this",
    "no parse": "role:admin or",
    "open paren": "(role:reader",
    "bare word": "admin",
    "cycle": "rule:loop_b",
    "not a string": 7,
}
LOOP = {"loop_b": "rule:loop_c", "loop_c": "role:reader and rule:loop_b"}


@st.composite
def mistaken_files(draw: st.DrawFn) -> dict[str, Any]:
    """A good setup plus an edit of its file with at least one mistake in it."""
    setup = draw(policy_setups())
    names = [spec["name"] for spec in setup["registered"]] + ["helper", "extra"]
    kinds = draw(st.lists(st.sampled_from(sorted(MISTAKES)), min_size=1, max_size=3))
    bad = dict(setup["file"])
    for kind in kinds:
        bad[draw(st.sampled_from(names))] = MISTAKES[kind]
        if kind == "cycle":
            bad.update(LOOP)
    return {**setup, "bad": bad}


def _write(path: Path, rules: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(rules) if rules else "{}\n")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(setup=mistaken_files(), creds_list=st.lists(creds_dicts, min_size=1, max_size=2))
def test_operator_files_with_mistakes_decide_as_oslo_policy(
    tmp_path_factory: pytest.TempPathFactory, setup, creds_list
):
    """Under oslo's API both load the mistaken file; make_enforcer keeps the good one.

    Either way, every decision on the rules that loaded equals stock oslo.policy's
    on the same rules (for a refused edit: stock on the last good file).
    """
    directory = Path(tmp_path_factory.mktemp("mistakes"))
    good, bad = directory / "good.yaml", directory / "bad.yaml"
    _write(good, setup["file"])
    _write(bad, setup["bad"])
    names = [spec["name"] for spec in setup["registered"]]
    names += [*setup["bad"], "undefined"]
    everyone = creds_list + [_contexts(c) for c in creds_list]
    targets_ = [{"project_id": "p1", "user_id": "u1"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # oslo.policy's API: guard loads what oslo.policy loads, mistakes included.
        pair = []
        for cls in (policy.Enforcer, Enforcer):
            enforcer = cls(_conf(setup["enforce_new_defaults"]), policy_file=str(bad))
            enforcer.register_defaults(_registered_defaults(setup))
            pair.append(enforcer)
        loaded = [outcome(enforcer.load_rules) for enforcer in pair]
        assert loaded[0] == loaded[1]
        if loaded[0][0] == "returned":
            assert assert_same(pair[0], pair[1], names, everyone, targets_) > 0
        # guard's service: the mistaken edit is refused, the good rules stay.
        stock = policy.Enforcer(_conf(setup["enforce_new_defaults"]), policy_file=str(good))
        strict = Enforcer(_conf(setup["enforce_new_defaults"]), policy_file=str(good))
        strict.fail_closed()
        for enforcer in (stock, strict):
            enforcer.register_defaults(_registered_defaults(setup))
            enforcer.load_rules()
        strict.policy_file = str(bad)
        strict.load_rules()
        assert strict.last_reload_error is not None
        assert assert_same(stock, strict, names, everyone, targets_) > 0
