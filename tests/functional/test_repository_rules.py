"""Operator rules that narrow writes and lists, on real SQLite, PostgreSQL and MariaDB.

* A change of owner or type needs ``update`` on the row as stored and
  ``create`` on the row as it will be: a hypothesis property draws rules,
  callers, stored rows and changes, and holds the repository's answer to
  stock oslo.policy's decisions, the targets each rule was asked about to
  the stored and the new row, and a refused write to no INSERT, UPDATE or
  DELETE at all.
* The per-row fallback (a rule SQL cannot express) over more rows than one
  batch holds, with the ``user_id``/``consumer_type`` filters, and a rule
  that raises on some rows: those rows are hidden, with a bounded number of
  warnings.
* Over HTTP, the two cases of issue 9: a member restricted to INSTANCE
  consumers cannot turn one into a MIGRATION, and a list never shows what
  a get hides.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import webtest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from oslo_policy import _checks, policy

from guard import deploy, exception, repository
from guard.context import RequestContext
from guard.db import api, migration, models
from guard.policies import list_rules
from guard.policy import make_enforcer
from guard.repository import CREATE, KEEP, LIST, SHOW, UPDATE, ConsumerRepository
from guard.testing import Persona, deployment
from tests.functional.support import check_error, unique

# ------------------------------------------------------------------ shared parts


@pytest.fixture(scope="module")
def engine(module_database_url: str) -> Iterator[sqlalchemy.Engine]:
    """One migrated database per module and backend (examples use distinct uuids)."""
    migration.upgrade(module_database_url)
    eng = api.create_engine(module_database_url)
    yield eng
    eng.dispose()


def new_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    return conf


def reference_enforcer() -> policy.Enforcer:
    """Stock oslo.policy with guard's registered defaults: the reference, not guard's code."""
    reference = policy.Enforcer(new_conf(), use_conf=False)
    reference.register_defaults(list_rules())
    return reference


def set_rules(enforcers: list[Any], overrides: dict[str, str]) -> None:
    strings = {rule.name: rule.check_str for rule in list_rules()}
    strings.update(overrides)
    parsed = policy.Rules.from_dict(strings)
    for enforcer in enforcers:
        enforcer.set_rules(dict(parsed), overwrite=True, use_conf=False)


@contextlib.contextmanager
def recorded_writes(engine: sqlalchemy.Engine) -> Iterator[list[str]]:
    """Every INSERT, UPDATE and DELETE the engine sends while the block runs."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            statements.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


# ------------------------------------------- property: attribute changes and their rules

#: Targets each recording check was asked about, in order: ``(label, target)``.
ASKED: list[tuple[str, dict[str, Any]]] = []


class AskedCheck(_checks.Check):
    """``asked:<label>``: always true, and notes the target it was asked about."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        ASKED.append((self.match, dict(target)))
        return True


_checks.register("asked", AskedCheck)

PROJECTS = ["pa", "pb"]
USERS = ["u1", "u2"]
TYPES = [None, "INSTANCE", "MIGRATION"]

write_checks = st.sampled_from(
    [
        "@",
        "!",
        "'INSTANCE':%(consumer_type)s",
        "'MIGRATION':%(consumer_type)s",
        "project_id:%(project_id)s",
        "user_id:%(user_id)s",
        "'pa':%(project_id)s",
        "'u2':%(user_id)s",
        "role:member",
        "role:admin",
    ]
)
write_rules = st.recursive(
    write_checks,
    lambda inner: st.one_of(
        st.builds("({} and {})".format, inner, inner),
        st.builds("({} or {})".format, inner, inner),
        st.builds("not {}".format, inner),
    ),
    max_leaves=3,
)
show_rules = st.sampled_from(["@", "@", "project_id:%(project_id)s", "user_id:%(user_id)s"])
callers = st.fixed_dictionaries(
    {
        "project_id": st.sampled_from(PROJECTS),
        "user_id": st.sampled_from(USERS),
        "roles": st.sampled_from([["member", "reader"], ["reader"], ["admin", "member"]]),
    }
)
stored_rows = st.tuples(st.sampled_from(PROJECTS), st.sampled_from(USERS), st.sampled_from(TYPES))
changes = st.fixed_dictionaries(
    {
        "project_id": st.sampled_from([None, *PROJECTS]),
        "user_id": st.sampled_from([None, *USERS]),
        "consumer_type": st.sampled_from([KEEP, *TYPES]),
    }
)


@pytest.fixture(scope="module")
def rule_setup(engine: sqlalchemy.Engine):
    guard_enforcer = make_enforcer(new_conf())
    writer = ConsumerRepository(engine, make_enforcer(new_conf()))  # stores rows, default rules
    return guard_enforcer, reference_enforcer(), writer


def ask(reference: policy.Enforcer, action: str, target: dict[str, Any], ctx: Any) -> bool:
    return bool(reference.enforce(action, target, ctx))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    create_rule=write_rules,
    update_rule=write_rules,
    show_rule=show_rules,
    who=callers,
    stored=stored_rows,
    change=changes,
    stale=st.booleans(),
)
def test_a_change_needs_update_on_the_stored_row_and_create_on_the_new_one(
    engine, rule_setup, create_rule, update_rule, show_rule, who, stored, change, stale
):
    guard_enforcer, reference, writer = rule_setup
    set_rules(
        [guard_enforcer, reference],
        {
            SHOW: show_rule,
            # The recording check comes first, so it is asked whatever follows.
            CREATE: f"(asked:create and {create_rule})",
            UPDATE: f"(asked:update and {update_rule})",
        },
    )
    admin = RequestContext(
        user_id="root", project_id="ops", roles=["admin"], is_admin_project=True
    )
    project, user, kind = stored
    row = writer.create(
        admin, str(uuidlib.uuid4()), project_id=project, user_id=user, consumer_type=kind
    )
    ctx = RequestContext(enforcer=guard_enforcer, **who)
    old = row.target()
    new = {
        "project_id": change["project_id"] or project,
        "user_id": change["user_id"] or user,
        "consumer_type": kind if change["consumer_type"] is KEEP else change["consumer_type"],
        "uuid": row.uuid,
    }
    # The reference: stock oslo.policy, in DESIGN.md's order 404, 403, 409.
    show_ok = ask(reference, SHOW, old, ctx)
    update_ok = ask(reference, UPDATE, old, ctx)
    create_ok = ask(reference, CREATE, new, ctx)
    if not show_ok:
        expected = "not_found"
    elif not update_ok or (new != old and not create_ok):
        expected = "forbidden"
    elif stale:
        expected = "concurrent_update"
    else:
        expected = "ok"

    guarded = ConsumerRepository(engine, guard_enforcer)
    ASKED.clear()
    with recorded_writes(engine) as writes:
        try:
            result = guarded.update(ctx, row.uuid, generation=1 if stale else 0, **change)
            outcome = "ok"
        except exception.NotFound:
            outcome = "not_found"
        except exception.Forbidden:
            outcome = "forbidden"
        except exception.ConcurrentUpdate:
            outcome = "concurrent_update"
    assert outcome == expected

    asked_update = [target for label, target in ASKED if label == "update"]
    asked_create = [target for label, target in ASKED if label == "create"]
    if expected == "not_found":
        assert ASKED == []  # an invisible row is not even weighed
    else:
        assert asked_update == [old]  # update: the row as stored, only
        # create: the row as it will be, exactly when something changes
        assert asked_create == ([new] if new != old and update_ok else [])

    stored_now = writer.get(admin, row.uuid)
    if outcome == "ok":
        assert stored_now == result
        assert result.target() == new and result.generation == 1
        assert writes, "an allowed update writes"
    else:
        assert writes == []  # a refused write sends no INSERT, UPDATE or DELETE
        assert stored_now == row


def test_the_issue_case_instance_cannot_become_migration(engine) -> None:
    """Members restricted to INSTANCE create one, then cannot turn it into a MIGRATION."""
    enforcer = make_enforcer(new_conf())
    restricted = "(rule:project_member and 'INSTANCE':%(consumer_type)s)"
    set_rules(
        [enforcer], {CREATE: restricted, UPDATE: restricted, "guard:consumers:delete": restricted}
    )
    repo = ConsumerRepository(engine, enforcer)
    member = RequestContext(user_id="m", project_id="pa", roles=["member", "reader"])
    row = repo.create(
        member, str(uuidlib.uuid4()), project_id="pa", user_id="m", consumer_type="INSTANCE"
    )
    for change in ({"consumer_type": "MIGRATION"}, {"consumer_type": None}):
        with recorded_writes(engine) as writes, pytest.raises(exception.Forbidden):
            repo.update(member, row.uuid, generation=0, **change)
        assert writes == []
    # a stale generation with a refused change is 403, not 409 (the rule comes first)
    with pytest.raises(exception.Forbidden):
        repo.update(member, row.uuid, generation=7, consumer_type="MIGRATION")
    # no change of type: update is enough
    assert repo.update(member, row.uuid, generation=0, user_id="m").generation == 1
    assert repo.get(member, row.uuid).consumer_type == "INSTANCE"


# ------------------------------------------------ per-row fallback over several batches

ROWS = repository.PER_ROW_BATCH * 2 + 57  # three batches and a bit
HIDDEN_BY_FAILURE = 7  # every 7th row makes the list rule raise


def row_number(uuid: str) -> int:
    return uuidlib.UUID(uuid).int


class ParityCheck(_checks.Check):
    """``parity:even``: a custom check SQL cannot express; raises on every 7th row."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        number = row_number(target["uuid"])
        if number % HIDDEN_BY_FAILURE == 0:
            raise RuntimeError("plugin failure")
        return number % 2 == (0 if self.match == "even" else 1)


_checks.register("parity", ParityCheck)


@pytest.fixture(scope="module")
def many_rows(engine: sqlalchemy.Engine) -> dict[str, Any]:
    """ROWS consumers in one project, users and types alternating; others elsewhere."""
    project = unique("many")
    now = sqlalchemy.func.now()
    with engine.begin() as conn:

        def key(model: Any, column: Any, name: str) -> int:
            return conn.execute(
                sqlalchemy.insert(model).values({column.key: name}).returning(model.id)
            ).scalar_one()

        projects = {
            p: key(models.Project, models.Project.external_id, p)
            for p in (project, project + "-x")
        }
        users = {
            u: key(models.User, models.User.external_id, f"{project}-{u}") for u in ("u1", "u2")
        }
        types = {
            t: key(models.ConsumerType, models.ConsumerType.name, f"T{project[-6:].upper()}{t}")
            for t in ("A", "B")
        }
        rows = []
        for i in range(ROWS + 40):
            uuid = str(uuidlib.UUID(int=(i + 1) * 0x9E3779B97F4A7C15 % (1 << 122)))
            rows.append(
                {
                    "uuid": uuid,
                    "project_id": projects[project if i < ROWS else project + "-x"],
                    "user_id": users["u1" if i % 2 else "u2"],
                    "consumer_type_id": [types["A"], types["B"], None][i % 3],
                    "generation": 0,
                }
            )
        conn.execute(
            sqlalchemy.insert(models.Consumer).values(created_at=now, updated_at=now), rows
        )
    type_names = {
        types["A"]: f"T{project[-6:].upper()}A",
        types["B"]: f"T{project[-6:].upper()}B",
        None: None,
    }
    user_names = {v: k for k, v in users.items()}
    return {
        "project": project,
        "types": type_names,
        "rows": [
            {
                "uuid": row["uuid"],
                "user_id": f"{project}-{user_names[row['user_id']]}",
                "consumer_type": type_names[row["consumer_type_id"]],
                "mine": row["project_id"] == projects[project],
            }
            for row in rows
        ],
    }


@pytest.mark.parametrize("filters", ["none", "user", "type", "both"])
@pytest.mark.parametrize("limit", [1000, 60])
def test_per_row_fallback_pages_through_several_batches(
    engine, many_rows, filters, limit, caplog
) -> None:
    enforcer = make_enforcer(new_conf())
    # list: a custom check (per row); show: the caller's project (in SQL).
    set_rules([enforcer], {LIST: "parity:even", SHOW: "project_id:%(project_id)s"})
    repo = ConsumerRepository(engine, enforcer)
    ctx = RequestContext(user_id="lister", project_id=many_rows["project"], roles=["reader"])
    type_a = next(name for name in many_rows["types"].values() if name and name.endswith("A"))
    user_1 = f"{many_rows['project']}-u1"
    query = {
        "none": {},
        "user": {"user_id": user_1},
        "type": {"consumer_type": type_a},
        "both": {"user_id": user_1, "consumer_type": type_a},
    }[filters]
    # Expected, from the data as written above (not from guard's code).
    expected = sorted(
        row["uuid"]
        for row in many_rows["rows"]
        if row["mine"]
        and row_number(row["uuid"]) % HIDDEN_BY_FAILURE != 0
        and row_number(row["uuid"]) % 2 == 0
        and query.get("user_id", row["user_id"]) == row["user_id"]
        and query.get("consumer_type", row["consumer_type"]) == row["consumer_type"]
    )
    failing = [
        row
        for row in many_rows["rows"]
        if row["mine"] and row_number(row["uuid"]) % HIDDEN_BY_FAILURE == 0
    ]
    assert failing and expected

    got: list[str] = []
    marker = None
    calls = 0
    selects: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    try:
        with caplog.at_level(logging.WARNING, logger="guard.repository"):
            while True:
                page = repo.list(ctx, limit=limit, marker=marker, **query)
                calls += 1
                got += [c.uuid for c in page.consumers]
                assert len(page.consumers) <= limit
                if page.next_marker is None:
                    break
                assert page.next_marker == page.consumers[-1].uuid
                marker = page.next_marker
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", count)
    assert got == expected
    if filters == "none" and limit == 1000:
        assert calls == 1 and len(selects) >= 3  # one list call read three batches
    warnings = [r for r in caplog.records if r.name == "guard.repository"]
    # bounded: at most two a list call (the fallback, the failures), never one a row
    assert len(warnings) <= 2 * calls < len(failing)
    for record in warnings:
        text = record.getMessage()
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", text), text  # no row's uuid


def test_show_rule_that_hides_everything_gives_an_empty_list_not_403(engine, many_rows) -> None:
    enforcer = make_enforcer(new_conf())
    set_rules([enforcer], {SHOW: "!"})
    repo = ConsumerRepository(engine, enforcer)
    ctx = RequestContext(user_id="x", project_id=many_rows["project"], roles=["reader"])
    page = repo.list(ctx)
    assert (page.consumers, page.next_marker) == ([], None)
    assert repo.can_list(ctx)


# ----------------------------------------------------------------- over HTTP


@pytest.fixture
def served_with(tmp_path: Path):
    """A ``trusted`` pipeline on a SQLite file with the given operator rules."""
    stack = contextlib.ExitStack()

    def make(rules: dict[str, str]) -> tuple[webtest.TestApp, deploy.Services]:
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(rules))
        services = stack.enter_context(
            deployment(f"sqlite:///{tmp_path / 'guard.sqlite'}", str(policy_file))
        )
        return webtest.TestApp(deploy.build_pipeline(services, "trusted")), services

    with stack:
        yield make


def call(app: webtest.TestApp, method: str, path: str, who: Persona, body: Any = None):
    headers = who.headers()
    raw = b""
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return app.request(path, method=method, headers=headers, body=raw, status="*")


def test_http_member_restricted_to_instance_cannot_change_the_type(served_with) -> None:
    restricted = "rule:admin or (rule:project_member and 'INSTANCE':%(consumer_type)s)"
    app, services = served_with({CREATE: restricted, UPDATE: restricted})
    member = Persona(unique("alice"), unique("proj"), ("member", "reader"))
    uuid = str(uuidlib.uuid4())
    owner = {"project_id": member.project_id, "user_id": member.user_id}
    create_body = {**owner, "consumer_type": "INSTANCE", "consumer_generation": None}
    created = call(app, "PUT", f"/consumers/{uuid}", member, create_body)
    assert created.status_int == 201
    refused_bodies = [
        {**owner, "consumer_type": "MIGRATION", "consumer_generation": 0},
        {**owner, "consumer_type": None, "consumer_generation": 0},
        {**owner, "consumer_type": "MIGRATION", "consumer_generation": 5},  # 403 before 409
    ]
    for body in refused_bodies:
        with recorded_writes(services.engine) as writes:
            response = call(app, "PUT", f"/consumers/{uuid}", member, body)
        check_error(response.status_int, response.headers, response.body, 403, "guard.forbidden")
        assert writes == []
    # 400 comes before all of it
    bad = call(app, "PUT", f"/consumers/{uuid}", member,
               {**owner, "consumer_type": "lower", "consumer_generation": 0})  # fmt: skip
    check_error(bad.status_int, bad.headers, bad.body, 400, "guard.invalid_input")
    # 404 before 403: another project's member learns nothing
    stranger = Persona(unique("eve"), unique("proj"), ("member", "reader"))
    hidden = call(app, "PUT", f"/consumers/{uuid}", stranger,
                  {**owner, "consumer_type": "MIGRATION", "consumer_generation": 0})  # fmt: skip
    check_error(hidden.status_int, hidden.headers, hidden.body, 404, "guard.not_found")
    shown = call(app, "GET", f"/consumers/{uuid}", member).json
    assert (shown["consumer_type"], shown["generation"]) == ("INSTANCE", 0)


def test_http_list_never_shows_what_get_hides(served_with) -> None:
    app, _services = served_with({SHOW: "rule:admin or user_id:%(user_id)s"})
    project = unique("proj")
    alice = Persona(unique("alice"), project, ("member", "reader"))
    bob = Persona(unique("bob"), project, ("member", "reader"))
    mine, theirs = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    for who, uuid in ((alice, mine), (bob, theirs)):
        body = {"project_id": project, "user_id": who.user_id, "consumer_generation": None}
        assert call(app, "PUT", f"/consumers/{uuid}", who, body).status_int == 201
    hidden = call(app, "GET", f"/consumers/{theirs}", alice)
    check_error(hidden.status_int, hidden.headers, hidden.body, 404, "guard.not_found")
    listed = call(app, "GET", "/consumers", alice).json
    assert [c["uuid"] for c in listed["consumers"]] == [mine]
    assert bob.user_id not in json.dumps(listed)
