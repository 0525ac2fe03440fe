"""A real ``guard serve`` process for tests that are about one (signals, memory, raw HTTP).

Its stderr (the access log, the decision log, any traceback) goes to a file
in the test's directory, read by the test and scanned by the leak detector
(``log_leaks.scan_file``); a pipe would fill and stall the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.pgcluster import free_port
from tests.functional.processes import read_until_serving

STOP_TIMEOUT = 30


@dataclass
class LiveGuard:
    """A running ``guard serve``: its process, address and stderr file."""

    process: subprocess.Popen[str]
    host: str
    port: int
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def rss_bytes(self) -> int:
        """The server's resident set size, from /proc."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and wait for the exit; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            raise


@contextlib.contextmanager
def live_guard(tmp_path: Path, *args: str) -> Iterator[LiveGuard]:
    """``guard serve --pipeline trusted`` on a free loopback port, stopped afterwards."""
    port = free_port()
    stderr_path = tmp_path / "guard-serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "guard",
                "serve",
                "--pipeline",
                "trusted",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database",
                f"sqlite:///{tmp_path / 'guard.sqlite'}",
                *args,
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    server = LiveGuard(process, "127.0.0.1", port, stderr_path)
    try:
        read_until_serving(process)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
        if process.stdout is not None:
            process.stdout.close()


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False
