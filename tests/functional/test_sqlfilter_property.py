"""Property: a list shows exactly the rows that both the list and the show rule allow.

Hypothesis generates operator pairs of list and show rules (role, generic,
literal and rule checks with target templates, ``and``/``or``/``not``,
custom checks that force the per-row fallback, one of which raises on some
rows), credentials (roles, project, system scope, nested values a service
adds to its policy values) and datasets, on SQLite and on PostgreSQL. The
reference is stock ``oslo_policy.policy.Enforcer.enforce`` of both rules on
every stored row (a rule that raises denies); the subject is
``ConsumerRepository.list`` paged to the end.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from oslo_policy import _checks, policy

from guard import exception
from guard.context import RequestContext
from guard.db import api, migration, models
from guard.policies import list_rules
from guard.policy import make_enforcer
from guard.repository import LIST, SHOW, ConsumerRepository

PROJECTS = ["pa", "pb", "None"]
USERS = ["u1", "u2"]
TYPES = [None, "VM", "NONE"]
UUIDS = [str(uuidlib.UUID(int=(i + 1) * 0x1111)) for i in range(8)]
TARGET_KEYS = ["project_id", "user_id", "consumer_type", "uuid"]


class UuidInCheck(_checks.Check):
    """A custom check, as a plugin registers one: SQL cannot express it."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        return target["uuid"] in self.match.split(",")


class RaisesOnCheck(_checks.Check):
    """A custom check that fails on some rows (a plugin's bug): it raises there."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        if target["uuid"] in self.match.split(","):
            raise ValueError("plugin failure")
        return True


_checks.register("uuid_in", UuidInCheck)
_checks.register("raises_on", RaisesOnCheck)


class ServiceContext(RequestContext):
    """A context whose service adds nested policy values (dotted paths, lists)."""

    def __init__(self, *args: Any, extra: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = extra or {}

    def to_policy_values(self):
        return {**super().to_policy_values(), **self.extra}


# ------------------------------------------------------------------ strategies

templates = st.sampled_from(
    [f"%({key})s" for key in TARGET_KEYS]
    + ["%(missing)s", "pa", "None", "p%(user_id)s", "%(project_id)s/%(user_id)s", "100%%"]
    + [f"x-%({key})s-y" for key in ("project_id", "consumer_type")]
)
cred_paths = st.sampled_from(
    ["project_id", "user_id", "roles", "system_scope", "domain_id", "nested.k", "nested.items.k"]
)
literals = st.sampled_from(["'pa'", "'None'", "'u2'", "True", "1", repr(UUIDS[2]), "'pa/u1'"])
atoms = st.one_of(
    st.sampled_from(["@", "!", "rule:admin", "rule:project_reader", "rule:undefined", "rule:r1"]),
    st.builds(
        "role:{}".format,
        st.sampled_from(["admin", "reader", "Member", "%(consumer_type)s", "x%(user_id)s"]),
    ),
    st.builds("{}:{}".format, cred_paths, templates),
    st.builds("{}:{}".format, cred_paths, templates),
    st.builds("{}:{}".format, literals, templates),
    st.builds("{}:{}".format, literals, templates),
)


def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("({} and {})".format, inner, inner),
        st.builds("({} or {})".format, inner, inner),
        st.builds("not {}".format, inner),
    )


rules = st.recursive(atoms, combine, max_leaves=5)
leaf_rules = st.recursive(atoms.filter(lambda a: "rule:" not in a), combine, max_leaves=3)
custom = st.builds(
    "{}:{}".format,
    st.sampled_from(["uuid_in", "raises_on"]),
    st.sets(st.sampled_from(UUIDS), min_size=1, max_size=3).map(lambda ids: ",".join(sorted(ids))),
)


def _with_custom(rule: str, dice: int, custom_check: str) -> str:
    """Mostly the rule as drawn; one time in five, with a check SQL cannot express."""
    if dice == 0:
        return f"({rule} or {custom_check})"
    if dice == 1:
        return f"({custom_check} and {rule})"
    return rule


list_rules_strategy = st.builds(_with_custom, rules, st.integers(0, 9), custom)

values = st.sampled_from(PROJECTS + USERS + ["VM", "pa/u1", "xu1"])
extras = st.fixed_dictionaries(
    {},
    optional={
        "nested": st.fixed_dictionaries(
            {},
            optional={
                "k": values,
                "items": st.lists(st.fixed_dictionaries({"k": values}), max_size=3),
            },
        )
    },
)
credentials = st.fixed_dictionaries(
    {
        "project_id": st.sampled_from([*PROJECTS, None]),
        "user_id": st.sampled_from(USERS),
        "roles": st.lists(
            st.sampled_from(["admin", "reader", "member", "MEMBER", "VM", "none", "xu1"]),
            max_size=3,
            unique=True,
        ),
        "system_scope": st.sampled_from([None] * 7 + ["all"]),
        "extra": extras,
    }
)
datasets = st.lists(
    st.tuples(st.sampled_from(PROJECTS), st.sampled_from(USERS), st.sampled_from(TYPES)),
    max_size=len(UUIDS),
).flatmap(
    lambda owners: st.permutations(UUIDS).map(
        lambda ids: [(ids[i], *owner) for i, owner in enumerate(owners)]
    )
)


# ------------------------------------------------------------------ fixtures


def _insert_names(
    conn: sqlalchemy.Connection, kind: str, column: Any, names: list[str | None]
) -> dict[tuple[str, str], int]:
    """Insert a row per name (``None`` skipped) into ``column``'s table; ``(kind, name)`` -> id."""
    table = column.class_
    return {
        (kind, name): conn.execute(
            sqlalchemy.insert(table).values({column.key: name}).returning(table.id)
        ).scalar_one()
        for name in names
        if name is not None
    }


@pytest.fixture(scope="module")
def seeded(module_database_url: str):
    """A migrated database with the owner rows; consumers are replaced per example."""
    url = module_database_url
    migration.upgrade(url)
    engine = api.create_engine(url)
    with engine.begin() as conn:
        ids = {
            **_insert_names(conn, "project", models.Project.external_id, PROJECTS),
            **_insert_names(conn, "user", models.User.external_id, USERS),
            **_insert_names(conn, "type", models.ConsumerType.name, TYPES),
        }
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    guard_enforcer = make_enforcer(conf)
    reference = policy.Enforcer(conf, use_conf=False)
    reference.register_defaults(list_rules())
    yield engine, ids, guard_enforcer, reference
    engine.dispose()


def store(engine: sqlalchemy.Engine, ids: dict, rows: list[tuple]) -> None:
    now = sqlalchemy.func.now()
    with engine.begin() as conn:
        conn.execute(sqlalchemy.delete(models.Consumer))
        if rows:
            conn.execute(
                sqlalchemy.insert(models.Consumer).values(created_at=now, updated_at=now),
                [
                    {
                        "uuid": uuid,
                        "project_id": ids[("project", project)],
                        "user_id": ids[("user", user)],
                        "consumer_type_id": None if kind is None else ids[("type", kind)],
                        "generation": 0,
                    }
                    for uuid, project, user, kind in rows
                ],
            )


# ------------------------------------------------------------------ property


def allowed(enforcer: policy.Enforcer, action: str, target: dict, ctx: Any) -> bool:
    """Stock oslo.policy's answer; a rule that raises on this row denies it."""
    try:
        return bool(enforcer.enforce(action, target, ctx))
    except Exception:
        return False


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    list_rule=list_rules_strategy,
    show_rule=list_rules_strategy,
    helper_rule=leaf_rules,
    who=credentials,
    rows=datasets,
    limit=st.integers(1, 4),
    project_filter=st.sampled_from([None, None, *PROJECTS]),
)
def test_listed_rows_are_those_list_and_show_allow_row_by_row(
    seeded, list_rule, show_rule, helper_rule, who, rows, limit, project_filter
):
    engine, ids, guard_enforcer, reference = seeded
    rule_strings = {rule.name: rule.check_str for rule in list_rules()}
    rule_strings.update({LIST: list_rule, SHOW: show_rule, "r1": helper_rule})
    parsed = policy.Rules.from_dict(rule_strings)
    reference.set_rules(parsed, overwrite=True, use_conf=False)
    guard_enforcer.set_rules(dict(parsed), overwrite=True, use_conf=False)
    store(engine, ids, rows)

    extra = who.pop("extra")
    ctx = ServiceContext(enforcer=guard_enforcer, extra=extra, **who)
    targets = [
        {"project_id": project, "user_id": user, "consumer_type": kind, "uuid": uuid}
        for uuid, project, user, kind in sorted(rows)
        if project_filter is None or project == project_filter
    ]
    expected = [
        target["uuid"]
        for target in targets
        if allowed(reference, LIST, target, ctx) and allowed(reference, SHOW, target, ctx)
    ]

    repo = ConsumerRepository(engine, guard_enforcer)
    got: list[str] = []
    marker = None
    try:
        while True:
            page = repo.list(ctx, project_id=project_filter, limit=limit, marker=marker)
            got += [consumer.uuid for consumer in page.consumers]
            if marker is not None:  # a next_marker promised more visible rows
                assert page.consumers
            assert len(page.consumers) <= limit
            if page.next_marker is None:
                break
            assert page.next_marker == page.consumers[-1].uuid
            marker = page.next_marker
    except exception.Forbidden:
        assert not repo.can_list(ctx)
        # 403 is the list rule's answer for these credentials: it allows no row.
        assert not any(allowed(reference, LIST, target, ctx) for target in targets)
        return
    assert repo.can_list(ctx)
    assert got == expected
    # A list never shows what a get hides.
    for uuid in got:
        assert repo.get(ctx, uuid).uuid == uuid
