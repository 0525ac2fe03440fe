"""Production mode: gunicorn with 4 workers on PostgreSQL, under load and faults.

The deployment is the documented one (docs/production.md): ``guard db
upgrade``, then ``gunicorn -c python:guard.gunicorn_conf --workers 4
guard.wsgi:application`` with ``GUARD_CONFIG_FILE``. While ``guard load``
drives it with conflicting writers, the test stops and restarts PostgreSQL,
then saves an invalid policy file and later a valid one.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import webtest

from guard import conf as guard_conf
from guard import deploy, wsgi
from guard.testing import Persona

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

GUNICORN = Path(sys.executable).with_name("gunicorn")
LOGGING_CONF = Path(__file__).resolve().parents[2] / "etc" / "guard" / "logging.conf"
# An undefined rule: if guard applied this file, members could delete nothing.
INVALID_POLICY = '"guard:consumers:delete": "rule:admin or rule:nobody_defined_this"\n'
ADMIN_ONLY_DELETE = '"guard:consumers:delete": "rule:admin"\n'
UUID_RE = re.compile(r"(?<!req-)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
HEX_ID_RE = re.compile(r"\b[0-9a-f]{32}\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def headers(project: str, roles: str) -> dict[str, str]:
    return Persona("probe-user", project, tuple(roles.split(","))).headers()


ADMIN = headers("probe-admin-project", "admin,member,reader")


@dataclass
class Deployment:
    base: str
    port: int
    database: str
    policy_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def call(self, method: str, path: str, who: dict[str, str], body: object = None):
        """One request on a fresh connection (so that probes spread over the workers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            sent = dict(who)
            data = None
            if body is not None:
                sent["Content-Type"] = "application/json"
                data = json.dumps(body).encode()
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def health(self) -> tuple[int, dict | None]:
        try:
            return self.call("GET", "/healthcheck", ADMIN)
        except OSError:
            return 0, None


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


def start_gunicorn(tmp_path: Path, config_file: Path, port: int, workers: int):
    log_file = tmp_path / "gunicorn.log"
    env = {**os.environ, "GUARD_CONFIG_FILE": str(config_file), "GUARD_PIPELINE": "trusted"}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "python:guard.gunicorn_conf", "--workers", str(workers),
             "--bind", f"127.0.0.1:{port}", "guard.wsgi:application"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, log_file


def start_guard_serve(tmp_path: Path, config_file: Path, port: int):
    """``guard serve --workers 1``: gunicorn embedded, with guard.gunicorn_conf's settings."""
    log_file = tmp_path / "serve.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "guard", "serve", "--workers", "1", "--port", str(port),
             "--pipeline", "trusted", "--config-file", str(config_file)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, log_file


def launch_on_sqlite(tmp_path: Path, launcher: str, fingerprint_key: str):
    """guard under ``launcher`` ("gunicorn", or "guard serve" with one worker) on a migrated
    SQLite file of ``tmp_path``, not yet waited for; (process, log file, port)."""
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    migrate(database)
    config_file = tmp_path / "guard.conf"
    config_file.write_text(
        f"[database]\nconnection = {database}\n[guard]\nfingerprint_key = {fingerprint_key}\n"
    )
    port = free_port()
    if launcher == "gunicorn":
        process, log_file = start_gunicorn(tmp_path, config_file, port, workers=1)
    else:
        process, log_file = start_guard_serve(tmp_path, config_file, port)
    return process, log_file, port


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM gunicorn's master and wait for it.

    Longer than its ``graceful_timeout`` (30 s), after which the master
    itself kills a worker that has not stopped (and logs "was sent SIGKILL",
    which the tests look for): on a loaded machine a slow but clean stop is
    the master's to judge, not this timer's.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_config(tmp_path: Path, database: str, policy_file: Path) -> Path:
    config_file = tmp_path / "guard.conf"
    config_file.write_text(
        f"[database]\nconnection = {database}\n"
        f"[oslo_policy]\npolicy_file = {policy_file}\n"
        "[guard]\nfingerprint_key = production-test-key\n"
    )
    return config_file


def migrate(database: str) -> None:
    """``guard db upgrade``, once, before any worker starts (as docs/production.md says)."""
    upgrade = subprocess.run(
        [sys.executable, "-m", "guard", "db", "upgrade", "--database", database],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr


@pytest.fixture
def deployment(postgresql_cluster, tmp_path: Path) -> Iterator[Deployment]:
    database = postgresql_cluster.create_database()
    migrate(database)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("# the operator's policy: the defaults for now\n")
    port = free_port()
    process, log_file = start_gunicorn(
        tmp_path, write_config(tmp_path, database, policy_file), port, workers=4
    )
    deployment = Deployment(f"http://127.0.0.1:{port}", port, database, policy_file,
                            log_file, process)  # fmt: skip
    try:
        wait_for(lambda: process.poll() is not None or deployment.health()[0] == 200, 60)
        assert process.poll() is None, log_file.read_text()
        yield deployment
    finally:
        stop(process)


def probe_delete(deployment: Deployment) -> tuple[int, str | None]:
    """A member of a probe project creates a consumer, then tries to delete it."""
    member = headers("probe-project", "member,reader")
    consumer = str(uuid.uuid4())
    body = {"project_id": "probe-project", "user_id": "probe-user", "consumer_generation": None}
    status, _ = deployment.call("PUT", f"/consumers/{consumer}", member, body)
    assert status == 201
    status, document = deployment.call("DELETE", f"/consumers/{consumer}", member)
    return status, (document["errors"][0]["code"] if document else None)


def test_four_workers_ride_out_a_database_restart_and_a_bad_policy_save(
    deployment, postgresql_cluster, tmp_path
):
    marker = tmp_path / "outage"
    _, initial = deployment.health()
    load = subprocess.Popen(
        [sys.executable, "-m", "guard", "load", "--url", deployment.base, "--seconds", "25",
         "--threads", "8", "--shared", "2", "--database", deployment.database,
         "--outage-marker", str(marker), "--outage-grace", "5", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The load has seeded its shared consumers (2 per project): it is running.
        wait_for(lambda: len(deployment.call("GET", "/consumers", ADMIN)[1]["consumers"]) >= 4, 30)
        time.sleep(2)
        # (a) PostgreSQL goes away and comes back; guard is not restarted.
        marker.touch()
        try:
            postgresql_cluster.stop()
            time.sleep(1)
            status, document = deployment.health()
            assert status == 503 and document["errors"][0]["code"] == "guard.unavailable"
            time.sleep(1)
        finally:
            postgresql_cluster.start()
            marker.unlink()
        assert wait_for(lambda: deployment.health()[0] == 200, timeout=10) < 10

        # (b) An invalid policy file is refused whole; the last good one stays in force.
        deployment.policy_file.write_text(INVALID_POLICY)
        time.sleep(3.0)  # applied once quiet for 1 s, within 3 s (docs/api.md)
        status, health = deployment.health()
        assert status == 200
        assert "guard:consumers:delete" in health["policy"]["last_reload_error"]
        assert "nobody_defined_this" in health["policy"]["last_reload_error"]
        assert health["policy"]["revision"] == initial["policy"]["revision"]
        assert [probe_delete(deployment) for _ in range(6)] == [(204, None)] * 6

        # A valid file is in force within 3 s, in whichever worker answers.
        deployment.policy_file.write_text(ADMIN_ONLY_DELETE)
        time.sleep(3.0)
        status, health = deployment.health()
        assert health["policy"]["last_reload_error"] is None
        assert health["policy"]["revision"] != initial["policy"]["revision"]
        assert [probe_delete(deployment) for _ in range(6)] == [(403, "guard.forbidden")] * 6
        assert load.poll() is None, "the load ended before the scenario did: a slow machine?"

        out, err = load.communicate(timeout=90)
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
    report = json.loads(out)
    failed = {i["name"]: i["violations"] for i in report["invariants"] if not i["passed"]}
    assert load.returncode == 0 and not failed, f"{failed}\n{err[-1500:]}"

    verdicts = {i["name"]: i["checked"] for i in report["invariants"]}
    assert min(verdicts.values()) > 0  # every invariant, durability included, was checked
    assert report["conflicts"] > 0  # the writers really did collide
    (outage,) = report["outages"]
    assert outage["unavailable"] > 0  # requests in the outage got 503 guard.unavailable
    assert outage["recovered_after_seconds"] is not None
    assert outage["recovered_after_seconds"] < 5
    member_a = report["by_persona"]["member-a"]
    assert set(member_a["create"]) <= {"201", "503"}  # no create refused by a policy file
    assert {"204", "403"} <= set(member_a["delete"])  # the valid file took over mid-run

    stop(deployment.process)
    log = deployment.log_file.read_text()
    assert log.count("Booting worker with pid") == 4
    assert "Traceback" not in log
    # the access log, redacted, in oslo.log's format ([global-request-id request-id])
    assert re.search(r"INFO guard\.access \[\S+ req-\S+\] PUT /consumers/<id:", log)
    assert not UUID_RE.findall(log) and not HEX_ID_RE.findall(log)  # ids only as fingerprints


def test_an_invalid_policy_file_stops_the_start(postgresql_cluster, tmp_path):
    database = postgresql_cluster.create_database()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(INVALID_POLICY)
    process, log_file = start_gunicorn(
        tmp_path, write_config(tmp_path, database, policy_file), free_port(), workers=1
    )
    try:
        # gunicorn's "a worker failed to boot" status. One worker: with two that
        # fail at the same moment gunicorn may halt twice and exit 1 instead.
        assert process.wait(timeout=60) == 3
    finally:
        stop(process)
    log = log_file.read_text()
    assert "Worker failed to boot" in log
    assert "nobody_defined_this" in log  # the error names the rule


def _serve_one_request(app: wsgi.ForkSafeApplication, pids: list[int], queue) -> None:
    response = webtest.TestApp(app).get("/")
    queue.put((response.status_int, list(pids)))


def test_a_forked_worker_builds_its_own_engine(sqlite_url):
    conf = guard_conf.load([])
    conf.set_override("connection", sqlite_url, group="database")
    builders: list[int] = []

    def build():
        builders.append(os.getpid())
        services = deploy.build_services(conf, migrate=True)
        return deploy.Deployment(services, deploy.build_pipeline(services, "trusted"))

    app = wsgi.ForkSafeApplication(build).prepare()  # built here, as under --preload
    assert webtest.TestApp(app).get("/").status_int == 200
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_serve_one_request, args=(app, builders, queue))
    child.start()
    status, child_builders = queue.get(timeout=30)
    child.join(timeout=30)
    assert status == 200
    assert child_builders[0] == os.getpid() and child_builders[1] == child.pid
    assert builders == [os.getpid()]  # the parent kept its own
    app.close()


RUN_GUNICORN = """
import functools, sys
from guard import conf, wsgi
from guard.cmd import serve
config = conf.load([], config_dirs=sys.argv[3:])
config.set_override("connection", sys.argv[1], group="database")
serve.run_gunicorn(functools.partial(wsgi.build_from, config, pipeline="trusted"),
                   bind=sys.argv[2], workers=2, threads=2)
"""


def test_run_gunicorn_serves_what_the_factory_builds_in_each_worker(sqlite_url, tmp_path):
    migrate(sqlite_url)
    port = free_port()
    log_file = tmp_path / "gunicorn.log"
    conf_dir = tmp_path / "guard.conf.d"
    conf_dir.mkdir()
    (conf_dir / "10-logging.conf").write_text(f"[DEFAULT]\nlog_config_append = {LOGGING_CONF}\n")
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", RUN_GUNICORN, sqlite_url, f"127.0.0.1:{port}", str(conf_dir)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Deployment(f"http://127.0.0.1:{port}", port, sqlite_url, tmp_path, log_file,
                        process)  # fmt: skip
    try:
        wait_for(lambda: process.poll() is not None or server.health()[0] == 200, 60)
        status, document = server.call("GET", "/consumers", headers("p", "reader"))
        assert (status, document) == (200, {"consumers": [], "next_marker": None})
        status, document = server.call("GET", "/consumers", {})
        assert status == 401  # the trusted pipeline, as the factory built it
    finally:
        stop(process)
    log = log_file.read_text()
    assert process.returncode == 0, log[-3000:]
    assert "SIGKILL" not in log  # every worker stopped within the graceful timeout
    assert log.count("Booting worker with pid") == 2
    assert "Using worker: gthread" in log  # guard.gunicorn_conf's settings applied
    assert "INFO guard.access GET /consumers 200" in log
    # etc/guard/logging.conf (log_config_append) sends the decision log as bare JSON lines.
    decisions = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    # Two workers write their own lines: the healthcheck's need not come first.
    assert any({"action": "admin", "allowed": True}.items() <= d.items() for d in decisions)
