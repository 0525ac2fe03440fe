"""A caller without a project is no member of a project named "None".

keystonemiddleware sends no ``X-Project-Id`` for an unscoped token (and a
proxy may forget it); the context's ``project_id`` is then None, and
oslo.policy compares ``str(None)``: ``project_id:%(project_id)s`` held on
every consumer of a project called ``None``, which such a member or reader
listed, read, changed, deleted and created (the SQL filter compiled it into
``project_id = 'None'``). Properties over generated identities without a
project, on SQLite, PostgreSQL and MariaDB: project ``None``'s consumers answer
exactly as a stranger's project's do, and without the admin or service role
they are never seen, written or created. Then the same through a real server,
in the contract's errors.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from guard import exception
from guard.context import RequestContext
from guard.db import api, migration
from guard.policy import make_enforcer
from guard.repository import ConsumerRepository
from guard.testing import http
from guard.tools import demo
from tests.functional.live_server import live_guard

NONE = "None"  # a project (and user) whose id is the word oslo.policy makes of None
STRANGER = "pz"  # a project no generated caller belongs to: the twin of NONE
USERS = (NONE, "u1")
PRIVILEGED = {"admin", "service"}  # the default rules' roles that need no project
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def world(module_database_url: str) -> Iterator[tuple[ConsumerRepository, Any, dict]]:
    """A migrated database with consumers of project None and their twins in a stranger's."""
    migration.upgrade(module_database_url)
    engine: sqlalchemy.Engine = api.create_engine(module_database_url)
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    enforcer = make_enforcer(conf)
    repo = ConsumerRepository(engine, enforcer)
    admin = RequestContext(
        user_id="root", project_id="ops", roles=["admin", "member", "reader"], enforcer=enforcer
    )
    rows = {}
    for project in (NONE, STRANGER):
        for user in USERS:
            uuid = str(uuidlib.uuid4())
            repo.create(admin, uuid, project_id=project, user_id=user)
            rows[project, user] = uuid
    yield repo, admin, rows
    engine.dispose()


identities = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from([None, NONE, "u1", "someone"]),
        "user_domain_id": st.sampled_from([None, NONE, "default"]),
        "project_domain_id": st.sampled_from([None, NONE, "default"]),
        "roles": st.lists(
            st.sampled_from(["member", "reader", "Reader", "admin", "service", "None", "none"]),
            unique=True,
            max_size=4,
        ),
    }
)


def caller(repo: ConsumerRepository, identity: dict[str, Any]) -> RequestContext:
    """A caller as the edge makes one from headers without ``X-Project-Id``."""
    return RequestContext(project_id=None, enforcer=repo._enforcer, **identity)


def privileged(identity: dict[str, Any]) -> bool:
    return bool(PRIVILEGED & {role.lower() for role in identity["roles"]})


def listed(repo: ConsumerRepository, ctx: RequestContext) -> set[str]:
    """Every uuid the caller's list shows, page after page (none when it is forbidden)."""
    seen: set[str] = set()
    marker = None
    while True:
        try:
            page = repo.list(ctx, limit=2, marker=marker)
        except exception.Forbidden:
            return seen
        seen.update(consumer.uuid for consumer in page.consumers)
        if page.next_marker is None:
            return seen
        marker = page.next_marker


def readable(repo: ConsumerRepository, ctx: RequestContext, uuid: str) -> bool:
    try:
        repo.get(ctx, uuid)
    except exception.NotFound:
        return False
    return True


@SETTINGS
@given(identity=identities)
def test_project_none_is_read_as_a_strangers_project(world, identity) -> None:
    repo, _, rows = world
    ctx = caller(repo, identity)
    seen = listed(repo, ctx)
    for user in USERS:
        mine, twin = rows[NONE, user], rows[STRANGER, user]
        assert (mine in seen) == (twin in seen)
        assert readable(repo, ctx, mine) == readable(repo, ctx, twin)
        if not privileged(identity):
            assert mine not in seen
            assert not readable(repo, ctx, mine)


@SETTINGS
@given(identity=identities, owner=st.sampled_from(USERS))
def test_project_none_is_written_as_a_strangers_project(world, identity, owner) -> None:
    repo, admin, rows = world
    ctx = caller(repo, identity)
    outcomes = {}
    for project in (NONE, STRANGER):
        uuid = str(uuidlib.uuid4())
        try:
            repo.create(ctx, uuid, project_id=project, user_id=owner)
        except exception.Forbidden:
            outcomes[project] = "forbidden"
            assert not readable(repo, admin, uuid)  # nothing was written
        else:
            outcomes[project] = "created"
            repo.delete(admin, uuid)
    assert outcomes[NONE] == outcomes[STRANGER]
    if privileged(identity):
        return
    assert outcomes[NONE] == "forbidden"
    uuid = rows[NONE, owner]
    before = repo.get(admin, uuid)
    with pytest.raises(exception.NotFound):
        repo.update(ctx, uuid, generation=before.generation, user_id="u1")
    with pytest.raises(exception.NotFound):
        repo.delete(ctx, uuid, generation=before.generation)
    assert repo.get(admin, uuid) == before


def test_over_http_in_the_contracts_errors(tmp_path: Path) -> None:
    """keystonemiddleware's headers for an unscoped token: no X-Project-Id."""
    member = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": "None",
        "X-Roles": "member,reader",
    }
    with live_guard(tmp_path, "--demo") as server:
        uuid = str(uuidlib.uuid4())
        url = f"{server.url}/consumers/{uuid}"
        json_headers = {"Content-Type": "application/json"}
        body = {"project_id": NONE, "user_id": NONE, "consumer_generation": None}
        status, _, _ = http(
            "PUT", url, {**demo.ADMIN.headers(), **json_headers}, json.dumps(body).encode()
        )
        assert status == 201

        def error(method: str, target: str, payload: dict | None = None) -> tuple[int, str]:
            headers = {**member, **(json_headers if payload else {})}
            data = json.dumps(payload).encode() if payload else None
            status, response_headers, raw = http(method, target, headers, data)
            assert response_headers["Content-Type"].startswith("application/json")
            (only,) = json.loads(raw)["errors"]
            assert only["status"] == status
            assert only["request_id"] == response_headers["X-Openstack-Request-Id"]
            return status, only["code"]

        assert error("GET", f"{server.url}/consumers") == (403, "guard.forbidden")
        assert error("GET", url) == (404, "guard.not_found")
        assert error("PUT", url, {**body, "consumer_generation": 0}) == (404, "guard.not_found")
        assert error("DELETE", url) == (404, "guard.not_found")
        created = f"{server.url}/consumers/{uuidlib.uuid4()}"
        assert error("PUT", created, body) == (403, "guard.forbidden")
        status, _, raw = http("GET", url, demo.ADMIN.headers())
        assert status == 200 and json.loads(raw)["generation"] == 0  # untouched
