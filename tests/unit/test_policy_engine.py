"""guard's defaults, enforcer extras (revision, snapshot, decision log, explain)."""

from __future__ import annotations

import warnings

import pytest
from oslo_config import cfg
from oslo_context import context
from oslo_policy import _checks, policy

from guard.logfingerprints import fingerprint
from guard.policies import InvalidDefaultsFile, list_rules, load_rule_defaults
from guard.policy import Enforcer, make_enforcer
from guard.policy.checkstrings import check_string_problem
from guard.policy.creds import creds_dict

DESIGN_TABLE = {
    "admin": "role:admin",
    "service": "role:service",
    "project_reader": "role:reader and project_id:%(project_id)s",
    "project_member": "role:member and project_id:%(project_id)s",
    "guard:consumers:list": "rule:admin or rule:service or rule:project_reader",
    "guard:consumers:show": "rule:admin or rule:service or rule:project_reader",
    "guard:consumers:create": "rule:admin or rule:service or rule:project_member",
    "guard:consumers:update": "rule:admin or rule:service or rule:project_member",
    "guard:consumers:delete": "rule:admin or rule:service or rule:project_member",
}
TARGET = {"project_id": "p1", "user_id": "u1", "consumer_type": None, "uuid": "x"}


def new_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="guard", default_config_files=[], default_config_dirs=[])
    return conf


@pytest.fixture
def enforcer() -> Enforcer:
    return make_enforcer(new_conf())


class RecordingLog:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def record(self, **decision) -> None:
        self.records.append(decision)


def test_defaults_are_designs_table_with_project_scope():
    rules = list_rules()
    assert {r.name: r.check_str for r in rules} == DESIGN_TABLE
    assert all(r.scope_types == ["project"] for r in rules)
    consumer_rules = [r for r in rules if r.name.startswith("guard:")]
    assert all(isinstance(r, policy.DocumentedRuleDefault) for r in consumer_rules)


def test_defaults_files_carry_deprecated_rules_and_reject_unknown_keys():
    (rule,) = load_rule_defaults(
        """
- name: guard:consumers:show
  check_str: role:reader
  description: Show.
  operations: [{path: "/consumers/{uuid}", method: GET}]
  deprecated_rule:
    name: placement:consumers:show
    check_str: role:admin
    deprecated_reason: renamed
    deprecated_since: 2026.1
"""
    )
    assert rule.deprecated_rule.name == "placement:consumers:show"
    assert rule.deprecated_rule.deprecated_since == "2026.1"
    with pytest.raises(InvalidDefaultsFile):
        load_rule_defaults("- {name: a, check_str: '@', description: d, scopes: [x]}")


@pytest.mark.parametrize(
    ("creds", "show", "create"),
    [
        ({"roles": ["admin", "member", "reader"], "project_id": "other"}, True, True),
        ({"roles": ["service"], "project_id": "other"}, True, True),
        ({"roles": ["member", "reader"], "project_id": "p1"}, True, True),
        ({"roles": ["reader"], "project_id": "p1"}, True, False),
        ({"roles": ["member", "reader"], "project_id": "p2"}, False, False),
        ({"roles": [], "project_id": "p1"}, False, False),
    ],
)
def test_personas(enforcer, creds, show, create):
    assert enforcer.authorize("guard:consumers:show", dict(TARGET), dict(creds)) is show
    assert enforcer.authorize("guard:consumers:create", dict(TARGET), dict(creds)) is create


def test_a_system_scoped_token_fails_the_project_scoped_rules(enforcer):
    ctx = context.RequestContext(roles=["admin"], system_scope="all", overwrite=False)
    assert enforcer.authorize("guard:consumers:show", dict(TARGET), ctx) is False
    with pytest.raises(policy.InvalidScope):
        enforcer.authorize("guard:consumers:show", dict(TARGET), ctx, do_raise=True)


def test_unregistered_and_undefined_rules_fail_as_in_oslo_policy(enforcer):
    with pytest.raises(policy.PolicyNotRegistered):
        enforcer.authorize("guard:consumers:index", {}, {"roles": ["admin"]})
    assert enforcer.enforce("guard:consumers:index", {}, {"roles": ["admin"]}) is False
    with pytest.raises(policy.PolicyNotAuthorized):
        enforcer.enforce("guard:consumers:index", {}, {"roles": ["admin"]}, do_raise=True)
    with pytest.raises(policy.InvalidContextObject):
        enforcer.enforce("admin", {}, ["admin"])


def test_snapshot_exposes_resolved_rules_registered_defaults_and_revision(enforcer):
    snapshot = enforcer.snapshot()
    assert set(snapshot.rules) == set(DESIGN_TABLE)
    assert isinstance(snapshot.rules["guard:consumers:list"], _checks.OrCheck)
    assert snapshot.registered["guard:consumers:list"].scope_types == ["project"]
    assert snapshot.revision == enforcer.revision and len(snapshot.revision) == 16
    assert enforcer.snapshot() is snapshot  # no change, no new revision


def test_in_place_rule_changes_recompile_and_change_the_revision(enforcer):
    reader = {"roles": ["reader"], "project_id": "p1"}
    before = enforcer.revision
    assert enforcer.enforce("guard:consumers:show", dict(TARGET), dict(reader))
    enforcer.rules["project_reader"] = _checks.FalseCheck()
    assert not enforcer.enforce("guard:consumers:show", dict(TARGET), dict(reader))
    assert enforcer.revision != before
    enforcer.set_rules({"guard:consumers:show": _checks.TrueCheck()}, use_conf=False)
    assert enforcer.enforce("guard:consumers:show", {}, {})


def test_the_decision_log_gets_one_record_per_decision_with_the_branch(enforcer):
    log = RecordingLog()
    enforcer.decision_log = log
    member = context.RequestContext(
        roles=["member", "reader"], project_id="p1", request_id="req-1", overwrite=False
    )
    assert enforcer.authorize("guard:consumers:update", dict(TARGET), member)
    assert not enforcer.authorize("guard:consumers:update", {"project_id": "p2"}, member)
    system = {"roles": ["admin"], "system_scope": "all"}
    assert not enforcer.authorize("guard:consumers:update", dict(TARGET), system)
    assert [(r["allowed"], r["branch"]) for r in log.records] == [
        (True, "rule:project_member"),
        (False, "denied"),
        (False, "scope"),
    ]
    first = log.records[0]
    assert first["action"] == "guard:consumers:update"
    assert first["revision"] == enforcer.revision
    assert first["request_id"] == "req-1"
    assert isinstance(first["microseconds"], int) and first["microseconds"] >= 0


def test_a_failing_decision_log_never_changes_a_decision(enforcer):
    class Broken:
        def record(self, **decision):
            raise RuntimeError("disk full")

    enforcer.decision_log = Broken()
    assert enforcer.authorize("guard:consumers:show", dict(TARGET), {"roles": ["admin"]})
    with pytest.raises(policy.PolicyNotAuthorized):
        enforcer.authorize("guard:consumers:show", dict(TARGET), {"roles": []}, do_raise=True)


def test_branch_labels_fingerprint_literal_values():
    enforcer = Enforcer(new_conf(), use_conf=False)
    enforcer.set_rules(
        policy.Rules.from_dict(
            {
                "r": "project_id:0123abcd or role:admin",
                "b": "'acme-billing-prod':%(project_id)s",
            }
        ),
        use_conf=False,
    )
    log = RecordingLog()
    enforcer.decision_log = log
    enforcer.enforce("r", {}, {"project_id": "0123abcd"})
    assert log.records[0]["branch"] == f"project_id:{fingerprint('0123abcd')}"
    enforcer.enforce("b", {"project_id": "acme-billing-prod"}, {})
    assert log.records[1]["branch"] == f"{fingerprint('acme-billing-prod')}:%(project_id)s"
    assert "acme-billing-prod" not in str([record["branch"] for record in log.records])
    explanation = enforcer.explain("r", {}, {"project_id": "nope"})
    assert "0123abcd" not in str(explanation)


def test_explain_names_the_deciding_branch_and_skipped_operands(enforcer):
    admin = {"roles": ["admin"], "project_id": "p9"}
    explanation = enforcer.explain("guard:consumers:show", dict(TARGET), admin)
    assert explanation.allowed and explanation.deciding_branch == "rule:admin"
    text = str(explanation)
    assert "rule:service: skipped" in text and "rule:project_reader: skipped" in text
    missing = enforcer.explain("guard:consumers:show", {}, {"roles": ["reader"]})
    assert not missing.allowed
    assert "the target has no 'project_id'" in str(missing)


class CountingCheck(_checks.Check):
    """A custom check kind: compiled rules must hand it to oslo.policy as is."""

    seen: list[str | None] = []

    def __call__(self, target, creds, enforcer, current_rule=None):
        self.seen.append(current_rule)
        return creds.get("tenant") == self.match


def test_custom_and_unevaluable_checks_are_delegated_to_oslo_policy():
    _checks.register("guardtestcustom", CountingCheck)
    rules = {"r": "guardtestcustom:t1 or rule:s", "s": "1a:%(x)s"}
    outcomes = []
    for cls in (policy.Enforcer, Enforcer):
        enforcer = cls(new_conf(), use_conf=False)
        enforcer.set_rules(policy.Rules.from_dict(rules), use_conf=False)
        CountingCheck.seen = []
        allowed = enforcer.enforce("r", {"x": "1"}, {"tenant": "t1"})
        with pytest.raises(SyntaxError):  # oslo lets literal_eval's error escape
            enforcer.enforce("r", {"x": "1"}, {"tenant": "t2"})
        outcomes.append((allowed, list(CountingCheck.seen)))
    assert outcomes[0] == outcomes[1] == (True, ["r", "r"])


@pytest.mark.parametrize(
    ("check_str", "valid"),
    [
        ("", True),
        ("@", True),
        ("!", True),
        ("not (role:a or rule:b) and project_id:%(project_id)s", True),
        ("((role:a))", True),
        ("'Member':%(role.name)s", True),
        ("role:a or", False),
        ("(role:a", False),
        ("role:a)", False),
        ("admin", False),
        ("role:a 'quoted'", False),
        ("not", False),
        ("role:a and and role:b", False),
    ],
)
def test_check_string_validation(check_str, valid):
    assert (check_string_problem(check_str) is None) is valid
    if valid:  # what guard accepts, oslo.policy parses to the same tree
        assert str(policy.RuleDefault("x", check_str).check) != "!" or check_str == "!"


class _ContextWithDeprecatedValue(context.RequestContext):
    """A service's context that adds a deprecated key, as nova's once added ``tenant``."""

    def to_policy_values(self):
        values = super().to_policy_values()
        values["tenant"] = self.project_id
        return values


@pytest.mark.parametrize(
    "ctx",
    [
        context.RequestContext(user_id="u1", project_id="p1", roles=["reader"], overwrite=False),
        context.RequestContext(system_scope="all", roles=["admin"], overwrite=False),
        _ContextWithDeprecatedValue(user_id="u", project_id="p", overwrite=False),
    ],
)
def test_credentials_from_a_context_are_oslo_policys(enforcer, ctx):
    """The same dict as oslo's mapping; deprecated keys still warn when read, as in oslo."""
    stock = policy.Enforcer._map_context_attributes_into_creds(enforcer, ctx)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        ours = creds_dict(enforcer, ctx)
    assert ours == {**stock, **({"system": "all"} if stock["system_scope"] else {})}
    assert [w.category for w in warned] == [DeprecationWarning] * ("tenant" in stock)


def test_a_replaced_or_overridden_context_mapping_is_called(enforcer, monkeypatch):
    """The copy is oslo's method's result; a service's own method (or a patch) is honoured."""
    calls = []

    def mapping(self, ctx):
        calls.append(ctx)
        return {"roles": ["admin"], "project_id": "px"}

    ctx = context.RequestContext(user_id="u1", project_id="p1", roles=[], overwrite=False)
    assert not enforcer.authorize("guard:consumers:show", TARGET, ctx)
    monkeypatch.setattr(policy.Enforcer, "_map_context_attributes_into_creds", mapping)
    assert enforcer.authorize("guard:consumers:show", TARGET, ctx)
    monkeypatch.undo()

    class ServiceEnforcer(Enforcer):
        _map_context_attributes_into_creds = mapping

    service = make_enforcer(new_conf())
    service.__class__ = ServiceEnforcer
    assert service.authorize("guard:consumers:show", TARGET, ctx)
    assert calls == [ctx, ctx]
