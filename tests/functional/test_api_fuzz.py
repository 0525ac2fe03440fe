"""A hypothesis fuzz of the whole ``trusted`` pipeline: methods, paths, headers, bodies.

In-process for speed (the WSGI environ is built the way a server builds it),
on a real SQLite file with the real policy engine. Whatever arrives: no 5xx,
every error in the contract's format with the response's request id, and no
traceback, SQL, file path, policy text or another project's id in any body.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard import deploy
from guard.testing import services_for
from tests.functional.support import ERROR_KEYS, REQUEST_ID_RE

SECRET_PROJECT = f"proj-secret-{uuid.uuid4().hex[:10]}"
SECRET_USER = f"user-secret-{uuid.uuid4().hex[:10]}"
SECRET_CONSUMER = str(uuid.uuid4())
OWN_PROJECT = f"proj-own-{uuid.uuid4().hex[:10]}"
OWN_CONSUMER = str(uuid.uuid4())

# What no body may contain, whatever the request.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|/usr/|site-packages|sqlalchemy|sqlite|psycopg|"
    r"SELECT |INSERT |UPDATE |DELETE FROM|consumers\.|check_str|role:|rule:|%\(|"
    r"<html|<!DOCTYPE",
    re.IGNORECASE,
)

METHODS = st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD", "OPTIONS", "GeT"])
UUIDS = st.sampled_from(
    [SECRET_CONSUMER, OWN_CONSUMER, SECRET_CONSUMER.upper(), SECRET_CONSUMER.replace("-", "")]
) | st.uuids().map(str)
SEGMENT = st.text(min_size=0, max_size=20)
PATHS = st.one_of(
    st.sampled_from(["/", "/healthcheck", "/consumers", "/consumers/", "//consumers"]),
    UUIDS.map(lambda u: f"/consumers/{u}"),
    SEGMENT.map(lambda s: f"/consumers/{s}"),
    st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
)
QUERY_KEYS = st.sampled_from(
    ["project_id", "user_id", "consumer_type", "limit", "marker", "consumer_generation", "x"]
)
QUERY_VALUES = st.one_of(
    st.sampled_from([SECRET_PROJECT, OWN_PROJECT, "0", "1", "1000", "1001", "-1", ""]),
    UUIDS,
    st.integers().map(str),
    st.text(max_size=30),
)
QUERIES = st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=4)

ROLE_SETS = st.lists(
    st.sampled_from(["admin", "member", "reader", "service", "Admin", " admin", "", "x"]),
    max_size=4,
).map(",".join)
IDENTITY = st.fixed_dictionaries(
    {},
    optional={
        "X-Identity-Status": st.sampled_from(["Confirmed", "Invalid", "confirmed", ""]),
        "X-User-Id": st.sampled_from(["fuzz-user", SECRET_USER, ""]) | st.text(max_size=10),
        "X-Project-Id": st.sampled_from([OWN_PROJECT, "fuzz-other", ""]),
        "X-Roles": ROLE_SETS,
        "X-Service-Roles": ROLE_SETS,
        "OpenStack-System-Scope": st.sampled_from(["all", "", "none"]),
        "X-Is-Admin-Project": st.sampled_from(["True", "False", "x"]),
        "X-Openstack-Request-Id": st.sampled_from([f"req-{uuid.uuid4()}", "req-x", ""]),
        "Content-Type": st.sampled_from(
            ["application/json", "application/json; charset=utf-8", "text/plain", "", "a/b"]
        ),
        "X-Auth-Token": st.just("gAAAAABfuzzedtokenvalue0123456789"),
    },
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
BODY_KEYS = st.sampled_from(
    ["project_id", "user_id", "consumer_generation", "consumer_type", "uuid", "x"]
)
BODY_DOCUMENTS = st.dictionaries(
    BODY_KEYS,
    st.one_of(
        st.sampled_from([OWN_PROJECT, SECRET_PROJECT, "fuzz-user", None, 0, 1, "0", "VM"]),
        JSON_VALUES,
    ),
    max_size=5,
)
BODIES = st.one_of(
    st.none(),
    BODY_DOCUMENTS.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"\xff\xfe", b"[" * 5000, b"{" + b" " * 70000 + b"}"]),
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("fuzz") / "guard.sqlite"
    services = services_for(f"sqlite:///{path}")
    from guard.context import RequestContext

    admin = RequestContext(
        user_id="fuzz-admin",
        project_id="fuzz-ops",
        roles=["admin", "member", "reader"],
        is_admin_project=False,
        enforcer=services.enforcer,
    )
    services.repository.create(
        admin, SECRET_CONSUMER, project_id=SECRET_PROJECT, user_id=SECRET_USER
    )
    services.repository.create(admin, OWN_CONSUMER, project_id=OWN_PROJECT, user_id="fuzz-user")
    yield deploy.build_pipeline(services, "trusted")
    services.close()


def environ_for(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes | None,
) -> dict[str, Any]:
    """The environ a server builds: PATH_INFO as latin-1 of its bytes, headers as HTTP_*."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": "&".join(f"{quote(k)}={quote(v)}" for k, v in query),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8778",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


def call(app: Any, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = int(status.split()[0])
        captured["headers"] = {name.lower(): value for name, value in headers}
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return captured["status"], captured["headers"], body


def may_see_secret(headers: dict[str, str]) -> bool:
    """Whether the caller may legitimately see the secret project's consumer."""
    if headers.get("X-Identity-Status") != "Confirmed" or not headers.get("X-User-Id"):
        return False
    roles = {role.strip().lower() for role in headers.get("X-Roles", "").split(",")}
    return bool(roles & {"admin", "service"}) or headers.get("X-Project-Id") == SECRET_PROJECT


def check_response(
    status: int, headers: dict[str, str], body: bytes, privileged: bool, method: str
) -> None:
    assert status < 500, (status, body[:300])
    request_id = headers["x-openstack-request-id"]
    assert REQUEST_ID_RE.match(request_id)
    text = body.decode("utf-8")
    assert not LEAKS.search(text), text[:300]
    if not privileged:
        assert SECRET_PROJECT not in text and SECRET_USER not in text
    if status >= 400:
        assert headers["content-type"] == "application/json"
        if method == "HEAD":  # the server sends no body to HEAD
            return
        document = json.loads(text)
        (error,) = document["errors"]
        assert set(error) == ERROR_KEYS and error["status"] == status
        assert error["code"].startswith("guard.")
        assert error["request_id"] == request_id
        if status == 405:
            assert headers["allow"]


COMMON = settings(
    max_examples=700,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)


@COMMON
@given(method=METHODS, path=PATHS, query=QUERIES, headers=IDENTITY, body=BODIES)
def test_fuzz_anything(
    pipeline: Any,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    status, response_headers, response_body = call(
        pipeline, environ_for(method, path, query, headers, body)
    )
    check_response(status, response_headers, response_body, may_see_secret(headers), method)


@COMMON
@given(
    method=METHODS,
    uuid_=UUIDS,
    query=QUERIES,
    roles=ROLE_SETS,
    project=st.sampled_from([OWN_PROJECT, "fuzz-other", SECRET_PROJECT]),
    system_scope=st.booleans(),
    content_type=st.sampled_from(["application/json", "text/plain"]),
    body=BODIES,
)
def test_fuzz_confirmed_callers_on_consumers(
    pipeline: Any,
    method: str,
    uuid_: str,
    query: list[tuple[str, str]],
    roles: str,
    project: str,
    system_scope: bool,
    content_type: str,
    body: bytes | None,
) -> None:
    headers = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": "fuzz-user",
        "X-Project-Id": project,
        "X-Roles": roles,
        "Content-Type": content_type,
    }
    if system_scope:
        headers["OpenStack-System-Scope"] = "all"
    status, response_headers, response_body = call(
        pipeline, environ_for(method, f"/consumers/{uuid_}", query, headers, body)
    )
    check_response(status, response_headers, response_body, may_see_secret(headers), method)


@COMMON
@given(query=QUERIES, roles=ROLE_SETS, system_scope=st.booleans())
def test_fuzz_lists(
    pipeline: Any, query: list[tuple[str, str]], roles: str, system_scope: bool
) -> None:
    headers = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": "fuzz-user",
        "X-Project-Id": OWN_PROJECT,
        "X-Roles": roles,
    }
    if system_scope:
        headers["OpenStack-System-Scope"] = "all"
    status, response_headers, response_body = call(
        pipeline, environ_for("GET", "/consumers", query, headers, None)
    )
    privileged = may_see_secret(headers)
    check_response(status, response_headers, response_body, privileged, "GET")
    if status == 200:
        document = json.loads(response_body)
        assert set(document) == {"consumers", "next_marker"}
        if not privileged:
            assert all(c["project_id"] == OWN_PROJECT for c in document["consumers"])
