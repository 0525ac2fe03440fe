"""A backup copy in ``policy.d`` never overrides the operator's edit of its original.

oslo.policy loads every non-hidden file of a policy directory in name order,
and a copy sorts after its original: an operator who ran
``cp 50-show.yaml 50-show.yaml.bak`` (or whose emacs kept ``50-show.yaml~``)
and then made show admin-only saw nothing change, the copy's old rule in
force without a word. A real ``guard serve`` edited under its feet.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from guard.tools import demo
from tests.functional.processes import guard_serve, run_guard, serving_url, stop

OPEN = '"guard:consumers:show": "rule:admin or rule:project_reader"\n'
ADMIN_ONLY = '"guard:consumers:show": "rule:admin"\n'
#: Generous: the contract applies an edit within 3 s of the last write.
APPLIED_WITHIN = 20


def _status(base: str, uuid: str) -> int:
    headers = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": "demo-alice",
        "X-Project-Id": "demo-project-a",
        "X-Roles": "member,reader",
    }
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{base}/consumers/{uuid}", headers=headers), timeout=10
        ) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("copy", ["50-show.yaml.bak", "50-show.yaml~"])
def test_an_edit_applies_though_a_backup_copy_sits_beside_it(tmp_path: Path, copy: str) -> None:
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    (policy_d / "50-show.yaml").write_text(OPEN)
    config = tmp_path / "guard.conf"
    config.write_text(f"[oslo_policy]\npolicy_dirs = {policy_d}\n")
    process = guard_serve(tmp_path, "--demo", "--port", "0", "--config-file", str(config))
    try:
        base = serving_url(process)
        consumer = demo.SEEDED[0][0]  # demo-project-a's, alice's to read
        assert _status(base, consumer) == 200
        shutil.copy(policy_d / "50-show.yaml", policy_d / copy)  # the operator's habit
        (policy_d / "50-show.yaml").write_text(ADMIN_ONLY)
        deadline = time.monotonic() + APPLIED_WITHIN
        while _status(base, consumer) != 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(base, consumer) == 404, "the backup's old rule is still in force"
    finally:
        stop(process)
    validated = run_guard(tmp_path, "policy", "validate", "--config-file", str(config))
    assert validated.returncode == 0 and "1 rule(s) from files" in validated.stdout
    assert (policy_d / "50-show.yaml").read_text() == ADMIN_ONLY
