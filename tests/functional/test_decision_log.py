"""A real ``guard serve``'s decision log: one line per list request, all written on SIGTERM."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

from guard.api.environ import identity_headers
from guard.testing import http
from tests.functional.live_server import live_guard


def audit_lines(stderr: str) -> list[dict[str, object]]:
    """The decision-log lines of ``guard serve``'s stderr, parsed."""
    lines = []
    for line in stderr.splitlines():
        if " guard.audit " in line:
            lines.append(json.loads(line[line.index("{") :]))
    return lines


def test_list_requests_are_one_line_each_and_sigterm_writes_them(tmp_path: Path) -> None:
    reader = identity_headers("auditor-u1", "auditor-p1", ["reader"])
    admin = identity_headers("auditor-admin", "auditor-ops", ["admin", "member", "reader"])
    nobody = identity_headers("auditor-u2", "auditor-p2", [])
    consumer = str(uuid.uuid4())
    with live_guard(tmp_path) as server:
        body = json.dumps(
            {"project_id": "auditor-p1", "user_id": "auditor-u1", "consumer_generation": None}
        ).encode()
        put_headers = {**admin, "Content-Type": "application/json"}
        assert http("PUT", f"{server.url}/consumers/{consumer}", put_headers, body)[0] == 201
        answers = {}
        for name, headers in (("filtered", reader), ("all", admin), ("denied", nobody)):
            status, response_headers, _ = http("GET", f"{server.url}/consumers", headers)
            answers[name] = (status, response_headers["X-Openstack-Request-Id"])
        # At once: the writer wakes every 0.1 s, so without the SIGTERM flush
        # these lines would still be queued.
        status = server.stop(signal.SIGTERM)
    assert status == 0  # waitress takes the SystemExit as its cue for a clean shutdown
    assert [answer[0] for answer in answers.values()] == [200, 200, 403]
    stderr = server.stderr()
    lines = audit_lines(stderr)
    by_request = {}
    for line in lines:
        by_request.setdefault(line["request_id"], []).append(line)
    for outcome, (_, request_id) in answers.items():
        (line,) = by_request[request_id]  # one line per list request
        assert line["action"] == "guard:consumers:list"
        expected = {"filtered": "list filtered", "all": "list all rows", "denied": "list denied"}
        assert str(line["branch"]).startswith(expected[outcome] + ": ")
        assert line["allowed"] is (outcome != "denied")
    assert any(line["action"] == "guard:consumers:create" for line in lines)
    for raw in ("auditor-u1", "auditor-p1", "auditor-admin", consumer):
        assert raw not in stderr


def _list_pids(stderr: str) -> set[str]:
    """The pids of the workers that answered a list (access lines, oslo.log's ``%(process)d``)."""
    return {
        line.split()[2]
        for line in stderr.splitlines()
        if " guard.access " in line and " GET /consumers " in line
    }


def test_gunicorn_workers_write_their_queued_decisions_on_sigterm(tmp_path: Path) -> None:
    """``guard serve --workers 2``: SIGTERM to the master, every worker's queue written."""
    reader = identity_headers("auditor-u1", "auditor-p1", ["reader"])
    with live_guard(tmp_path, "--workers", "2") as server:
        deadline = time.monotonic() + 60
        while True:  # the workers boot after the "guard serving" line
            try:
                if http("GET", f"{server.url}/", {})[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        # On new connections until both workers have answered (their access
        # lines carry their pids): on a busy machine one may take many first.
        while len(_list_pids(server.stderr())) < 2:
            assert time.monotonic() < deadline, "the second worker never answered"
            assert http("GET", f"{server.url}/consumers", reader)[0] == 200
        request_ids = []
        for _ in range(40):
            status, headers, _ = http("GET", f"{server.url}/consumers", reader)
            assert status == 200
            request_ids.append(headers["X-Openstack-Request-Id"])
        # At once: each writer wakes every 0.1 s, so these lines are still queued.
        assert server.stop(signal.SIGTERM) == 0
    written = {str(line["request_id"]) for line in audit_lines(server.stderr())}
    assert set(request_ids) <= written
    workers = {line.split()[2] for line in server.stderr().splitlines() if " guard.audit " in line}
    assert len(workers) == 2, "both workers should have answered (and logged) requests"
