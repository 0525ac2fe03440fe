"""Requests gunicorn cannot parse, sent as raw bytes to a real gunicorn serving guard.

gunicorn answers them itself, before any WSGI code runs; its worker wrote an
HTML page quoting the request back (a raw consumer uuid of the path
included), without a request id. With ``-c python:guard.gunicorn_conf`` (and
under ``guard serve --workers``) the answer is the contract's JSON error.
"""

from __future__ import annotations

import json
import re
import socket
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functional.test_production import (
    launch_on_sqlite,
    stop,
    wait_for,
)

REQUEST_ID = re.compile(r"req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
RAW_ID = "7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1a01"
SECRET = "s3cr3t-t0ken-value"
ERROR_KEYS = {"status", "title", "detail", "code", "request_id"}

#: name -> (raw request, status, code, a word of the detail); each quotes RAW_ID or SECRET.
UNPARSABLE = {
    "junk after the HTTP version": (
        f"GET /consumers/{RAW_ID} HTTP/1.1 junk\r\n\r\n".encode(),
        400, "guard.invalid_input", "request line",
    ),
    "control byte in the method": (
        f"G\x01T /consumers/{RAW_ID} HTTP/1.1\r\n\r\n".encode(),
        400, "guard.invalid_input", "request line",
    ),
    "header without a colon": (
        f"GET / HTTP/1.1\r\nX-Auth-Token {SECRET} {RAW_ID}\r\n\r\n".encode(),
        400, "guard.invalid_input", "header",
    ),
    "header block too large": (
        f"GET / HTTP/1.1\r\nX-Project-Id: {RAW_ID}{'a' * 9000}\r\n\r\n".encode(),
        400, "guard.invalid_input", "too many or too large",
    ),
    "request line too long": (
        f"GET /consumers/{RAW_ID}/{'a' * 5000} HTTP/1.1\r\n\r\n".encode(),
        400, "guard.invalid_input", "too long",
    ),
    "unknown transfer coding": (
        f"PUT /consumers/{RAW_ID} HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".encode(),
        400, "guard.invalid_input", "header",
    ),
}  # fmt: skip


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read one answer: (status, lowercased headers, body).

    Reads until the server closes or the body its Content-Length announces
    is in (a request that parsed may leave the connection open).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, found, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if found and length and len(body) >= int(length.group(1)):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_contract_error(status: int, headers: dict[str, str], body: bytes) -> dict:
    """The contract's JSON error of ``status``, its request id in header and body; the error."""
    assert headers["content-type"] == "application/json", body[:300]
    assert int(headers["content-length"]) == len(body)
    assert headers.get("connection") == "close"
    request_id = headers["x-openstack-request-id"]
    assert REQUEST_ID.fullmatch(request_id)
    document = json.loads(body)
    assert list(document) == ["errors"]
    (error,) = document["errors"]
    assert set(error) == ERROR_KEYS
    assert error["status"] == status and error["request_id"] == request_id
    return error


def start(tmp_path: Path, launcher: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    """A guard on a migrated SQLite file under ``launcher``, serving; (process, log, port)."""
    process, log_file, port = launch_on_sqlite(tmp_path, launcher, "parse-errors-key")

    def serving() -> bool:
        assert process.poll() is None, log_file.read_text(errors="replace")[-3000:]
        try:
            return exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 200
        except OSError:
            return False

    try:
        wait_for(serving, timeout=60)
    except BaseException:  # never serving (or died): stopped, not left running on the port
        stop(process)
        raise
    return process, log_file, port


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    process, log_file, port = start(tmp_path_factory.mktemp("gunicorn-parse"), "gunicorn")
    try:
        yield port, log_file
    finally:
        stop(process)


@pytest.mark.parametrize("case", UNPARSABLE.values(), ids=UNPARSABLE.keys())
def test_an_unparsable_request_gets_the_contract_json_error(gunicorn, case) -> None:
    port, log_file = gunicorn
    raw, status, code, word = case
    answer_status, headers, body = exchange(port, raw)
    assert answer_status == status, body[:300]
    error = assert_contract_error(status, headers, body)
    assert error["code"] == code
    assert word in error["detail"]
    # Nothing of the request comes back, nor goes to the log.
    assert RAW_ID.encode() not in body and SECRET.encode() not in body
    log = log_file.read_text(errors="replace")
    assert RAW_ID not in log and SECRET not in log
    assert f"{status} {code} ({error['request_id']})" in log


def test_a_chunked_body_that_does_not_parse_is_invalid_input(gunicorn) -> None:
    """gunicorn raises it from the body's read(), inside guard: it was a 500 guard.internal."""
    port, _ = gunicorn
    raw = (
        f"PUT /consumers/{RAW_ID} HTTP/1.1\r\nX-Identity-Status: Confirmed\r\n"
        "X-User-Id: u1\r\nX-Project-Id: p1\r\nX-Roles: member,reader\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
    ).encode()
    status, headers, body = exchange(port, raw)
    assert status == 400, body[:300]
    assert headers["content-type"] == "application/json"
    (error,) = json.loads(body)["errors"]
    assert error["code"] == "guard.invalid_input"
    assert error["request_id"] == headers["x-openstack-request-id"]


def test_the_server_answers_normally_afterwards(gunicorn) -> None:
    port, _ = gunicorn
    status, _, body = exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 200 and "versions" in json.loads(body)


# Request lines made of printable junk around a raw id: whatever gunicorn
# makes of them, a refusal is the contract's JSON and never quotes the id.
_JUNK = st.text(
    string.ascii_letters + string.digits + string.punctuation + " \t\x01\x7f", max_size=40
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=_JUNK, after=_JUNK)
def test_a_refusal_never_quotes_the_request(gunicorn, before: str, after: str) -> None:
    port, _ = gunicorn
    raw = f"{before}/consumers/{RAW_ID}{after}\r\nX: y\r\n\r\n".encode("latin-1")
    status, headers, body = exchange(port, raw)
    assert RAW_ID.encode() not in body
    if status >= 400:
        error = assert_contract_error(status, headers, body)
        assert error["code"] in {"guard.invalid_input", "guard.not_found", "guard.unauthorized",
                                 "guard.method_not_allowed"}  # fmt: skip


def test_guard_serve_workers_answers_in_json_too(tmp_path: Path) -> None:
    process, log_file, port = start(tmp_path, "guard serve")
    try:
        raw, status, code, _ = UNPARSABLE["header without a colon"]
        answer_status, headers, body = exchange(port, raw)
        assert answer_status == status, body[:300]
        assert assert_contract_error(status, headers, body)["code"] == code
    finally:
        stop(process)
    assert process.returncode == 0, log_file.read_text(errors="replace")[-3000:]
