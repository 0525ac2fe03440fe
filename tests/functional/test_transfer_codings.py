"""A body sent with a transfer coding other than chunked is refused the same under both servers.

``Transfer-Encoding: gzip, chunked``: waitress refuses it (answered 400 by
guard serve); gunicorn undid "chunked", handed the still "gzip" body on, and
guard read it as plain JSON and wrote it, where a proxy honouring the coding
reads other bytes. Real gunicorn, raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.functional.test_gunicorn_parse_errors import assert_contract_error, exchange, start
from tests.functional.test_production import stop

CONSUMER = "7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1c99"
IDENTITY = (
    "X-Identity-Status: Confirmed\r\nX-User-Id: u1\r\nX-Project-Id: p1\r\n"
    "X-Roles: admin,member,reader\r\n"
)


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, _, port = start(tmp_path_factory.mktemp("transfer-codings"), "gunicorn")
    try:
        yield port
    finally:
        stop(process)


def _put(codings: str) -> bytes:
    body = json.dumps({"project_id": "p1", "user_id": "u1", "consumer_generation": None})
    chunk = f"{len(body):x}\r\n{body}\r\n0\r\n\r\n"
    return (
        f"PUT /consumers/{CONSUMER} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{IDENTITY}"
        f"Content-Type: application/json\r\nTransfer-Encoding: {codings}\r\n\r\n{chunk}"
    ).encode()


def test_gzip_then_chunked_is_refused_and_changes_nothing(gunicorn_port: int) -> None:
    status, headers, body = exchange(gunicorn_port, _put("gzip, chunked"))
    assert status == 400, body
    error = assert_contract_error(status, headers, body)
    assert error["code"] == "guard.invalid_input" and "Transfer-Encoding" in error["detail"]
    read = f"GET /consumers/{CONSUMER} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{IDENTITY}\r\n"
    assert exchange(gunicorn_port, read.encode())[0] == 404  # nothing was written


def test_chunked_alone_is_read(gunicorn_port: int) -> None:
    status, _, body = exchange(gunicorn_port, _put("chunked"))
    assert status == 201, body
