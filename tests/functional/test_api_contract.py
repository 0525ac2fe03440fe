"""The HTTP contract of docs/api.md, row by row, through the whole ``trusted`` pipeline.

In-process (WebTest) on a real SQLite file, with the real policy engine and
repository; each test makes its own projects and consumers, so tests share
the deployment but no rows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from guard import conf as guard_conf
from guard import deploy
from guard.testing import Persona, deployment
from tests.fixtures.logleak import LogLeakDetector
from tests.fixtures.pgcluster import free_port
from tests.functional.support import CONSUMER_KEYS, REQUEST_ID_RE, Cast, body_for, check_error

# Parametrized ids must be the same in every xdist worker.
FIXED_UUID = "0c6a3e44-5b8e-4f1c-9d3a-2f6b7c8d9e01"


@pytest.fixture(scope="module")
def services(module_database_url: str) -> Iterator[deploy.Services]:
    """The contract holds on each database (tests/conftest.py's BACKENDS)."""
    with deployment(module_database_url) as services:
        yield services


@pytest.fixture(scope="module")
def app(services: deploy.Services) -> webtest.TestApp:
    return webtest.TestApp(deploy.build_pipeline(services, "trusted"))


@pytest.fixture
def cast(log_leaks: LogLeakDetector) -> Cast:
    new = Cast.new()
    log_leaks.sensitive(*new.sensitive_values())  # the persona ids are secrets to the logs
    return new


class Client:
    """Requests as a persona; every response is checked for its request id."""

    def __init__(self, app: webtest.TestApp) -> None:
        self.app = app

    def __call__(
        self,
        method: str,
        path: str,
        persona: Persona | None = None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> webtest.TestResponse:
        all_headers = {**(persona.headers() if persona else {}), **(headers or {})}
        if body is not None:
            raw = json.dumps(body).encode()
        if content_type is not None and raw is not None:
            all_headers["Content-Type"] = content_type
        response = self.app.request(
            path, method=method, headers=all_headers, body=raw or b"", status="*"
        )
        assert REQUEST_ID_RE.match(response.headers["X-Openstack-Request-Id"])
        return response

    def error(self, response: webtest.TestResponse, status: int, code: str) -> dict[str, Any]:
        return check_error(response.status_int, response.headers, response.body, status, code)

    def create(self, persona: Persona, owner: Persona | None = None, **extra: Any) -> str:
        consumer = str(uuid.uuid4())
        response = self(
            "PUT", f"/consumers/{consumer}", persona, body_for(owner or persona, None, **extra)
        )
        assert response.status_int == 201, response.text
        return consumer


@pytest.fixture
def client(app: webtest.TestApp) -> Client:
    return Client(app)


# -- / and /healthcheck ------------------------------------------------------------------


def test_version_document_needs_no_identity(client: Client) -> None:
    response = client("GET", "/")
    assert response.status_int == 200
    assert response.content_type == "application/json"
    (version,) = response.json["versions"]
    assert version["status"] == "CURRENT"


def test_healthcheck_shows_details_to_admins_only(
    client: Client, cast: Cast, services: deploy.Services
) -> None:
    for persona in (None, cast.member_a, cast.service, cast.system_admin):
        response = client("GET", "/healthcheck", persona)
        assert response.status_int == 200
        assert response.json == {"status": "ok"}
    detail = client("GET", "/healthcheck", cast.admin).json
    assert detail["status"] == "ok" and detail["database"] == "ok"
    assert detail["policy"] == {
        "revision": services.enforcer.revision,
        "last_reload_error": None,
    }
    assert detail["audit"]["dropped"] == services.decision_log.dropped


def test_healthcheck_reports_a_refused_reload(tmp_path: Path, cast: Cast) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"guard:consumers:show": "rule:admin"\n')
    with deployment(f"sqlite:///{tmp_path / 'guard.sqlite'}", str(policy_file)) as services:
        client = Client(webtest.TestApp(deploy.build_pipeline(services, "trusted")))
        before = client("GET", "/healthcheck", cast.admin).json["policy"]
        assert before["last_reload_error"] is None
        policy_file.write_text('# edited\n"guard:consumers:show": "rule:admin or (role:x"\n')
        deadline = time.monotonic() + 5
        while True:
            detail = client("GET", "/healthcheck", cast.admin).json
            if detail["policy"]["last_reload_error"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert detail["status"] == "ok"
        error = detail["policy"]["last_reload_error"]
        assert "guard:consumers:show" in error and "policy.yaml:2" in error
        assert "role:x" not in error
        assert detail["policy"]["revision"] == before["revision"]  # the last good rules
        public = client("GET", "/healthcheck", cast.member_a)
        assert public.json == {"status": "ok"}


def test_unreachable_database_is_503(tmp_path: Path, cast: Cast) -> None:
    # A PostgreSQL URL on a loopback port nothing listens on.
    services = deploy.build_services(
        _conf_with(f"postgresql+psycopg://guard:s3cret@127.0.0.1:{free_port()}/guard")
    )
    try:
        client = Client(webtest.TestApp(deploy.build_pipeline(services, "trusted")))
        for persona, path in (
            (None, "/healthcheck"),
            (cast.admin, "/healthcheck"),
            (cast.admin, f"/consumers/{uuid.uuid4()}"),
            (cast.member_a, "/consumers"),
        ):
            response = client("GET", path, persona)
            client.error(response, 503, "guard.unavailable")
            assert "s3cret" not in response.text and "127.0.0.1" not in response.text
    finally:
        services.close()


def _conf_with(url: str) -> Any:
    conf = guard_conf.load()
    conf.set_override("connection", url, group="database")
    return conf


# -- identity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/consumers"),
        ("GET", f"/consumers/{FIXED_UUID}"),
        ("PUT", f"/consumers/{FIXED_UUID}"),
        ("DELETE", f"/consumers/{FIXED_UUID}"),
        ("GET", "/nowhere"),
        ("POST", "/consumers"),
        ("GET", "/consumers/not-a-uuid"),
    ],
)
@pytest.mark.parametrize("status", [None, "Invalid", "confirmed"])
def test_anonymous_is_401_before_anything_else(
    client: Client, cast: Cast, method: str, path: str, status: str | None
) -> None:
    headers = cast.admin.headers()
    if status is None:
        del headers["X-Identity-Status"]
    else:
        headers["X-Identity-Status"] = status
    response = client(method, path, headers=headers, raw=b"x" * 70000, content_type="text/plain")
    client.error(response, 401, "guard.unauthorized")


def test_system_scope_fails_the_project_rules(client: Client, cast: Cast) -> None:
    consumer = client.create(cast.member_a)
    client.error(client("GET", "/consumers", cast.system_admin), 403, "guard.forbidden")
    client.error(
        client("GET", f"/consumers/{consumer}", cast.system_admin), 404, "guard.not_found"
    )


# -- routing -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nowhere", "/consumers/", "/consumers/a/b", "/v1/consumers"])
def test_unknown_path_is_404(client: Client, cast: Cast, path: str) -> None:
    client.error(client("GET", path, cast.admin), 404, "guard.not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/consumers", "GET"),
        ("DELETE", "/consumers", "GET"),
        ("POST", f"/consumers/{FIXED_UUID}", "DELETE, GET, PUT"),
        ("PATCH", "/consumers/not-a-uuid", "DELETE, GET, PUT"),
        ("PUT", "/", "GET"),
        ("POST", "/healthcheck", "GET, HEAD"),  # HEAD as oslo.middleware's healthcheck
    ],
)
def test_other_method_is_405_with_allow(
    client: Client, cast: Cast, method: str, path: str, allow: str
) -> None:
    response = client(method, path, cast.admin, raw=b"{", content_type="text/plain")
    client.error(response, 405, "guard.method_not_allowed")
    assert response.headers["Allow"] == allow


# -- order of checks ---------------------------------------------------------------------


def test_order_uuid_before_content_type_before_size(client: Client, cast: Cast) -> None:
    big = b" " * 70000
    client.error(
        client("PUT", "/consumers/nope", cast.member_a, raw=big, content_type="text/plain"),
        400,
        "guard.invalid_input",
    )
    path = f"/consumers/{uuid.uuid4()}"
    client.error(
        client("PUT", path, cast.member_a, raw=big, content_type="text/plain"),
        415,
        "guard.unsupported_media_type",
    )
    client.error(client("PUT", path, cast.member_a, raw=big), 413, "guard.too_large")


def test_order_query_before_visibility_before_rule_before_generation(
    client: Client, cast: Cast
) -> None:
    consumer = client.create(cast.member_a)
    path = f"/consumers/{consumer}"
    # 400 before 404: a stranger's bad body for a row she cannot see.
    client.error(
        client("PUT", path, cast.stranger, {"consumer_generation": "0"}),
        400,
        "guard.invalid_input",
    )
    client.error(
        client("DELETE", f"{path}?consumer_generation=x", cast.stranger),
        400,
        "guard.invalid_input",
    )
    # 404 before 403 before 409: a stale generation from each.
    client.error(
        client("PUT", path, cast.stranger, body_for(cast.stranger, 7)), 404, "guard.not_found"
    )
    client.error(
        client("PUT", path, cast.reader_a, body_for(cast.member_a, 7)), 403, "guard.forbidden"
    )
    client.error(
        client("DELETE", f"{path}?consumer_generation=7", cast.reader_a), 403, "guard.forbidden"
    )
    client.error(
        client("PUT", path, cast.member_a, body_for(cast.member_a, 7)),
        409,
        "guard.concurrent_update",
    )
    client.error(
        client("DELETE", f"{path}?consumer_generation=7", cast.member_a),
        409,
        "guard.concurrent_update",
    )


def test_list_checks_the_query_before_the_rule(client: Client, cast: Cast) -> None:
    client.error(client("GET", "/consumers?limit=0", cast.roleless_a), 400, "guard.invalid_input")
    client.error(client("GET", "/consumers", cast.roleless_a), 403, "guard.forbidden")


# -- PUT -----------------------------------------------------------------------------------


def test_create_read_update_delete(client: Client, cast: Cast) -> None:
    consumer = str(uuid.uuid4())
    path = f"/consumers/{consumer}"
    created = client("PUT", path, cast.member_a, body_for(cast.member_a, None))
    assert created.status_int == 201
    assert set(created.json) == CONSUMER_KEYS
    assert created.json["uuid"] == consumer
    assert created.json["project_id"] == cast.project_a
    assert created.json["user_id"] == cast.member_a.user_id
    assert created.json["consumer_type"] is None
    assert created.json["generation"] == 0

    shown = client("GET", path, cast.reader_a)
    assert shown.status_int == 200 and shown.json == created.json

    updated = client(
        "PUT", path, cast.member_a, body_for(cast.member_a, 0, consumer_type="INSTANCE")
    )
    assert updated.status_int == 200
    assert set(updated.json) == CONSUMER_KEYS
    assert updated.json["generation"] == 1 and updated.json["consumer_type"] == "INSTANCE"

    kept = client("PUT", path, cast.member_a, body_for(cast.member_a, 1))
    assert kept.json["consumer_type"] == "INSTANCE" and kept.json["generation"] == 2

    client.error(
        client("PUT", path, cast.member_a, body_for(cast.member_a, 1)),
        409,
        "guard.concurrent_update",
    )
    deleted = client("DELETE", f"{path}?consumer_generation=2", cast.member_a)
    assert deleted.status_int == 204 and deleted.body == b""
    client.error(client("GET", path, cast.admin), 404, "guard.not_found")


def test_uuid_spellings_are_normalized(client: Client, cast: Cast) -> None:
    consumer = uuid.uuid4()
    created = client(
        "PUT", f"/consumers/{str(consumer).upper()}", cast.member_a, body_for(cast.member_a, None)
    )
    assert created.status_int == 201 and created.json["uuid"] == str(consumer)
    shown = client("GET", f"/consumers/{consumer.hex}", cast.member_a)
    assert shown.status_int == 200 and shown.json["uuid"] == str(consumer)


@pytest.mark.parametrize(
    "document",
    [
        {"project_id": "p", "user_id": "u", "consumer_generation": "0"},
        {"project_id": "p", "user_id": "u"},
        {"project_id": "p", "user_id": "u", "consumer_generation": None, "owner": "x"},
        {"project_id": "p", "consumer_generation": None},
        {"project_id": "p p", "user_id": "u", "consumer_generation": None},
        {"project_id": "p", "user_id": "", "consumer_generation": None},
        {"project_id": "p", "user_id": "u", "consumer_generation": None, "consumer_type": "vm"},
        {"project_id": "p", "user_id": "u", "consumer_generation": True},
        {"project_id": "p", "user_id": "u", "consumer_generation": -1},
        {"project_id": "p", "user_id": "u", "consumer_generation": 2**63},
        {"project_id": "p", "user_id": "u", "consumer_generation": 1.0},
        {"project_id": 5, "user_id": "u", "consumer_generation": None},
        [],
        "consumer",
        None,
    ],
)
def test_invalid_bodies_are_400(client: Client, cast: Cast, document: Any) -> None:
    response = client(
        "PUT", f"/consumers/{uuid.uuid4()}", cast.admin, raw=json.dumps(document).encode()
    )
    client.error(response, 400, "guard.invalid_input")


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"a": NaN}', b"\xff\xfe{}", b'{"a": 1, "a": 2}', b"[" * 100000],
)
def test_malformed_json_is_400(client: Client, cast: Cast, raw: bytes) -> None:
    response = client("PUT", f"/consumers/{uuid.uuid4()}", cast.admin, raw=raw[:65536])
    client.error(response, 400, "guard.invalid_input")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/jsonx", "multipart/form-data"]
)
def test_put_without_json_content_type_is_415(
    client: Client, cast: Cast, content_type: str | None
) -> None:
    raw = json.dumps(body_for(cast.member_a, None)).encode()
    response = client(
        "PUT", f"/consumers/{uuid.uuid4()}", cast.member_a, raw=raw, content_type=content_type
    )
    client.error(response, 415, "guard.unsupported_media_type")


def test_json_content_type_with_charset_is_accepted(client: Client, cast: Cast) -> None:
    raw = json.dumps(body_for(cast.member_a, None)).encode()
    response = client(
        "PUT",
        f"/consumers/{uuid.uuid4()}",
        cast.member_a,
        raw=raw,
        content_type="application/json; charset=UTF-8",
    )
    assert response.status_int == 201


def test_body_of_65536_bytes_passes_and_65537_is_413(client: Client, cast: Cast) -> None:
    document = json.dumps(body_for(cast.member_a, None)).encode()
    exact = document[:-1] + b" " * (65536 - len(document)) + b"}"
    assert len(exact) == 65536
    ok = client("PUT", f"/consumers/{uuid.uuid4()}", cast.member_a, raw=exact)
    assert ok.status_int == 201
    over = exact[:-1] + b" }"
    response = client("PUT", f"/consumers/{uuid.uuid4()}", cast.member_a, raw=over)
    client.error(response, 413, "guard.too_large")


def test_null_generation_for_an_existing_uuid_is_409_whoever_owns_it(
    client: Client, cast: Cast
) -> None:
    consumer = client.create(cast.member_b)
    own = client("PUT", f"/consumers/{consumer}", cast.member_b, body_for(cast.member_b, None))
    other = client("PUT", f"/consumers/{consumer}", cast.member_a, body_for(cast.member_a, None))
    mine = client.error(own, 409, "guard.concurrent_update")
    theirs = client.error(other, 409, "guard.concurrent_update")
    assert mine["detail"] == theirs["detail"]
    assert cast.project_b not in other.text and cast.member_b.user_id not in other.text


def test_integer_generation_for_a_missing_uuid_is_404(client: Client, cast: Cast) -> None:
    response = client("PUT", f"/consumers/{uuid.uuid4()}", cast.admin, body_for(cast.admin, 0))
    client.error(response, 404, "guard.not_found")


def test_member_may_not_create_or_move_into_another_project(client: Client, cast: Cast) -> None:
    response = client(
        "PUT", f"/consumers/{uuid.uuid4()}", cast.member_a, body_for(cast.member_b, None)
    )
    client.error(response, 403, "guard.forbidden")
    assert cast.project_b not in response.text
    consumer = client.create(cast.member_a)
    moved = client("PUT", f"/consumers/{consumer}", cast.member_a, body_for(cast.member_b, 0))
    client.error(moved, 403, "guard.forbidden")
    assert client("GET", f"/consumers/{consumer}", cast.member_a).json["generation"] == 0
    # The admin has the right on both owners.
    assert (
        client("PUT", f"/consumers/{consumer}", cast.admin, body_for(cast.member_b, 0)).json[
            "project_id"
        ]
        == cast.project_b
    )


def test_service_may_act_on_any_project(client: Client, cast: Cast) -> None:
    consumer = client.create(cast.service, owner=cast.member_b)
    assert client("GET", f"/consumers/{consumer}", cast.service).status_int == 200


# -- visibility ----------------------------------------------------------------------------


def test_invisible_answers_exactly_as_missing(client: Client, cast: Cast) -> None:
    consumer = client.create(cast.member_a)
    missing = str(uuid.uuid4())
    requests = [
        ("GET", "{}", None),
        ("PUT", "{}", body_for(cast.stranger, 0)),
        ("DELETE", "{}", None),
        ("DELETE", "{}?consumer_generation=0", None),
    ]
    for method, template, body in requests:
        hidden = client(method, "/consumers/" + template.format(consumer), cast.stranger, body)
        absent = client(method, "/consumers/" + template.format(missing), cast.stranger, body)
        hidden_error = client.error(hidden, 404, "guard.not_found")
        absent_error = client.error(absent, 404, "guard.not_found")
        assert hidden_error["detail"] == absent_error["detail"]
        assert hidden_error["title"] == absent_error["title"]
    assert client("GET", f"/consumers/{consumer}", cast.member_a).json["generation"] == 0


# -- DELETE --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "consumer_generation=",
        "consumer_generation=-1",
        "consumer_generation=1.0",
        "consumer_generation=9223372036854775808",
        "generation=0",
        "consumer_generation=0&consumer_generation=0",
    ],
)
def test_delete_with_a_bad_query_is_400(client: Client, cast: Cast, query: str) -> None:
    consumer = client.create(cast.member_a)
    response = client("DELETE", f"/consumers/{consumer}?{query}", cast.member_a)
    client.error(response, 400, "guard.invalid_input")


def test_delete_without_generation(client: Client, cast: Cast) -> None:
    consumer = client.create(cast.member_a)
    assert client("DELETE", f"/consumers/{consumer}", cast.member_a).status_int == 204
    client.error(client("DELETE", f"/consumers/{consumer}", cast.member_a), 404, "guard.not_found")


# -- GET /consumers ------------------------------------------------------------------------


def test_list_pages_by_uuid_with_next_marker(client: Client, cast: Cast) -> None:
    made = sorted(client.create(cast.member_a) for _ in range(3))
    query = f"/consumers?project_id={cast.project_a}"
    first = client("GET", f"{query}&limit=2", cast.reader_a).json
    assert set(first) == {"consumers", "next_marker"}
    assert [c["uuid"] for c in first["consumers"]] == made[:2]
    assert all(set(c) == CONSUMER_KEYS for c in first["consumers"])
    assert first["next_marker"] == made[1]
    rest = client("GET", f"{query}&limit=2&marker={made[1]}", cast.reader_a).json
    assert [c["uuid"] for c in rest["consumers"]] == made[2:]
    assert rest["next_marker"] is None
    exact = client("GET", f"{query}&limit=3", cast.reader_a).json
    assert exact["next_marker"] is None and len(exact["consumers"]) == 3


def test_list_shows_only_visible_rows(client: Client, cast: Cast) -> None:
    mine = client.create(cast.member_a)
    theirs = client.create(cast.member_b)
    seen = {
        c["uuid"] for c in client("GET", "/consumers?limit=1000", cast.member_a).json["consumers"]
    }
    assert mine in seen and theirs not in seen
    assert all(
        c["project_id"] == cast.project_a
        for c in client("GET", "/consumers?limit=1000", cast.reader_a).json["consumers"]
    )
    other = client("GET", f"/consumers?project_id={cast.project_b}", cast.stranger)
    assert other.status_int == 200
    assert other.json == {"consumers": [], "next_marker": None}
    by_type = client("GET", f"/consumers?user_id={cast.member_b.user_id}", cast.admin).json
    assert [c["uuid"] for c in by_type["consumers"]] == [theirs]


def test_list_filters_by_consumer_type(client: Client, cast: Cast) -> None:
    typed = client.create(cast.member_a, consumer_type="MIGRATION")
    client.create(cast.member_a)
    listed = client(
        "GET", f"/consumers?project_id={cast.project_a}&consumer_type=MIGRATION", cast.member_a
    ).json
    assert [c["uuid"] for c in listed["consumers"]] == [typed]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=",
        "marker=nope",
        "project_id=",
        "project_id=a%20b",
        "consumer_type=vm",
        "owner=me",
        "limit=1&limit=2",
        "user_id=%ff",
    ],
)
def test_list_with_a_bad_query_is_400(client: Client, cast: Cast, query: str) -> None:
    client.error(client("GET", f"/consumers?{query}", cast.admin), 400, "guard.invalid_input")


def test_list_is_403_when_the_rule_can_allow_no_row(client: Client, cast: Cast) -> None:
    for persona in (
        cast.roleless_a,
        cast.system_admin,
        Persona("u-x", cast.project_a, ("observer",)),
    ):
        client.error(client("GET", "/consumers", persona), 403, "guard.forbidden")


# -- no leaks --------------------------------------------------------------------------------


def test_error_details_name_only_the_paths_own_uuid(client: Client, cast: Cast) -> None:
    consumer = client.create(cast.member_b)
    texts = [
        client("GET", f"/consumers/{consumer}", cast.member_a).text,
        client("PUT", f"/consumers/{consumer}", cast.member_a, body_for(cast.member_a, 0)).text,
        client(
            "PUT", f"/consumers/{uuid.uuid4()}", cast.member_a, body_for(cast.member_b, None)
        ).text,
    ]
    for text in texts:
        assert cast.project_b not in text and cast.member_b.user_id not in text
        assert cast.project_a not in text and cast.member_a.user_id not in text
