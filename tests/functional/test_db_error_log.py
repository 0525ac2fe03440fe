"""A database fault is logged by its kind only, not with the driver's text.

``guard.db.api`` logs "database error OperationalError (OperationalError,
code -)" and answers 503; it logged inside the ``except`` block, and
oslo.log's formatter appends the exception being handled to every WARNING
line: the driver's first line came along (``connection to server at
"127.0.0.1", port 5432 failed``: the server's host and port, on an
authentication failure the database user). A real ``guard serve`` on a
throwaway PostgreSQL that is stopped under it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from guard.testing import Persona
from guard.tools.pgserver import PostgresServer, PostgresUnavailable
from tests.functional.processes import guard_serve, serving_url, stop


def test_a_lost_database_is_logged_without_the_drivers_text(tmp_path: Path) -> None:
    try:
        server = PostgresServer()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        database = server.create_database()
        process = guard_serve(tmp_path, "--database", database, "--pipeline", "trusted",
                              "--port", "0")  # fmt: skip
        url = serving_url(process)
        server.stop()
        reader = Persona("reader", "p1", ("reader",))
        request = urllib.request.Request(f"{url}/consumers", headers=reader.headers())
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=60)
        assert answered.value.code == 503
        log = stop(process)
    finally:
        server.close()
    lines = [line for line in log.splitlines() if "database error" in line]
    assert lines, log[-2000:]
    for line in lines:
        assert line.endswith("database error OperationalError (OperationalError, code -)"), line
    assert f"port {server.port}" not in log and "connection to server" not in log
