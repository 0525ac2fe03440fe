"""The API's parts on their own: routing, the body reader, query and body validation."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import webob
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_middleware import sizelimit

from guard import exception, validation
from guard.api import errors, jsonio
from guard.api.consumers import ConsumerBody
from guard.api.environ import ENV_MAX_BODY_SIZE
from guard.api.jsonio import read_json_object
from guard.api.query import decode_generation, parse_query
from guard.api.router import Route, Router
from guard.repository import KEEP


def handler(req: webob.Request, **kwargs: Any) -> webob.Response:
    return webob.Response()


ROUTER = Router(
    [
        Route(re.compile(r"/"), {"GET": handler}),
        Route(re.compile(r"/consumers"), {"GET": handler}),
        Route(
            re.compile(r"/consumers/(?P<uuid>[^/]+)"),
            {"GET": handler, "PUT": handler, "DELETE": handler},
        ),
    ]
)


def test_router_resolves_and_passes_path_arguments() -> None:
    assert ROUTER.resolve("/consumers/abc", "PUT") == (handler, {"uuid": "abc"})
    assert ROUTER.resolve("/", "GET") == (handler, {})


@pytest.mark.parametrize("path", ["", "/x", "/consumers/", "/consumers/a/b", "/consumersx"])
def test_router_unknown_path_is_404(path: str) -> None:
    with pytest.raises(exception.NotFound):
        ROUTER.resolve(path, "GET")


def test_router_other_method_is_405_with_sorted_allow() -> None:
    with pytest.raises(exception.MethodNotAllowed) as caught:
        ROUTER.resolve("/consumers/abc", "POST")
    assert caught.value.allowed == ["DELETE", "GET", "PUT"]
    response = errors.error_response(caught.value, "req-x")
    assert response.headers["Allow"] == "DELETE, GET, PUT"


def test_error_response_is_the_contract_format() -> None:
    response = errors.error_response(exception.Conflict("taken"), "req-1")
    assert response.status_int == 409
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {
        "errors": [
            {
                "status": 409,
                "title": "Conflict",
                "detail": "taken",
                "code": "guard.conflict",
                "request_id": "req-1",
            }
        ]
    }


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "guard.invalid_input"),
        (401, "guard.unauthorized"),
        (403, "guard.forbidden"),
        (404, "guard.not_found"),
        (405, "guard.method_not_allowed"),
        (409, "guard.conflict"),
        (413, "guard.too_large"),
        (415, "guard.unsupported_media_type"),
        (503, "guard.unavailable"),
        (500, "guard.internal"),
        (411, "guard.invalid_input"),
        (504, "guard.internal"),
    ],
)
def test_error_for_status(status: int, code: str) -> None:
    error = errors.error_for_status(status)
    assert error.code == code
    assert error.detail == type(error).default_detail


def put_request(
    body: bytes,
    content_type: str | None = "application/json",
    limit: int | None = None,
    chunked: bool = False,
) -> webob.Request:
    req = webob.Request.blank("/consumers/x", method="PUT", body=body)
    if content_type is None:
        req.environ.pop("CONTENT_TYPE", None)
    else:
        req.headers["Content-Type"] = content_type
    if limit is not None:
        req.environ[ENV_MAX_BODY_SIZE] = limit
    if chunked:
        req.body_file = sizelimit.LimitingReader(io.BytesIO(body), limit or 65536)
    return req


def test_reader_returns_an_object() -> None:
    assert read_json_object(put_request(b'{"a": [1, null]}')) == {"a": [1, None]}
    assert read_json_object(put_request(b"{}", "application/json; charset=utf-8")) == {}


@pytest.mark.parametrize(
    "content_type",
    [
        "APPLICATION/JSON",
        "Application/Json; Charset=UTF-8",
        'application/json; charset="utf-8"',
        " application/json ;charset=utf-8",
    ],
)
def test_reader_matches_the_media_type_case_insensitively(content_type: str) -> None:
    assert read_json_object(put_request(b'{"a": 1}', content_type)) == {"a": 1}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/json",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "APPLICATION/JSON; CHARSET=ISO-8859-1",
    ],
)
def test_reader_wants_json_content_type(content_type: str | None) -> None:
    with pytest.raises(exception.UnsupportedMediaType):
        read_json_object(put_request(b"{}", content_type))


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "identity, gzip"])
def test_reader_refuses_a_content_encoded_body(encoding: str) -> None:
    """A body declared compressed is not the UTF-8 JSON the contract takes
    (415), even when its bytes happen to parse as JSON."""
    req = put_request(b'{"consumer_generation": null}')
    req.headers["Content-Encoding"] = encoding
    with pytest.raises(exception.UnsupportedMediaType):
        read_json_object(req)


@pytest.mark.parametrize("encoding", ["identity", "IDENTITY", " identity "])
def test_reader_takes_the_identity_encoding(encoding: str) -> None:
    req = put_request(b'{"consumer_generation": null}')
    req.headers["Content-Encoding"] = encoding
    assert read_json_object(req) == {"consumer_generation": None}


def test_reader_checks_content_type_before_size() -> None:
    with pytest.raises(exception.UnsupportedMediaType):
        read_json_object(put_request(b" " * 100, "text/plain", limit=10))


@pytest.mark.parametrize("chunked", [False, True])
def test_reader_limit_is_inclusive(chunked: bool) -> None:
    assert read_json_object(put_request(b"{" + b" " * 8 + b"}", limit=10, chunked=chunked)) == {}
    with pytest.raises(exception.TooLarge):
        read_json_object(put_request(b"{" + b" " * 9 + b"}", limit=10, chunked=chunked))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"1",
        b'"x"',
        b"null",
        b"{",
        b'{"a":1}x',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1, "a": 1}',
        b"\xef\xbb\xbf{}",
        b'{"\xff": 1}',
        b"[" * 20000 + b"]" * 20000,
        b'{"a": 1' + b"0" * 5000 + b"}",
    ],
)
def test_reader_rejects_what_is_not_one_utf8_json_object(body: bytes) -> None:
    with pytest.raises(exception.InvalidInput):
        read_json_object(put_request(body, limit=100000))


def query_request(query: str) -> webob.Request:
    return webob.Request.blank(f"/consumers?{query}")


def test_parse_query() -> None:
    allowed = frozenset({"limit", "marker"})
    assert parse_query(query_request("limit=5&marker=m"), allowed) == {"limit": "5", "marker": "m"}
    assert parse_query(query_request(""), allowed) == {}


@pytest.mark.parametrize("query", ["x=1", "limit=1&limit=2", "limit=1&SECRET-ID=2"])
def test_parse_query_rejects_unknown_and_repeated(query: str) -> None:
    with pytest.raises(exception.InvalidInput) as caught:
        parse_query(query_request(query), frozenset({"limit"}))
    assert "SECRET-ID" not in caught.value.detail


@pytest.mark.parametrize(
    "value", ["", "-1", "1.0", "0x1", " 1", "9223372036854775808", "\uff11"]
)  # a fullwidth one
def test_decoded_generation_is_rejected(value: str) -> None:
    """Decoding keeps what is not a generation for the one validator to reject."""
    with pytest.raises(exception.InvalidInput):
        validation.validate_generation(decode_generation(value))


@given(st.integers(min_value=0, max_value=2**63 - 1))
@settings(max_examples=200, deadline=None)
def test_decode_generation_accepts_every_valid_generation(value: int) -> None:
    assert validation.validate_generation(decode_generation(str(value))) == value


def body(**document: Any) -> ConsumerBody:
    return ConsumerBody(document)


def test_consumer_body_create_and_update() -> None:
    created = body(project_id="p", user_id="u", consumer_generation=None)
    assert (created.project_id, created.user_id, created.generation) == ("p", "u", None)
    assert created.consumer_type is KEEP
    updated = body(project_id="p", user_id="u", consumer_generation=3, consumer_type=None)
    assert updated.generation == 3 and updated.consumer_type is None
    typed = body(project_id="p", user_id="u", consumer_generation=0, consumer_type="VM_1")
    assert typed.consumer_type == "VM_1"


@pytest.mark.parametrize(
    "document",
    [
        {"project_id": "p", "user_id": "u"},
        {"project_id": "p", "user_id": "u", "consumer_generation": None, "extra": 1},
        {"project_id": "p/q", "user_id": "u", "consumer_generation": None, "p/q": 1},
        {"user_id": "u", "consumer_generation": None},
    ],
)
def test_consumer_body_rejects_unknown_and_missing_keys(document: dict[str, Any]) -> None:
    with pytest.raises(exception.InvalidInput) as caught:
        ConsumerBody(document)
    assert "p/q" not in caught.value.detail


def _answer(app, method: str) -> tuple[str, list, bytes]:
    seen: list = []
    body = app({"REQUEST_METHOD": method}, lambda status, headers: seen.extend([status, headers]))
    return seen[0], sorted(seen[1]), b"".join(body)


@pytest.mark.parametrize("status", [200, 201])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("document", [{}, {"consumers": [], "next_marker": None}, {"é": "ü"}])
def test_a_json_answer_is_what_webob_would_send(status, method, document) -> None:
    stock = webob.Response(
        status=status,
        body=json.dumps(document).encode("utf-8"),
        content_type="application/json",
        charset=None,
    )
    assert _answer(jsonio.json_response(document, status), method) == _answer(stock, method)
