"""``guard`` as the process tests run it: started, awaited until it serves, stopped.

Shared by the tests that are about a real process (start-up, signals, files
changing under a live server, oslo.config's search of ``HOME``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

#: How long a ``guard serve`` may take to print its "guard serving" line.
STARTUP_TIMEOUT = 60


#: How long a guard command that should end may run (a hang fails the test).
RUN_TIMEOUT = 60


def guard(home: Path, *args: str) -> subprocess.Popen[str]:
    """``guard ARGS`` in ``home``, which is also its ``HOME`` (oslo.config searches ``~/``)."""
    return _popen(home, args, {"HOME": str(home)})


def guard_serve(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``guard serve ARGS`` in ``cwd`` (the embedded database is ``./var/guard.sqlite``)."""
    return _popen(cwd, ("serve", *args), {})


def _popen(cwd: Path, args: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "guard", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


def read_until_serving(process: subprocess.Popen[str]) -> list[str]:
    """The stdout lines up to and including the "guard serving" line.

    Returns early, without that line, when the process closes its stdout
    (it stopped); fails the test when neither happens within
    :data:`STARTUP_TIMEOUT`.
    """
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("guard serving "):
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(STARTUP_TIMEOUT):
        process.kill()
        pytest.fail(f"guard serve did not start: {lines}")
    return lines


def serving_url(process: subprocess.Popen[str]) -> str:
    """The base URL the "guard serving" line names; fails the test if it never comes."""
    lines = read_until_serving(process)
    if not lines or not lines[-1].startswith("guard serving "):
        process.kill()
        pytest.fail(f"guard serve did not start: {process.communicate()[1][-2000:]}")
    return lines[-1].split()[2]


def stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C ``process``, wait for it, and return its stderr.

    A process still running 30 s later is killed (never left behind to hold
    its port and files) and the test fails.
    """
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("guard did not stop within 30 s of SIGINT")
    return stderr


def run_guard(
    cwd: Path, *args: str, pass_fds: tuple[int, ...] = (), stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``guard ARGS`` run to its end in ``cwd`` (also its ``HOME``); the test fails if it hangs."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "guard", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            pass_fds=pass_fds,
            stdin=stdin,
            env={**os.environ, "HOME": str(cwd)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"guard {' '.join(args)} hung")
