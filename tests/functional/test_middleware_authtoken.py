"""The ``main`` pipeline: keystonemiddleware's auth_token in front of guard.

keystonemiddleware's ``fixture.AuthTokenFixture`` stands in for keystone
(it answers token validation in-process), so every other part is the real
one: auth_token itself, the guard middleware, the API, the policy engine and
a SQLite file. Also the pipelines of ``etc/guard/api-paste.ini`` loaded by
PasteDeploy.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from keystonemiddleware import fixture as ksm_fixture
from oslo_context import context as oslo_context
from paste.deploy import loadapp

from guard import conf as guard_conf
from guard import deploy
from guard.db import migration
from tests.functional.support import REQUEST_ID_RE, check_error, unique

PASTE_INI = Path(__file__).resolve().parents[2] / "etc" / "guard" / "api-paste.ini"


KEYSTONE = "https://keystone.example/identity"


@pytest.fixture
def services(tmp_path: Path, sqlite_url: str) -> Iterator[deploy.Services]:
    conf = guard_conf.load([write_conf(tmp_path, sqlite_url)])
    services = deploy.build_services(conf, migrate=True)
    yield services
    services.close()


def write_conf(tmp_path: Path, sqlite_url: str) -> str:
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = {sqlite_url}\n"
        f"[keystone_authtoken]\nwww_authenticate_uri = {KEYSTONE}\n"
    )
    return str(config)


@pytest.fixture
def app(services: deploy.Services) -> webtest.TestApp:
    return webtest.TestApp(deploy.build_pipeline(services, "main"))


def add_token(
    tokens: ksm_fixture.AuthTokenFixture, project_id: str, roles: list[str]
) -> tuple[str, str]:
    """A valid token for a new user of ``project_id``; returns (token, user id)."""
    token_id = uuid.uuid4().hex
    user_id = unique("user")
    tokens.add_token_data(
        token_id=token_id,
        user_id=user_id,
        project_id=project_id,
        role_list=roles,
        user_domain_id="default",
        project_domain_id="default",
    )
    return token_id, user_id


def put(
    app: webtest.TestApp, path: str, token: str, document: dict[str, object], **headers: str
) -> webtest.TestResponse:
    return app.put(
        path,
        json.dumps(document),
        headers={"X-Auth-Token": token, "Content-Type": "application/json", **headers},
        status="*",
    )


def test_tokens_decide_who_calls(
    app: webtest.TestApp, tokens: ksm_fixture.AuthTokenFixture
) -> None:
    project_a, project_b = unique("proj-a"), unique("proj-b")
    member_a, user_a = add_token(tokens, project_a, ["member", "reader"])
    member_b, _ = add_token(tokens, project_b, ["member", "reader"])
    consumer = f"/consumers/{uuid.uuid4()}"
    created = put(
        app,
        consumer,
        member_a,
        {"project_id": project_a, "user_id": user_a, "consumer_generation": None},
    )
    assert created.status_int == 201, created.text
    assert app.get(consumer, headers={"X-Auth-Token": member_a}).json["uuid"] == consumer[11:]
    hidden = app.get(consumer, headers={"X-Auth-Token": member_b}, status=404)
    check_error(hidden.status_int, hidden.headers, hidden.body, 404, "guard.not_found")


@pytest.mark.parametrize("token", [None, "not-a-token", "gAAAAABspoofedfernettoken0123456789"])
def test_bad_or_missing_token_is_guards_401_whatever_the_headers_say(
    app: webtest.TestApp, tokens: ksm_fixture.AuthTokenFixture, token: str | None
) -> None:
    spoofed = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": "admin",
        "X-Project-Id": "p",
        "X-Roles": "admin",
        "X-Service-Roles": "service",
    }
    if token:
        spoofed["X-Auth-Token"] = token
    for path in ("/consumers", f"/consumers/{uuid.uuid4()}"):
        response = app.get(path, headers=spoofed, status="*")
        check_error(
            response.status_int, response.headers, response.body, 401, "guard.unauthorized"
        )
        if token:
            assert token not in response.text
        assert response.headers["WWW-Authenticate"] == f'Keystone uri="{KEYSTONE}"'
    # The public paths still answer, to anyone.
    assert app.get("/", headers=spoofed).status_int == 200
    health = app.get("/healthcheck", headers=spoofed)
    assert health.json == {"status": "ok"}


def test_spoofed_roles_beside_a_valid_token_are_ignored(
    app: webtest.TestApp, tokens: ksm_fixture.AuthTokenFixture
) -> None:
    project_a, project_b = unique("proj-a"), unique("proj-b")
    admin, admin_user = add_token(tokens, unique("proj-ops"), ["admin", "member", "reader"])
    reader, _ = add_token(tokens, project_a, ["reader"])
    consumer = f"/consumers/{uuid.uuid4()}"
    assert (
        put(
            app,
            consumer,
            admin,
            {"project_id": project_b, "user_id": admin_user, "consumer_generation": None},
        ).status_int
        == 201
    )
    spoof = {
        "X-Roles": "admin,member,reader",
        "X-Project-Id": project_b,
        "X-Identity-Status": "Confirmed",
    }
    response = app.get(consumer, headers={"X-Auth-Token": reader, **spoof}, status="*")
    check_error(response.status_int, response.headers, response.body, 404, "guard.not_found")
    # Nor may the reader write in its own project by claiming more roles.
    response = put(
        app,
        f"/consumers/{uuid.uuid4()}",
        reader,
        {"project_id": project_a, "user_id": "u", "consumer_generation": None},
        **spoof,
    )
    check_error(response.status_int, response.headers, response.body, 403, "guard.forbidden")


def test_spoofed_system_scope_grants_nothing(
    app: webtest.TestApp, tokens: ksm_fixture.AuthTokenFixture
) -> None:
    """auth_token replaces the identity headers: the spoof is ignored, not honoured.

    The member stays the project-scoped member of project A: exactly its own
    rows, nothing of project B, no write outside A.
    """
    admin, admin_user = add_token(tokens, unique("proj-ops"), ["admin", "member", "reader"])
    project_a, project_b = unique("proj-a"), unique("proj-b")
    member, member_user = add_token(tokens, project_a, ["member", "reader"])
    consumer = f"/consumers/{uuid.uuid4()}"
    body = {"project_id": project_b, "user_id": admin_user, "consumer_generation": None}
    assert put(app, consumer, admin, body).status_int == 201
    own_uuid = str(uuid.uuid4())
    own = {"project_id": project_a, "user_id": member_user, "consumer_generation": None}
    assert put(app, f"/consumers/{own_uuid}", member, own).status_int == 201
    spoof = {"X-Auth-Token": member, "OpenStack-System-Scope": "all", "X-Roles": "admin"}
    hidden = app.get(consumer, headers=spoof, status="*")
    check_error(hidden.status_int, hidden.headers, hidden.body, 404, "guard.not_found")
    listed = app.get(f"/consumers?project_id={project_b}", headers=spoof, status="*")
    assert listed.status_int == 200  # a project-scoped member may list: its own rows only
    assert listed.json == {"consumers": [], "next_marker": None}
    mine = app.get("/consumers", headers=spoof, status="*")
    assert mine.status_int == 200
    assert [row["uuid"] for row in mine.json["consumers"]] == [own_uuid]
    assert mine.json["next_marker"] is None
    response = app.delete(consumer, headers=spoof, status="*")
    check_error(response.status_int, response.headers, response.body, 404, "guard.not_found")
    body_b = {"project_id": project_b, "user_id": member_user, "consumer_generation": None}
    response = put(app, f"/consumers/{uuid.uuid4()}", member, body_b, **spoof)
    check_error(response.status_int, response.headers, response.body, 403, "guard.forbidden")
    assert app.get(consumer, headers={"X-Auth-Token": admin}).json["generation"] == 0


@pytest.mark.parametrize("pipeline", ["trusted", "main"])
def test_paste_ini_pipelines(
    tmp_path: Path, sqlite_url: str, tokens: ksm_fixture.AuthTokenFixture, pipeline: str
) -> None:
    migration.upgrade(sqlite_url)  # loading an app never migrates
    app = webtest.TestApp(
        loadapp(
            f"config:{PASTE_INI}",
            name=pipeline,
            global_conf={
                "config_file": write_conf(tmp_path, sqlite_url),
                "www_authenticate_uri": KEYSTONE,
            },
        )
    )
    project = unique("proj")
    if pipeline == "main":
        token, user = add_token(tokens, project, ["member", "reader"])
        identity = {"X-Auth-Token": token}
    else:
        user = unique("user")
        identity = {
            "X-Identity-Status": "Confirmed",
            "X-User-Id": user,
            "X-Project-Id": project,
            "X-Roles": "member,reader",
        }
    path = f"/consumers/{uuid.uuid4()}"
    body = json.dumps({"project_id": project, "user_id": user, "consumer_generation": None})
    created = app.put(path, body, headers={**identity, "Content-Type": "application/json"})
    assert created.status_int == 201
    assert REQUEST_ID_RE.match(created.headers["X-Openstack-Request-Id"])
    big = body[:-1] + " " * (65537 - len(body)) + "}"
    response = app.put(
        path.replace(path[-4:], "0000"),
        big,
        headers={**identity, "Content-Type": "application/json"},
        status="*",
    )
    check_error(response.status_int, response.headers, response.body, 413, "guard.too_large")
    anonymous = app.get(path, status="*")
    check_error(anonymous.status_int, anonymous.headers, anonymous.body, 401, "guard.unauthorized")
    assert app.get(path, headers=identity).json["generation"] == 0


class _CurrentContextAtEmit(logging.Handler):
    """Records keystonemiddleware's lines with the thread's current context of each."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        current = oslo_context.get_current()
        self.seen.append((record.getMessage(), getattr(current, "request_id", None)))


def test_keystonemiddleware_lines_carry_their_own_requests_id(app, tokens) -> None:
    """oslo.log takes request ids from the thread's context: auth_token's must be its request's."""
    token, _ = add_token(tokens, unique("project"), ["reader"])
    first = app.get("/consumers", headers={"X-Auth-Token": token}, status="*")
    assert first.status_int == 200
    handler = _CurrentContextAtEmit()
    logger = logging.getLogger("keystonemiddleware")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        second = app.get("/consumers", headers={"X-Auth-Token": "not-a-token"}, status="*")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert second.status_int == 401
    assert handler.seen, "auth_token logged nothing for a bad token"
    own_id = second.headers["X-Openstack-Request-Id"]
    assert {request_id for _, request_id in handler.seen} == {own_id}
