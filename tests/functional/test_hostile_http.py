"""A real ``guard serve`` under hostile requests: memory stays bounded.

300 anonymous requests, each with a unique 150 KB path, used to grow the
server by 85 MiB (a fingerprint cache keyed by the raw path); redaction now
caches only id-sized values, and keeps long URLs out of the standard
library's urlsplit cache (which waitress fills with every request URI).
Measured on the server's RSS from /proc, after a short warm-up (imports and
first allocations of a request's path).
"""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

from tests.functional.live_server import LiveGuard, live_guard

PATH_BYTES = 150 * 1024
REQUESTS = 300
WARM_UP = 10
MAX_GROWTH = 25 * 1024 * 1024


def _unique_path(number: int) -> str:
    # Unique per request; hex-free letters so a whole segment is one unknown word.
    prefix = f"/consumers/{number:08d}-"
    return (
        prefix
        + os.urandom(PATH_BYTES // 2)
        .hex()
        .translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv"))[
            : PATH_BYTES - len(prefix)
        ]
    )


def _send(server: LiveGuard, connection: http.client.HTTPConnection, number: int) -> None:
    connection.request("GET", _unique_path(number))
    response = connection.getresponse()
    body = response.read()
    assert response.status == 401
    assert json.loads(body)["errors"][0]["code"] == "guard.unauthorized"


def test_unique_long_paths_do_not_grow_the_server(tmp_path: Path) -> None:
    with live_guard(tmp_path) as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            for number in range(WARM_UP):
                _send(server, connection, number)
            before = server.rss_bytes()
            for number in range(WARM_UP, WARM_UP + REQUESTS):
                _send(server, connection, number)
            after = server.rss_bytes()
        finally:
            connection.close()
    growth = after - before
    assert growth < MAX_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB"
    access = [line for line in server.stderr().splitlines() if " guard.access " in line]
    assert len(access) == WARM_UP + REQUESTS
    assert max(len(line) for line in access) < 300  # a long segment is one fingerprint
