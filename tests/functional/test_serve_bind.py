"""``guard serve`` that cannot listen where it is told: one line, exit 1.

A second ``guard serve`` on a port already taken, an address this host
does not have, a host name that does not resolve: waitress's traceback
ended the start (``OSError: [Errno 98] Address already in use``). Real
processes, a real socket holding the port.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.functional.processes import guard


def _serve(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    process = guard(tmp_path, "serve", "--pipeline", "trusted", "--database", database, *args)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def test_a_port_in_use_is_said_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, stdout, stderr = _serve(tmp_path, "--port", str(port))
    assert status == 1, stdout + stderr
    assert f"guard serve: cannot listen on 127.0.0.1:{port}: Address already in use" in stderr
    assert "Traceback" not in stderr and "guard serving" not in stdout


@pytest.mark.parametrize(
    ("host", "reason"),
    [("192.0.2.1", "Cannot assign requested address"), ("no-such-host.invalid", "Invalid host")],
)
def test_an_address_not_here_is_said_in_one_line(tmp_path: Path, host: str, reason: str) -> None:
    status, stdout, stderr = _serve(tmp_path, "--host", host, "--port", "18778")
    assert status == 1, stdout + stderr
    assert f"guard serve: cannot listen on {host}:18778: {reason}" in stderr
    assert "Traceback" not in stderr and "guard serving" not in stdout
