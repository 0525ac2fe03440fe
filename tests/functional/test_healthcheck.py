"""The healthcheck as a load balancer and an operator use it, on real servers.

oslo.middleware's conventions: GET and HEAD, a drain file
(``[healthcheck] disable_by_file_path``) that answers 503, details for
administrators only; and a 503 that says ``guard db upgrade`` when the
database schema is not at its head (gunicorn workers never migrate).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from guard.testing import Persona
from tests.fixtures.pgcluster import free_port
from tests.functional.processes import guard, serving_url, stop

GUNICORN = Path(sys.executable).with_name("gunicorn")
ADMIN = Persona("health-admin", "ops", ("admin", "member", "reader")).headers()


def call(base: str, method: str = "GET", headers: dict[str, str] | None = None):
    """(status, headers, parsed body or raw bytes) of one request to /healthcheck."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, "/healthcheck", headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        body = json.loads(raw) if raw else raw
        return response.status, dict(response.getheaders()), body
    finally:
        conn.close()


def wait_for_status(base: str, status: int, timeout: float = 60) -> tuple:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = call(base)
            if answer[0] == status:
                return answer
        except OSError:
            answer = None
        if time.monotonic() > deadline:
            pytest.fail(f"/healthcheck never answered {status}: {answer}")
        time.sleep(0.2)


def test_gunicorn_on_an_unmigrated_database_is_unhealthy(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    config = tmp_path / "guard.conf"
    config.write_text(f"[database]\nconnection = {database}\n[guard]\npipeline = trusted\n")
    port = free_port()
    env = {**os.environ, "GUARD_CONFIG_FILE": str(config), "HOME": str(tmp_path)}
    log_file = tmp_path / "gunicorn.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "python:guard.gunicorn_conf", "--workers", "1",
             "--bind", f"127.0.0.1:{port}", "guard.wsgi:application"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for who in ({}, ADMIN):
            status, headers, body = wait_for_status(base, 503)
            status, headers, body = call(base, headers=who)
            assert status == 503
            (error,) = body["errors"]
            assert error["code"] == "guard.unavailable"
            assert "guard db upgrade" in error["detail"]
            assert error["request_id"] == headers["X-Openstack-Request-Id"]
        upgrade = subprocess.run(
            [sys.executable, "-m", "guard", "db", "upgrade", "--database", database],
            capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert upgrade.returncode == 0, upgrade.stderr
        status, _, body = wait_for_status(base, 200)
        assert body == {"status": "ok"}
        status, _, body = call(base, headers=ADMIN)
        assert status == 200 and body["schema"] and body["database"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert "Traceback" not in log_file.read_text()


@pytest.fixture
def served_with_drain_file(tmp_path: Path):
    drain = tmp_path / "drain"
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'guard.sqlite'}\n"
        f"[guard]\npipeline = trusted\n[api]\nbind_port = {free_port()}\n"
        f"[healthcheck]\ndisable_by_file_path = {drain}\n"
    )
    process = guard(tmp_path, "serve", "--config-file", str(config))
    try:
        yield serving_url(process), drain
    finally:
        if process.poll() is None:
            stop(process)


def test_head_and_the_drain_file(served_with_drain_file) -> None:
    base, drain = served_with_drain_file
    status, headers, body = call(base, "HEAD")
    assert status == 200 and body == b""
    assert headers["X-Openstack-Request-Id"].startswith("req-")
    assert call(base)[2] == {"status": "ok"}  # anonymous: no details

    drain.touch()  # the operator takes the host out of the load balancer
    for method in ("GET", "HEAD"):
        status, headers, body = call(base, method)
        assert status == 503
    status, headers, body = call(base, "GET", ADMIN)
    (error,) = body["errors"]
    assert error["code"] == "guard.unavailable" and "draining" in error["detail"]
    assert str(drain) not in json.dumps(body)  # no file path in a body

    drain.unlink()
    status, _, body = call(base, "GET", ADMIN)
    assert status == 200
    assert set(body) == {"status", "database", "schema", "policy", "audit"}
    assert call(base, "POST")[0] == 405


def test_a_probe_writes_one_access_line_and_nothing_else(tmp_path: Path) -> None:
    """A load balancer probes every few seconds: its log is one access line
    a probe, not the schema check's alembic chatter."""
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'guard.sqlite'}\n"
        f"[guard]\npipeline = trusted\n[api]\nbind_port = {free_port()}\n"
    )
    process = guard(tmp_path, "serve", "--config-file", str(config))
    try:
        base = serving_url(process)
        probes = [call(base, method) for method in ("GET", "HEAD") * 2]
    finally:
        process_log = stop(process)
    for status, headers, _ in probes:
        assert status == 200
        lines = [
            line for line in process_log.splitlines() if headers["X-Openstack-Request-Id"] in line
        ]
        assert len(lines) == 1 and "guard.access" in lines[0], lines
