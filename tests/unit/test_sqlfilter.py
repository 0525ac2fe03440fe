"""The rule -> SQL compiler, check kind by check kind, against stock oslo.policy.

Each compiled condition is run on an in-memory SQLite table and must select
exactly the rows that ``oslo_policy.policy.Enforcer.enforce`` allows; the
three-way answers (allow, deny, per-row) are asserted where the rule alone
decides them.
"""

from __future__ import annotations

import pytest
import sqlalchemy
from oslo_config import cfg
from oslo_policy import policy

from guard.context import RequestContext
from guard.policies import list_rules
from guard.policy import make_enforcer
from guard.policy.filtercache import FilterCache
from guard.policy.sqlfilter import (
    compile_filter,
    compile_values,
    conjoin,
    per_row_check,
)

LIST = "guard:consumers:list"
SHOW = "guard:consumers:show"
KEYS = ("project_id", "user_id", "consumer_type", "uuid")
ROWS = [
    ("pa", "u1", None, "00000000-0000-0000-0000-00000000000a"),
    ("pa", "u2", "VM", "00000000-0000-0000-0000-00000000000b"),
    ("pb", "u1", "VM", "00000000-0000-0000-0000-00000000000c"),
    ("None", "u2", None, "00000000-0000-0000-0000-00000000000d"),
    ("pb", "None", "NONE", "00000000-0000-0000-0000-00000000000e"),
]

metadata = sqlalchemy.MetaData()
consumers = sqlalchemy.Table(
    "consumers",
    metadata,
    *(
        sqlalchemy.Column(key, sqlalchemy.String(255), nullable=key == "consumer_type")
        for key in KEYS
    ),
)
COLUMNS = {key: consumers.c[key] for key in KEYS}


@pytest.fixture(scope="module")
def table() -> sqlalchemy.Engine:
    engine = sqlalchemy.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(consumers.insert(), [dict(zip(KEYS, row, strict=True)) for row in ROWS])
    return engine


def enforcers(rules: dict[str, str]):
    """guard's enforcer (the subject) and stock oslo.policy's (the reference)."""
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    strings = {rule.name: rule.check_str for rule in list_rules()}
    strings.update(rules)
    parsed = policy.Rules.from_dict(strings)
    guard = make_enforcer(conf)
    guard.set_rules(parsed, overwrite=True, use_conf=False)
    reference = policy.Enforcer(conf, use_conf=False)
    reference.register_defaults(list_rules())
    reference.set_rules(parsed, overwrite=True, use_conf=False)
    return guard, reference


def context(**values) -> RequestContext:
    values.setdefault("user_id", "u1")
    return RequestContext(**values)


def selected(engine: sqlalchemy.Engine, row_filter) -> set[str]:
    query = sqlalchemy.select(consumers.c.uuid)
    if row_filter.kind == "deny":
        return set()
    if row_filter.kind == "condition":
        query = query.where(row_filter.condition)
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def allowed_by_oslo(reference, ctx) -> set[str]:
    return {
        row[3] for row in ROWS if reference.enforce(LIST, dict(zip(KEYS, row, strict=True)), ctx)
    }


CASES = [
    # (list rule, credentials, expected kind)
    ("role:admin or rule:project_reader", {"roles": ["admin"], "project_id": "pa"}, "allow"),
    ("role:admin or rule:project_reader", {"roles": ["reader"], "project_id": "pa"}, "condition"),
    ("role:admin or rule:project_reader", {"roles": ["member"], "project_id": "pa"}, "deny"),
    ("role:admin or rule:project_reader", {"roles": ["ADMIN"], "project_id": "pa"}, "allow"),
    ("project_id:%(project_id)s", {"project_id": "None"}, "condition"),
    ("not project_id:%(consumer_type)s", {"project_id": "None"}, "condition"),
    ("user_id:%(user_id)s and not 'VM':%(consumer_type)s", {"project_id": "pa"}, "condition"),
    ("'VM':%(consumer_type)s or 'None':%(consumer_type)s", {}, "condition"),
    ("project_id:%(nonexistent)s", {"project_id": "pa"}, "deny"),
    ("not project_id:%(nonexistent)s", {"project_id": "pa"}, "allow"),
    ("True:True", {}, "allow"),
    ("'pa':pb", {}, "deny"),
    ("project_id:x-%(project_id)s-y", {"project_id": "x-pb-y"}, "condition"),
    ("project_id:%(project_id)s/%(user_id)s", {"project_id": "pa/u2"}, "condition"),
    ("role:%(consumer_type)s", {"roles": ["vm"]}, "condition"),
    ("roles:%(project_id)s", {"roles": ["pb", "reader"]}, "condition"),
    ("'100%':100%%", {}, "allow"),
    ("rule:undefined or user_id:%(user_id)s", {"project_id": "pa", "user_id": "u2"}, "condition"),
    ("rule:undefined", {"project_id": "pa"}, "deny"),
    ("project_id:%(project_id)d", {"project_id": "pa"}, "per_row"),
    ("http://127.0.0.1:9/check", {"project_id": "pa"}, "per_row"),
    # left to right, as oslo.policy short-circuits: the http check is never reached
    ("role:admin or http://127.0.0.1:9/check", {"roles": ["admin"]}, "allow"),
    ("role:admin and http://127.0.0.1:9/check", {"roles": ["member"]}, "deny"),
    # ... or it is, and it decides
    ("http://127.0.0.1:9/check or role:admin", {"roles": ["admin"]}, "per_row"),
    ("role:reader and (http://127.0.0.1:9/check or @)", {"roles": ["reader"]}, "per_row"),
    ("rule:loop", {"roles": ["reader"]}, "per_row"),
]


@pytest.mark.parametrize(("rule", "creds", "kind"), CASES)
def test_compiled_rule_selects_what_oslo_policy_allows(table, rule, creds, kind):
    guard, reference = enforcers({LIST: rule, "loop": "role:x or rule:loop"})
    ctx = context(**creds)
    row_filter = compile_filter(guard.snapshot(), LIST, ctx, COLUMNS)
    assert row_filter.kind == kind
    if kind == "per_row":
        assert LIST in row_filter.reason
        return
    assert selected(table, row_filter) == allowed_by_oslo(reference, ctx)


def test_values_from_the_credentials_are_bound_parameters_not_sql_text():
    guard, _ = enforcers({})
    ctx = context(roles=["reader"], project_id="pa' OR '1'='1")
    row_filter = compile_filter(guard.snapshot(), LIST, ctx, COLUMNS)
    compiled = row_filter.condition.compile(compile_kwargs={})
    assert "pa'" not in str(compiled)
    assert "pa' OR '1'='1" in compiled.params.values()


def test_a_system_scoped_token_fails_project_scoped_rules():
    guard, _ = enforcers({})
    for values in ({"system_scope": "all"}, {"domain_id": "d1"}):
        ctx = context(roles=["admin", "member", "reader"], **values)
        assert compile_filter(guard.snapshot(), LIST, ctx, COLUMNS).kind == "deny"
    project_admin = context(roles=["admin"], project_id="pa")
    assert compile_filter(guard.snapshot(), LIST, project_admin, COLUMNS).kind == "allow"


def test_an_unknown_rule_falls_back_to_the_default_rule(table):
    guard, reference = enforcers({"default": "user_id:%(user_id)s"})
    ctx = context(user_id="u2")
    row_filter = compile_filter(guard.snapshot(), "guard:consumers:unregistered", ctx, COLUMNS)
    assert row_filter.kind == "condition"
    assert selected(table, row_filter) == {
        row[3]
        for row in ROWS
        if reference.enforce(
            "guard:consumers:unregistered", dict(zip(KEYS, row, strict=True)), ctx
        )
    }
    without_default, _ = enforcers({})
    assert compile_filter(without_default.snapshot(), "nope", ctx, COLUMNS).kind == "deny"


def test_plain_credential_dicts_are_accepted_like_contexts(table):
    guard, reference = enforcers({LIST: "nested.ids:%(user_id)s"})
    creds = {"nested": [{"ids": "u2"}, {"ids": ["u1", "other"]}], "roles": []}
    row_filter = compile_filter(guard.snapshot(), LIST, creds, COLUMNS)
    assert row_filter.kind == "condition"
    assert selected(table, row_filter) == {
        row[3]
        for row in ROWS
        if reference.enforce(LIST, dict(zip(KEYS, row, strict=True)), dict(creds))
    }


def selected_with_fallback(engine: sqlalchemy.Engine, snapshot, row_filter, ctx) -> set[str]:
    """The rows a conjoined filter selects: its SQL part, then its per-row rules."""
    if row_filter.kind == "deny":
        return set()
    query = sqlalchemy.select(*consumers.c)
    if row_filter.condition is not None:
        query = query.where(row_filter.condition)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    if row_filter.kind != "per_row":
        return {row["uuid"] for row in rows}
    check = per_row_check(snapshot, row_filter, ctx)
    return {row["uuid"] for row in rows if denies_on_error(lambda row=row: check(row))}


def denies_on_error(decide) -> bool:
    """A rule that raises on a row denies it (as the repository hides the row)."""
    try:
        return bool(decide())
    except Exception:
        return False


PAIRS = [
    # (list rule, show rule, credentials, kind of the conjunction)
    ("@", "@", {}, "allow"),
    ("@", "!", {}, "deny"),
    ("!", "@", {}, "deny"),
    ("project_id:%(project_id)s", "user_id:%(user_id)s", {"project_id": "pa"}, "condition"),
    ("@", "user_id:%(user_id)s", {}, "condition"),
    ("http://127.0.0.1:9/x", "user_id:%(user_id)s", {}, "per_row"),
    ("project_id:%(project_id)s", "project_id:%(project_id)d", {"project_id": "pb"}, "per_row"),
]


@pytest.mark.parametrize(("list_rule", "show_rule", "creds", "kind"), PAIRS)
def test_conjoined_filters_select_what_both_rules_allow(table, list_rule, show_rule, creds, kind):
    guard, reference = enforcers({LIST: list_rule, SHOW: show_rule})
    ctx = context(**creds)
    snapshot = guard.snapshot()
    both = conjoin(
        compile_filter(snapshot, LIST, ctx, COLUMNS), compile_filter(snapshot, SHOW, ctx, COLUMNS)
    )
    assert both.kind == kind
    if kind == "per_row":
        # only the rule SQL cannot express is left to Python
        assert len(both.per_row) == 1
        if both.per_row == (LIST,):
            return  # an http check: not evaluated offline
    expected = {
        row[3]
        for row in ROWS
        if all(
            denies_on_error(
                lambda action=action, row=row: reference.enforce(
                    action, dict(zip(KEYS, row, strict=True)), ctx
                )
            )
            for action in (LIST, SHOW)
        )
    }
    assert selected_with_fallback(table, snapshot, both, ctx) == expected


def list_cache(max_entries: int = 1024) -> FilterCache:
    """A cache of the list rule's filter, counting how often it compiles."""

    def build(snapshot, values):
        build.calls += 1
        return compile_values(snapshot, LIST, values, COLUMNS)

    build.calls = 0
    cache = FilterCache(build, max_entries=max_entries)
    cache.build = build
    return cache


def test_filter_cache_keys_on_snapshot_and_credentials_values():
    guard, _ = enforcers({})
    cache = list_cache(max_entries=4)
    snapshot = guard.snapshot()
    reader_a = context(roles=["reader"], project_id="pa")
    first = cache.get(snapshot, reader_a)
    assert cache.get(snapshot, context(roles=["reader"], project_id="pa")) is first
    assert cache.build.calls == 1
    # other values, other filter: never another caller's condition
    other = cache.get(snapshot, context(roles=["reader"], project_id="pb"))
    assert other is not first
    assert "pb" in other.condition.compile().params.values()
    # a value's type counts (a rule sees its str()): True, 1, '1' and 'True' differ
    answers = [
        cache.get(snapshot, {"roles": ["reader"], "project_id": value})
        for value in (True, 1, "1", "True")
    ]
    assert len({id(answer) for answer in answers}) == 4
    # nested values take the slow key; equal ones still hit
    nested = {"roles": ["reader"], "project_id": "pa", "n": {"k": ["v"]}}
    assert cache.get(snapshot, nested) is cache.get(snapshot, dict(nested))
    # a new snapshot starts afresh
    guard.set_rules(policy.Rules.from_dict({LIST: "@"}), overwrite=False, use_conf=False)
    assert cache.get(guard.snapshot(), reader_a).kind == "allow"
    # bounded: more callers than entries still answer right
    for index in range(10):
        ctx = context(roles=["reader"], project_id=f"p{index}")
        assert f"p{index}" in cache.get(snapshot, ctx).condition.compile().params.values()
    assert len(cache._entries) <= 4


def test_filter_cache_compiles_unhashable_credentials_every_time():
    guard, _ = enforcers({LIST: "nested.k:%(user_id)s"})
    cache = list_cache()
    creds = {"roles": [], "nested": {"k": "u1"}, "odd": object()}
    snapshot = guard.snapshot()
    assert cache.get(snapshot, creds).kind == "condition"
    assert cache.get(snapshot, creds).kind == "condition"
    assert cache.build.calls == 2
    assert cache._entries == {}
