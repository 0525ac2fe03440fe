"""The contract over real HTTP: a waitress server on a loopback port, urllib clients.

What only a real server shows (Content-Length and chunked bodies at the
limit, header spelling on the wire, many threads racing on one generation),
and the core of the contract on PostgreSQL as well as SQLite.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest

from guard import deploy
from guard.testing import Persona, deployment, http, served
from tests.functional.support import CONSUMER_KEYS, REQUEST_ID_RE, Cast, body_for, check_error

JSON = {"Content-Type": "application/json"}


@contextlib.contextmanager
def serving(database_url: str) -> Iterator[str]:
    """The ``trusted`` pipeline on ``database_url``, served over HTTP; its base URL."""
    with (
        deployment(database_url) as services,
        served(deploy.build_pipeline(services, "trusted"), threads=8) as url,
    ):
        yield url


@pytest.fixture
def base_url(database_url: str) -> Iterator[str]:
    with serving(database_url) as url:
        yield url


@pytest.fixture
def sqlite_base_url(sqlite_url: str) -> Iterator[str]:
    with serving(sqlite_url) as url:
        yield url


def call(
    base_url: str, method: str, path: str, persona: Persona | None = None, body: object = None
) -> tuple[int, object, bytes]:
    headers = persona.headers() if persona else {}
    raw = None
    if body is not None:
        raw = json.dumps(body).encode()
        headers = {**headers, **JSON}
    return http(method, base_url + path, headers, raw)


def test_contract_core(base_url: str) -> None:
    cast = Cast.new()
    consumer = str(uuid.uuid4())
    path = f"/consumers/{consumer}"
    status, _, body = call(base_url, "PUT", path, cast.member_a, body_for(cast.member_a, None))
    assert status == 201 and set(json.loads(body)) == CONSUMER_KEYS
    status, _, body = call(base_url, "GET", path, cast.reader_a)
    assert status == 200 and json.loads(body)["generation"] == 0
    # invisible == missing
    hidden = call(base_url, "GET", path, cast.stranger)
    missing = call(base_url, "GET", f"/consumers/{uuid.uuid4()}", cast.stranger)
    assert (
        check_error(*hidden, 404, "guard.not_found")["detail"]
        == check_error(*missing, 404, "guard.not_found")["detail"]
    )
    check_error(
        *call(base_url, "PUT", path, cast.member_b, body_for(cast.member_b, None)),
        409,
        "guard.concurrent_update",
    )
    check_error(
        *call(base_url, "PUT", path, cast.reader_a, body_for(cast.member_a, 0)),
        403,
        "guard.forbidden",
    )
    status, _, body = call(base_url, "PUT", path, cast.member_a, body_for(cast.member_a, 0))
    assert status == 200 and json.loads(body)["generation"] == 1
    check_error(
        *call(base_url, "DELETE", f"{path}?consumer_generation=0", cast.member_a),
        409,
        "guard.concurrent_update",
    )
    status, _, body = call(
        base_url, "GET", f"/consumers?project_id={cast.project_a}", cast.member_a
    )
    assert status == 200
    assert json.loads(body) == {
        "consumers": [json.loads(call(base_url, "GET", path, cast.member_a)[2])],
        "next_marker": None,
    }
    check_error(*call(base_url, "GET", "/consumers", cast.roleless_a), 403, "guard.forbidden")
    status, _, body = call(base_url, "DELETE", f"{path}?consumer_generation=1", cast.member_a)
    assert (status, body) == (204, b"")
    check_error(*call(base_url, "GET", path, cast.admin), 404, "guard.not_found")


def test_every_response_carries_the_request_id(sqlite_base_url: str) -> None:
    cast = Cast.new()
    for method, path, persona in (
        ("GET", "/", None),
        ("GET", "/healthcheck", None),
        ("GET", "/consumers", None),
        ("GET", "/consumers", cast.member_a),
        ("GET", "/nowhere", cast.member_a),
        ("POST", "/consumers", cast.member_a),
    ):
        status, headers, body = call(sqlite_base_url, method, path, persona)
        request_id = headers["X-Openstack-Request-Id"]
        assert REQUEST_ID_RE.match(request_id)
        if status >= 400:
            assert json.loads(body)["errors"][0]["request_id"] == request_id


def test_header_trust_rules_over_http(sqlite_base_url: str) -> None:
    cast = Cast.new()
    consumer = f"/consumers/{uuid.uuid4()}"
    assert (
        call(sqlite_base_url, "PUT", consumer, cast.member_b, body_for(cast.member_b, None))[0]
        == 201
    )
    spoofed = {**cast.admin.headers(), "X-Service-Roles": "service"}
    for status_header in (None, "Invalid", "Confirmed, Confirmed"):
        headers = dict(spoofed)
        if status_header is None:
            del headers["X-Identity-Status"]
        else:
            headers["X-Identity-Status"] = status_header
        check_error(*http("GET", sqlite_base_url + consumer, headers), 401, "guard.unauthorized")
    system = {**cast.admin.headers(), "OpenStack-System-Scope": "all"}
    check_error(*http("GET", sqlite_base_url + consumer, system), 404, "guard.not_found")
    check_error(*http("GET", sqlite_base_url + "/consumers", system), 403, "guard.forbidden")


def test_body_limit_over_http(sqlite_base_url: str) -> None:
    cast = Cast.new()
    document = json.dumps(body_for(cast.member_a, None)).encode()
    exact = document[:-1] + b" " * (65536 - len(document)) + b"}"
    headers = {**cast.member_a.headers(), **JSON}
    status, _, _ = http("PUT", f"{sqlite_base_url}/consumers/{uuid.uuid4()}", headers, exact)
    assert status == 201
    over = exact[:-1] + b" }"
    check_error(
        *http("PUT", f"{sqlite_base_url}/consumers/{uuid.uuid4()}", headers, over),
        413,
        "guard.too_large",
    )
    # The same body without a Content-Length (chunked) meets the same limit.
    for payload, want in ((over, 413), (exact, 201)):
        status, response_headers, body = chunked_put(
            sqlite_base_url, f"/consumers/{uuid.uuid4()}", headers, payload
        )
        if want == 413:
            check_error(status, response_headers, body, 413, "guard.too_large")
        else:
            assert status == 201, body


def chunked_put(
    base_url: str, path: str, headers: dict[str, str], payload: bytes
) -> tuple[int, object, bytes]:
    split = urlsplit(base_url)
    connection = HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        connection.putrequest("PUT", path)
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for start in range(0, len(payload), 8192):
            chunk = payload[start : start + 8192]
            connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_racing_updates_one_winner_per_generation(base_url: str) -> None:
    cast = Cast.new()
    path = f"/consumers/{uuid.uuid4()}"
    assert call(base_url, "PUT", path, cast.member_a, body_for(cast.member_a, None))[0] == 201

    def update(_: int) -> int:
        status, _, _ = call(base_url, "PUT", path, cast.member_a, body_for(cast.member_a, 0))
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(update, range(16)))
    assert statuses.count(200) == 1
    assert statuses.count(409) == 15
    status, _, body = call(base_url, "GET", path, cast.member_a)
    assert status == 200 and json.loads(body)["generation"] == 1
