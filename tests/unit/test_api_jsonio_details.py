"""guard.api.jsonio: a refused body's detail names the fault the client made.

Duplicate keys were answered "The request body is not valid UTF-8 JSON." (it
is valid JSON in UTF-8), and ``application/json; charset=utf8`` "The request
body must be application/json." (it is). Real WebOb requests.
"""

from __future__ import annotations

import pytest
import webob

from guard import exception
from guard.api import jsonio

BODY = b'{"project_id": "p1", "user_id": "u1", "consumer_generation": null}'


def _request(body: bytes, content_type: str) -> webob.Request:
    return webob.Request.blank("/consumers/x", method="PUT", body=body, content_type=content_type)


@pytest.mark.parametrize(
    "body",
    [
        b'{"project_id": "p1", "project_id": "p2", "consumer_generation": null}',
        b'{"a": {"b": 1, "b": 2}}',
    ],
)
def test_a_duplicate_key_is_called_so(body: bytes) -> None:
    with pytest.raises(exception.InvalidInput) as raised:
        jsonio.read_json_object(_request(body, "application/json"))
    assert raised.value.detail == "The request body gives a key more than once."


@pytest.mark.parametrize("body", [b'{"a": 1', b'{"a": NaN}', b"\xff"])
def test_what_is_not_json_is_still_called_so(body: bytes) -> None:
    with pytest.raises(exception.InvalidInput) as raised:
        jsonio.read_json_object(_request(body, "application/json"))
    assert raised.value.detail == "The request body is not valid UTF-8 JSON."


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf8", "APPLICATION/JSON; charset=latin-1"],
)
def test_json_in_another_charset_says_the_charset_is_the_fault(content_type: str) -> None:
    with pytest.raises(exception.UnsupportedMediaType) as raised:
        jsonio.read_json_object(_request(BODY, content_type))
    assert "in UTF-8" in raised.value.detail and raised.value.status == 415


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonx", ""])
def test_another_media_type_is_told_the_one_it_needs(content_type: str) -> None:
    with pytest.raises(exception.UnsupportedMediaType) as raised:
        jsonio.read_json_object(_request(BODY, content_type))
    assert raised.value.detail == "The request body must be application/json."


@pytest.mark.parametrize("codings", ["gzip, chunked", "deflate,chunked", "chunked, chunked, br"])
def test_a_transfer_coding_other_than_chunked_is_refused(codings: str) -> None:
    request = _request(BODY, "application/json")
    request.environ["HTTP_TRANSFER_ENCODING"] = codings
    with pytest.raises(exception.InvalidInput) as raised:
        jsonio.read_json_object(request)
    assert raised.value.detail == "Transfer-Encoding other than chunked is not supported."


def test_chunked_alone_is_read() -> None:
    request = _request(BODY, "application/json")
    request.environ["HTTP_TRANSFER_ENCODING"] = "Chunked"
    assert jsonio.read_json_object(request)["project_id"] == "p1"
