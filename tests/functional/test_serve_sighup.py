"""SIGHUP, an operator's "reload", neither stops ``guard serve`` nor loses decisions.

``systemctl reload`` and logrotate's ``postrotate`` send SIGHUP, as to any
OpenStack service. Python's default ended the process at once: the service
was gone and its queued decision-log lines with it. A real ``guard serve``,
a real signal.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from guard.api.environ import identity_headers
from guard.testing import http
from tests.functional.live_server import live_guard, wait_for
from tests.functional.test_decision_log import audit_lines

READS = 20


def test_sighup_writes_the_queued_decisions_and_keeps_serving(tmp_path: Path) -> None:
    reader = identity_headers("hup-user", "hup-project", ["reader"])
    with live_guard(tmp_path) as server:
        for _ in range(READS):
            assert http("GET", f"{server.url}/consumers/{uuid.uuid4()}", reader)[0] == 404
        server.process.send_signal(signal.SIGHUP)

        def shows() -> int:
            lines = audit_lines(server.stderr())
            return sum(line["action"] == "guard:consumers:show" for line in lines)

        # Written at once (the writer alone wakes every 0.1 s and would write
        # them too: what is checked first is that the process is still there).
        time.sleep(0.5)
        assert server.process.poll() is None, server.stderr()[-2000:]
        assert wait_for(lambda: shows() == READS)
        assert http("GET", f"{server.url}/consumers/{uuid.uuid4()}", reader)[0] == 404
        assert "SIGHUP: guard serve keeps serving" in server.stderr()
        assert server.stop(signal.SIGTERM) == 0
