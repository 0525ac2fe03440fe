"""The guard filter pasted in front of another WSGI service, as that service would paste it.

The service is a small WebOb app with its own routes and its own plain-text
errors (none of guard's). The filter must give it the caller's context,
refuse anonymous callers in guard's JSON, and otherwise pass every answer of
the service through unchanged: status, headers and body.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import webob
import webob.dec
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paste.deploy import loadapp

from guard.context import RequestContext
from guard.testing import Persona

# The guard filter's factory installs guard's redacting filter process-wide:
# undone after each test (the suite's isolated_install fixture).
pytestmark = pytest.mark.usefixtures("isolated_install")

MEMBER = Persona("svc-user", "svc-project", ("member", "reader")).headers()
#: What the service answers, by path: (status, content type, body, extra headers).
ANSWERS: dict[str, tuple[str, str, bytes, list[tuple[str, str]]]] = {
    "/v2.1/servers/conflict": ("409 Conflict", "text/plain", b"generation conflict", []),
    "/v2.1/servers/bad": ("400 Bad Request", "text/plain", b"bad flavorRef", []),
    "/v2.1/servers/gone": ("404 Not Found", "text/html", b"<h1>no such server</h1>", []),
    "/v2.1/servers/broken": ("500 Internal Server Error", "text/plain", b"boom", []),
    "/v2.1/servers/limited": (
        "413 Request Entity Too Large",
        "text/plain",
        b"too big",
        [("Retry-After", "30")],
    ),
    "/v2.1/servers/moved": (
        "301 Moved Permanently",
        "text/plain",
        b"",
        [("Location", "http://elsewhere.example/")],
    ),
}
SEEN: list[dict[str, Any]] = []


def service(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Another service's WSGI app: not guard's API, not guard's errors."""
    SEEN.append(environ)
    status, content_type, body, extra = ANSWERS.get(
        environ["PATH_INFO"], ("200 OK", "application/json", b'{"servers": []}', [])
    )
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    headers.append(("X-Service-Header", "kept"))
    start_response(status, headers)
    return [body]


def service_factory(global_conf: dict[str, str], **local_conf: str) -> Any:
    """PasteDeploy factory of :func:`service`."""
    return service


PASTE_INI = """
[pipeline:main]
pipeline = guard service

[filter:guard]
use = egg:guard#guard

[app:service]
paste.app_factory = tests.functional.test_filter_any_service:service_factory
"""


@pytest.fixture
def pasted(tmp_path: Path) -> webtest.TestApp:
    folder = tmp_path
    (folder / "guard.conf").write_text("[guard]\nfingerprint_key = filter-test-key\n")
    (folder / "api-paste.ini").write_text(PASTE_INI)
    app = loadapp(
        f"config:{folder / 'api-paste.ini'}",
        name="main",
        global_conf={"config_file": str(folder / "guard.conf")},
    )
    return webtest.TestApp(app)


def test_the_context_is_in_the_environ(pasted: webtest.TestApp) -> None:
    response = pasted.get("/v2.1/servers", headers=MEMBER)
    assert response.status_int == 200 and response.json == {"servers": []}
    context = SEEN[-1]["guard.context"]
    assert isinstance(context, RequestContext)
    assert (context.user_id, context.project_id) == ("svc-user", "svc-project")
    assert context.roles == ["member", "reader"]
    assert response.headers["X-Openstack-Request-Id"] == context.request_id


def test_anonymous_callers_get_guards_401(pasted: webtest.TestApp) -> None:
    seen = len(SEEN)
    forged = {**MEMBER, "X-Identity-Status": "Invalid"}
    response = pasted.get("/v2.1/servers", headers=forged, status=401)
    assert response.content_type == "application/json"
    (error,) = response.json["errors"]
    assert error["code"] == "guard.unauthorized"
    assert error["request_id"] == response.headers["X-Openstack-Request-Id"]
    assert len(SEEN) == seen  # the service never saw the request


@pytest.mark.parametrize("path", sorted(ANSWERS))
def test_the_services_answers_pass_through_unchanged(pasted: webtest.TestApp, path: str) -> None:
    status, content_type, body, extra = ANSWERS[path]
    response = pasted.get(path, headers=MEMBER, status="*")
    assert response.status == status
    assert response.headers["Content-Type"] == content_type  # not JSON, no charset added
    assert response.body == body
    for name, value in [*extra, ("X-Service-Header", "kept")]:
        assert response.headers[name] == value
    names = [name.lower() for name, _ in response.headerlist]
    assert len(names) == len(set(names))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    code=st.integers(200, 599).filter(lambda c: c not in (204, 304)),
    content_type=st.sampled_from(["text/plain", "text/html", "application/json", "a/b"]),
    body=st.binary(max_size=200),
    header=st.text("abcdefghijklmnopqrstuvwxyz0123456789 -_", min_size=1, max_size=40),
)
def test_any_answer_passes_through(code: int, content_type: str, body: bytes, header: str) -> None:
    headers = [("Content-Type", content_type), ("X-Service", header.strip() or "x")]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(f"{code} Whatever", headers)
        return [body]

    from guard import middleware  # the filter itself, no paste

    wrapped = webtest.TestApp(middleware.GuardMiddleware(app, None))
    response = wrapped.get("/any/thing", headers=MEMBER, status="*")
    assert response.status == f"{code} Whatever"
    assert response.body == body
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Service"] == (header.strip() or "x")


def test_access_line_keeps_route_words_and_fingerprints_ids(
    pasted: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    server = str(uuid.uuid4())
    keystone_id = uuid.uuid4().hex
    path = f"/v2.1/servers/{server}/os-interface/{keystone_id}/ports/12345"
    with caplog.at_level(logging.INFO, logger="guard.access"):
        pasted.get(path, headers=MEMBER)
    (record,) = [r for r in caplog.records if r.name == "guard.access"]
    line = record.getMessage()
    words = line.split()[1].split("/")
    assert words[:4] == ["", "v2.1", "servers", words[3]] and words[3].startswith("<id:")
    assert words[4] == "os-interface" and words[5].startswith("<id:")
    assert words[6] == "ports" and words[7].startswith("<id:")  # a number id too
    assert server not in line and keystone_id not in line and "12345" not in line


@webob.dec.wsgify
def _webob_service(req: webob.Request) -> webob.Response:
    return webob.Response(status=409, content_type="text/plain", charset=None, body=b"conflict")


def test_a_wsgify_service_is_passed_through_too(tmp_path: Path) -> None:
    from guard import middleware

    wrapped = middleware.filter_factory({})(_webob_service)
    response = webtest.TestApp(wrapped).put("/things/x", headers=MEMBER, status=409)
    assert response.headers["Content-Type"] == "text/plain"
    assert response.body == b"conflict"


ROUTE_WORDS = st.sampled_from(
    ["v2.1", "servers", "os-interface", "detail", "ports", "os-hypervisors", "action", "v3"]
)
IDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: str(u).upper()),
    st.tuples(st.uuids(), st.uuids()).map(lambda p: p[0].hex + p[1].hex),  # 64 hex
    st.integers(0, 10**12).map(str),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(ROUTE_WORDS, st.one_of(st.none(), IDS)), min_size=1, max_size=5))
def test_access_paths_keep_every_route_word_and_no_id(parts: list[tuple[str, str | None]]) -> None:
    from guard import middleware

    segments = [s for word, value in parts for s in (word, value) if s is not None]
    logged = middleware.loggable_target("/" + "/".join(segments), "").split("/")[1:]
    assert len(logged) == len(segments)
    for segment, shown in zip(segments, logged, strict=True):
        if segment in {word for word, _ in parts}:
            assert shown == segment  # a route word stays readable
        else:
            assert re.fullmatch(r"<id:[0-9a-f]{8}>", shown)  # an id never does
