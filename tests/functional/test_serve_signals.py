"""An operator's SIGHUP, SIGUSR1 or SIGUSR2 neither stops ``guard serve`` nor loses decisions.

``systemctl reload`` and logrotate's ``postrotate`` send SIGHUP, as to any
OpenStack service; SIGUSR2 (SIGUSR1 before) asks an OpenStack service for
its Guru Meditation Report, SIGUSR1 asks gunicorn to reopen its logs.
Python's default for each ended the process at once: the service was gone
and its queued decision-log lines with it. A real ``guard serve``,
a real signal.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from guard.api.environ import identity_headers
from guard.testing import http
from tests.functional.live_server import live_guard, wait_for
from tests.functional.test_decision_log import audit_lines

READS = 20


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2])
def test_the_signal_writes_the_queued_decisions_and_serving_goes_on(
    tmp_path: Path, signum: signal.Signals
) -> None:
    reader = identity_headers("hup-user", "hup-project", ["reader"])
    with live_guard(tmp_path) as server:
        for _ in range(READS):
            assert http("GET", f"{server.url}/consumers/{uuid.uuid4()}", reader)[0] == 404
        server.process.send_signal(signum)

        def shows() -> int:
            lines = audit_lines(server.stderr())
            return sum(line["action"] == "guard:consumers:show" for line in lines)

        # Written at once (the writer alone wakes every 0.1 s and would write
        # them too: what is checked first is that the process is still there).
        time.sleep(0.5)
        assert server.process.poll() is None, server.stderr()[-2000:]
        assert wait_for(lambda: shows() == READS)
        assert http("GET", f"{server.url}/consumers/{uuid.uuid4()}", reader)[0] == 404
        assert f"{signum.name}: guard serve keeps serving" in server.stderr()
        assert server.stop(signal.SIGTERM) == 0
