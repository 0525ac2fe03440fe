"""A gunicorn worker sent SIGHUP or SIGUSR2 itself writes its queued decisions and serves on.

gunicorn's master handles both; a worker left them to Python's default and
died at once, with the decision-log lines it had queued (``pkill -HUP``,
``systemctl kill -s HUP`` and logrotate ``postrotate`` lines signal every
process). A real gunicorn (``-c python:guard.gunicorn_conf``, one worker, a
SQLite file), a real signal to the worker's pid.
"""

from __future__ import annotations

import http.client
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from guard.api.environ import identity_headers
from tests.functional.test_decision_log import audit_lines
from tests.functional.test_production import (
    launch_on_sqlite,
    stop,
    wait_for,
)

READS = 20
READER = identity_headers("worker-hup-user", "worker-hup-project", ["reader"])


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid``, read from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def get(port: int, path: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("launcher", ["gunicorn", "guard serve"])
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR2], ids=lambda s: s.name)
def test_the_worker_writes_its_decisions_and_keeps_serving(
    tmp_path: Path, signum: signal.Signals, launcher: str
) -> None:
    process, log_file, port = launch_on_sqlite(tmp_path, launcher, "worker-hup-key")
    try:
        wait_for(lambda: get(port, "/", {}) == 200, timeout=60)
        (worker,) = children(process.pid)
        for _ in range(READS):
            assert get(port, f"/consumers/{uuid.uuid4()}", READER) == 404
        os.kill(worker, signum)

        def shows() -> int:
            lines = audit_lines(log_file.read_text(errors="replace"))
            return sum(line["action"] == "guard:consumers:show" for line in lines)

        wait_for(lambda: shows() == READS, timeout=10)
        time.sleep(1.0)  # the master would have seen a dead worker by now
        assert children(process.pid) == {worker}, log_file.read_text()[-3000:]
        assert get(port, f"/consumers/{uuid.uuid4()}", READER) == 404
        log = log_file.read_text(errors="replace")
        assert f"{signum.name} sent to a gunicorn worker: it keeps serving" in log
        assert f"the master, pid {process.pid}," in log
    finally:
        stop(process)
    assert process.returncode == 0
    assert shows() == READS + 1  # the last one, written as the worker stopped
