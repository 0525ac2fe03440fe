"""``Expect: 100-continue`` on a request ``guard serve`` refuses from its headers.

A client that sends ``Expect: 100-continue`` waits for the server's go-ahead
before its body. waitress said ``100 Continue`` even to a request whose
headers it had refused: a body announced over its bound was then read (up to
that bound, a mebibyte at least) before the 413, and after ``Content-Length:
-1`` it waited for more headers and never answered. The refusal is the final
answer at once, in the contract's JSON; a request it accepts still gets its
``100 Continue``. A real ``guard serve``, raw sockets.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

from tests.functional.processes import guard, serving_url, stop

READ_TIMEOUT = 20
PATH = b"/consumers/0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77"
IDENTITY = (
    b"X-Identity-Status: Confirmed\r\nX-User-Id: u1\r\nX-Project-Id: p1\r\n"
    b"X-Roles: member,reader\r\n"
)


def _head(length: bytes) -> bytes:
    return (
        b"PUT " + PATH + b" HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\n"
        + IDENTITY + b"Expect: 100-continue\r\nContent-Length: " + length + b"\r\n\r\n"
    )  # fmt: skip


def _read_response(sock: socket.socket, data: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One response from ``sock`` (after ``data`` already read): status line, headers, body."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, _, headers = head.partition(b"\r\n")
    length = 0
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside the body"
        rest += chunk
    return status, headers, rest[:length]


def _contract_error(status_line: bytes, body: bytes, status: int, code: str) -> None:
    assert status_line.split()[1] == str(status).encode(), status_line
    error = json.loads(body)["errors"][0]
    assert (error["status"], error["code"]) == (status, code)
    assert error["request_id"].startswith("req-")


def test_expect_continue_gets_the_refusal_not_a_go_ahead(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    process = guard(tmp_path, "serve", "--pipeline", "trusted", "--database", database,
                    "--port", "0")  # fmt: skip
    url = urlsplit(serving_url(process))
    address = (url.hostname or "127.0.0.1", url.port or 0)
    try:
        # A body announced far over the bound: 413 at once, nothing of it read.
        with socket.create_connection(address, timeout=READ_TIMEOUT) as sock:
            sock.sendall(_head(b"%d" % (500 << 20)))
            status, _, body = _read_response(sock)
            _contract_error(status, body, 413, "guard.too_large")
        # A length that is no length: 400 at once, not a wait for more headers.
        with socket.create_connection(address, timeout=READ_TIMEOUT) as sock:
            sock.sendall(_head(b"-1"))
            status, _, body = _read_response(sock)
            _contract_error(status, body, 400, "guard.invalid_input")
        # A request waitress accepts still gets its go-ahead, then guard's answer.
        with socket.create_connection(address, timeout=READ_TIMEOUT) as sock:
            sock.sendall(_head(b"2"))
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk
                data += chunk
            go_ahead, _, rest = data.partition(b"\r\n\r\n")
            assert go_ahead == b"HTTP/1.1 100 Continue"
            sock.sendall(b"{}")
            status, _, body = _read_response(sock, rest)
            _contract_error(status, body, 400, "guard.invalid_input")  # its keys are missing
    finally:
        stop(process)
