"""A policy file replaced by what is not a file (a FIFO) never wedges guard.

Opening a FIFO for reading blocks until a writer comes. guard read its policy
file with a plain ``open()``: ``guard serve`` and ``guard policy validate``
hung silently at start, and on a live server the request thread that polled
the file blocked forever while holding the reload lock, so no later edit of
the operator (a stricter rule) was ever applied, and the healthcheck kept an
old error. Real processes, a real FIFO.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from guard.testing import http
from guard.tools import demo
from tests.functional.live_server import live_guard, wait_for
from tests.functional.processes import guard_serve

OWNED = demo.SEEDED[0][0]  # demo-alice's consumer
READER = demo.ALICE.headers()  # member and reader of demo-project-a
ADMIN = demo.ADMIN.headers()
STRICT = '"guard:consumers:show": "rule:admin"\n'
TIMEOUT = 20  # the process must answer long before this; it hung forever


def test_serve_and_validate_refuse_a_fifo_at_start(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    process = guard_serve(tmp_path, "--demo", "--port", "0", "--policy-file", str(fifo))
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 2
    assert "not a regular file" in stderr
    validate = subprocess.run(
        [sys.executable, "-m", "guard", "policy", "validate", str(fifo)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    assert validate.returncode == 1
    assert "not a regular file" in validate.stderr


def test_a_fifo_under_a_live_server_is_held_and_a_later_edit_applies(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("{}\n")
    with live_guard(tmp_path, "--demo", "--policy-file", str(policy_file)) as server:
        show = f"{server.url}/consumers/{OWNED}"

        def policy() -> dict:
            status, _, body = http("GET", f"{server.url}/healthcheck", ADMIN)
            assert status == 200
            return json.loads(body)["policy"]

        assert http("GET", show, READER)[0] == 200
        policy_file.unlink()
        os.mkfifo(policy_file)
        assert wait_for(lambda: "not a regular file" in str(policy()["last_reload_error"]))
        assert http("GET", show, READER)[0] == 200  # the last good rules
        policy_file.unlink()
        policy_file.write_text(STRICT)
        assert wait_for(lambda: http("GET", show, READER)[0] == 404)
        assert policy()["last_reload_error"] is None
