"""A pipeline that names no guard.conf reads the one every guard command reads.

``paste.deploy.loadapp("config:api-paste.ini", name="trusted")`` without
``global_conf={"config_file": ...}`` (as a service loads its pipeline) read
no configuration at all: the ``[oslo_policy] policy_file`` and ``[database]
connection`` of ``~/.guard/guard.conf`` or ``/etc/guard/guard.conf`` were
ignored, so the default rules applied instead of the operator's, and an
empty ``./var/guard.sqlite`` was made in the server's working directory and
answered every request 503. Now oslo.config's default search finds the
file, as for ``guard serve`` and ``guard.wsgi``; with no database configured
anywhere the pipeline refuses to load. Real ``loadapp`` in its own process
(``HOME`` of its own), a real SQLite file, real requests through WebTest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guard.db import migration

ROOT = Path(__file__).resolve().parents[2]
LOAD = """
import sys, webtest
from paste.deploy import loadapp
app = webtest.TestApp(loadapp("config:" + sys.argv[1], name="trusted"))
reader = {"X-Identity-Status": "Confirmed", "X-User-Id": "u1", "X-Project-Id": "p1",
          "X-Roles": "reader"}
print(app.get("/consumers", headers=reader, expect_errors=True).status_int)
"""


def _load(home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOAD, str(ROOT / "etc/guard/api-paste.ini")],
        capture_output=True, text=True, timeout=120, cwd=cwd,
        env={**os.environ, "HOME": str(home)},
    )  # fmt: skip


def test_the_default_search_finds_the_operators_guard_conf(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    (home / ".guard").mkdir(parents=True)
    cwd.mkdir()
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    migration.upgrade(database)
    (home / ".guard" / "admins-only.yaml").write_text('"guard:consumers:list": "rule:admin"\n')
    (home / ".guard" / "guard.conf").write_text(
        f"[database]\nconnection = {database}\n[oslo_policy]\npolicy_file = admins-only.yaml\n"
    )
    result = _load(home, cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["403"]  # the operator's rule, not the default (200)
    assert list(cwd.iterdir()) == []  # no ./var/guard.sqlite


def test_no_database_configured_anywhere_refuses_to_load(tmp_path: Path) -> None:
    result = _load(tmp_path, tmp_path)
    assert result.returncode == 1
    assert "PipelineError: no database configured: set [database] connection" in result.stderr
    assert list(tmp_path.iterdir()) == []
