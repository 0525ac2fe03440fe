"""guard under a real uWSGI (pyuwsgi, the test extras' build) on ``guard.wsgi:application``.

uWSGI reads ``application`` from the module's dictionary, so the PEP 562
attribute of ``guard.wsgi`` was never found ("unable to load app 0 ...
callable not found") and every request got uWSGI's plain-text 500. uWSGI
logs raw paths unless ``disable-logging``, and older releases run an
application's Python threads only with ``enable-threads`` (guard's decision
log is written by one): guard refuses to load without them, saying which.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from guard.api.environ import identity_headers
from tests.functional.test_decision_log import audit_lines
from tests.functional.test_production import free_port, migrate, wait_for

UWSGI = Path(sys.executable).with_name("uwsgi")
MEMBER = identity_headers("uwsgi-user", "uwsgi-project", ["member", "reader"])
#: What the documentation's command line gives uWSGI (guard.wsgi's docstring).
DOCUMENTED = ("--master", "--processes", "2", "--enable-threads", "--need-app",
              "--disable-logging",
              "--hook-master-start", "unix_signal:15 gracefully_kill_them_all")  # fmt: skip
RUN_TIMEOUT = 60


@pytest.fixture
def uwsgi_binary() -> Path:
    if not UWSGI.exists():
        if os.environ.get("CI"):
            pytest.fail(f"uWSGI is required in CI (the test extras install pyuwsgi): {UWSGI}")
        pytest.skip("uWSGI is not installed (pip install pyuwsgi)")
    return UWSGI


def configured(tmp_path: Path) -> Path:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    migrate(database)
    config_file = tmp_path / "guard.conf"
    config_file.write_text(
        f"[database]\nconnection = {database}\n[guard]\nfingerprint_key = uwsgi-key\n"
    )
    return config_file


def start(uwsgi: Path, tmp_path: Path, port: int, *options: str):
    log_file = tmp_path / "uwsgi.log"
    env = {**os.environ, "GUARD_CONFIG_FILE": str(configured(tmp_path)),
           "GUARD_PIPELINE": "trusted"}  # fmt: skip
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(uwsgi), "--module", "guard.wsgi:application",
             "--http-socket", f"127.0.0.1:{port}", *options],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, log_file


def call(port: int, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = dict(MEMBER)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as systemd stops a unit: a graceful shutdown with the documented hook.

    (uWSGI 2.0's own SIGTERM is a brutal reload, its SIGINT and SIGQUIT kill
    at once: workers die in the middle of whatever they were doing.)
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_guard_serves_under_uwsgi_and_its_decision_log_is_written(
    uwsgi_binary: Path, tmp_path: Path
) -> None:
    port = free_port()
    process, log_file = start(uwsgi_binary, tmp_path, port, *DOCUMENTED)
    try:
        wait_for(lambda: process.poll() is not None or call(port, "GET", "/")[0] == 200, 60)
        assert process.poll() is None, log_file.read_text(errors="replace")[-3000:]
        consumer = str(uuid.uuid4())
        body = {"project_id": "uwsgi-project", "user_id": "uwsgi-user",
                "consumer_generation": None}  # fmt: skip
        assert call(port, "PUT", f"/consumers/{consumer}", body)[0] == 201
        status, answer = call(port, "GET", f"/consumers/{consumer}")
        assert status == 200 and json.loads(answer)["uuid"] == consumer

        def decisions() -> set[str]:
            lines = audit_lines(log_file.read_text(errors="replace"))
            return {line["action"] for line in lines}

        # Written by the decision log's thread while the worker sits idle.
        wait_for(lambda: {"guard:consumers:create", "guard:consumers:show"} <= decisions(), 30)
        log = log_file.read_text(errors="replace")
        assert consumer not in log  # uWSGI's own request log is off, guard's is redacted
        assert "GET /consumers/<id:" in log
    finally:
        stop(process)


def test_uwsgi_logging_requests_does_not_start(uwsgi_binary: Path, tmp_path: Path) -> None:
    options = [option for option in DOCUMENTED if option != "--disable-logging"]
    process, log_file = start(uwsgi_binary, tmp_path, free_port(), *options)
    try:
        process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail("uWSGI went on serving: " + log_file.read_text(errors="replace")[-3000:])
    assert process.returncode != 0
    assert "add --disable-logging" in log_file.read_text(errors="replace")


def test_uwsgi_logging_4xx_in_spite_of_disable_logging_does_not_start(
    uwsgi_binary: Path, tmp_path: Path
) -> None:
    """--log-4xx logs every 404 of GET /consumers/{uuid}, raw uuid and all, though
    --disable-logging is on (uWSGI 2.0.30): guard refused the uuid-free start only."""
    process, log_file = start(uwsgi_binary, tmp_path, free_port(), *DOCUMENTED, "--log-4xx")
    try:
        process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail("uWSGI went on serving: " + log_file.read_text(errors="replace")[-3000:])
    assert process.returncode != 0
    assert "remove log-4xx" in log_file.read_text(errors="replace")


def test_without_enable_threads_decisions_are_written_or_the_start_refused(
    uwsgi_binary: Path, tmp_path: Path
) -> None:
    """uWSGI runs Python threads anyway (2.0.30 does) and the log is written, or no start."""
    port = free_port()
    options = [option for option in DOCUMENTED if option != "--enable-threads"]
    process, log_file = start(uwsgi_binary, tmp_path, port, *options)
    try:
        wait_for(lambda: process.poll() is not None or call(port, "GET", "/")[0] == 200, 60)
        if process.poll() is not None:
            assert "add --enable-threads" in log_file.read_text(errors="replace")
            return
        assert call(port, "GET", f"/consumers/{uuid.uuid4()}")[0] == 404
        lines = lambda: audit_lines(log_file.read_text(errors="replace"))  # noqa: E731
        wait_for(lambda: any(line["action"] == "guard:consumers:show" for line in lines()), 30)
    finally:
        stop(process)


def test_a_stop_writes_every_queued_decision(uwsgi_binary: Path, tmp_path: Path) -> None:
    """A stop right after a burst: each worker writes what it had queued, and exits.

    uWSGI's ``atexit`` hook is guard.wsgi's ``close``. Without it a graceful
    stop lost 43 to 92 of 200 decisions, and each worker waited out uWSGI's
    60 s mercy for the decision log's thread before it was killed.
    """
    reads = 200
    port = free_port()
    process, log_file = start(uwsgi_binary, tmp_path, port, *DOCUMENTED)
    try:
        wait_for(lambda: process.poll() is not None or call(port, "GET", "/")[0] == 200, 60)
        assert process.poll() is None, log_file.read_text(errors="replace")[-3000:]
        for _ in range(reads):
            assert call(port, "GET", f"/consumers/{uuid.uuid4()}")[0] == 404
    finally:
        stop(process)
    log = log_file.read_text(errors="replace")
    lines = audit_lines(log)
    assert sum(line["action"] == "guard:consumers:show" for line in lines) == reads
    assert process.returncode == 0, log[-3000:]
    assert "graceful shutdown" in log
