"""Requests waitress cannot parse, sent as raw bytes to a real ``guard serve``.

waitress answers them itself, before any WSGI code runs; guard serve makes
that answer the contract's JSON error with a request id, like every other.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from tests.functional.live_server import live_guard

REQUEST_ID = re.compile(r"req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
UNPARSABLE = {
    "raw non-ASCII byte in the request line": b"GET /consumers/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "negative Content-Length": (
        b"PUT /consumers/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
    ),
    "control character in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Roles: a\x01b\r\n\r\n",
    # waitress's 501 (a transfer-coding it does not implement) was answered 500 guard.internal.
    "transfer-coding other than chunked": (
        b"PUT /consumers/x HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ),
}


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with live_guard(tmp_path_factory.mktemp("parse-errors")) as live:
        yield live


@pytest.mark.parametrize("raw", UNPARSABLE.values(), ids=UNPARSABLE.keys())
def test_an_unparsable_request_gets_the_contract_json_error(server, raw: bytes) -> None:
    status, headers, body = _exchange(server.port, raw)
    assert 400 <= status < 500
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    request_id = headers["x-openstack-request-id"]
    assert REQUEST_ID.fullmatch(request_id)
    (error,) = json.loads(body)["errors"]
    assert error["status"] == status and error["request_id"] == request_id
    assert error["code"] in {"guard.invalid_input", "guard.too_large"}
    # The connection is closed afterwards, as waitress closes it.
    assert headers.get("connection") == "close"


def test_the_server_answers_normally_afterwards(server) -> None:
    status, _, body = _exchange(
        server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and "versions" in json.loads(body)
