"""``guard.wsgi:application`` with no database configured refuses to boot.

A gunicorn (or uWSGI) unit without ``GUARD_CONFIG_FILE`` on a host with no
``/etc/guard/guard.conf``: each worker booted, made an empty
``./var/guard.sqlite`` in the server's working directory (``guard serve``'s
embedded default; the WSGI entry point never migrates) and answered every
request 503. Now the worker fails to boot with a sentence that says what to
set, and gunicorn stops with its "worker failed to boot" status, as for an
invalid policy file. A real gunicorn, one worker, a ``HOME`` of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guard.tools.pgserver import free_port


def test_no_database_configured_stops_the_boot(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "GUARD_PIPELINE": "trusted"}
    for name in ("GUARD_CONFIG_FILE", "GUARD_CONFIG_DIR"):
        env.pop(name, None)
    log_file = tmp_path / "gunicorn.log"
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:guard.gunicorn_conf",
             "--workers", "1", "--bind", f"127.0.0.1:{free_port()}", "guard.wsgi:application"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            status = process.wait(timeout=90)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log_file.read_text()
    assert status == 3, text[-3000:]  # gunicorn's "a worker failed to boot"
    assert "Worker failed to boot" in text
    assert "no database configured: set [database] connection" in text
    assert not (tmp_path / "var").exists()
