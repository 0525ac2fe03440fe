"""``guard serve`` does not take in a huge body before it answers.

waitress reads a request's whole body before the application runs (past
512 KB into a temporary file), up to its default limit of 1 GiB: a client
that never authenticated made ``guard serve`` take in a gigabyte per request
before answering 401. Now waitress stops at sixteen times guard's body limit
(at least 1 MiB) and answers the contract's 413 as soon as the headers
announce more; a body over guard's limit but under that bound still gets the
contract's order of checks (401 first). A real ``guard serve``, raw sockets.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

from tests.functional.processes import guard, serving_url, stop

READ_TIMEOUT = 20


def _answer(address: tuple[str, int], head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send ``head`` (and ``body``), read one answer: its status and JSON body."""
    with socket.create_connection(address, timeout=READ_TIMEOUT) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    header, _, payload = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(payload)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def _head(length: int) -> bytes:
    return (
        b"PUT /consumers/0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77 HTTP/1.1\r\nHost: guard\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
    )


def test_a_huge_body_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    process = guard(tmp_path, "serve", "--pipeline", "trusted", "--database", database,
                    "--port", "0")  # fmt: skip
    url = urlsplit(serving_url(process))
    address = (url.hostname or "127.0.0.1", url.port or 0)
    try:
        # Only the headers: the answer must come without the announced 500 MiB.
        status, document = _answer(address, _head(500 << 20))
        assert status == 413
        error = document["errors"][0]
        assert error["code"] == "guard.too_large" and error["request_id"].startswith("req-")
        # Over guard's limit, under waitress's bound: the contract's order, 401 first.
        status, document = _answer(address, _head(65537), b"x" * 65537)
        assert (status, document["errors"][0]["code"]) == (401, "guard.unauthorized")
    finally:
        stop(process)
