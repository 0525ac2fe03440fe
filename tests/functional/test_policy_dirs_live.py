"""A live ``guard serve`` keeps a ``policy.d`` directory's overrides while it is gone.

DESIGN.md "Policy file handling fails closed", for oslo.policy's
``[oslo_policy] policy_dirs``, over a real process in real time: the
operator's overrides (show and list admin-only) live in ``policy.d`` beside
guard.conf (a relative entry, found as oslo.config finds files). A reader
polls ``GET /consumers/{uuid}`` and ``GET /consumers`` every 50 ms while the
directory is renamed away and back, swapped by two renames with a reload in
the gap (``mv policy.d policy.d.old && mv policy.d.new policy.d``) and
removed and recreated. The more permissive defaults (200 for the reader)
are never seen; the admin healthcheck names the directory (by base name)
while it is gone; and a file removed from the directory, which is still
there, drops its rules within 3 s, so the poller can tell.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.functional.processes import guard_serve
from tests.functional.test_policy_live import HOLD, STRICT, health, polled

# Still admin-only for show and list (auditors may show too): a new revision.
STRICT_NEW = (
    '"guard:consumers:show": "rule:admin or role:auditor"\n"guard:consumers:list": "rule:admin"\n'
)
GONE = "policy.d: the policy directory is missing"
#: Generous: on a loaded machine a poll may come late; the contract's 3 s is asserted
#: once, on the poller's own times, at the end.
SETTLED_WITHIN = 30


def _health_when(base: str, settled: Callable[[dict], bool], at_least: float = HOLD) -> dict:
    """The admin healthcheck's policy state once ``settled`` holds of it, after ``at_least``
    seconds (the reader polls all along, so the run stays as long as it was)."""
    time.sleep(at_least)
    deadline = time.monotonic() + SETTLED_WITHIN
    state = health(base)
    while not settled(state) and time.monotonic() < deadline:
        time.sleep(0.2)
        state = health(base)
    return state


def _held(state: dict) -> bool:
    return state["last_reload_error"] is not None


def _clear(state: dict) -> bool:
    return state["last_reload_error"] is None


def _policy_d(parent: Path, name: str, text: str) -> Path:
    directory = parent / name
    directory.mkdir()
    (directory / "10-strict.yaml").write_text(text)
    return directory


def test_the_defaults_are_never_seen_while_policy_d_is_gone(tmp_path: Path) -> None:
    config = tmp_path / "guard.conf"
    config.write_text("[oslo_policy]\npolicy_dirs = policy.d\n")
    policy_d = _policy_d(tmp_path, "policy.d", STRICT)
    process = guard_serve(tmp_path, "--demo", "--port", "0", "--config-file", str(config))
    with polled(process) as (base, poller, stderr):
        revision = health(base)["revision"]
        problems = []

        policy_d.rename(tmp_path / "policy.d.old")
        problems.append(_health_when(base, _held))
        (tmp_path / "policy.d.old").rename(policy_d)
        assert _health_when(base, _clear) == {"revision": revision, "last_reload_error": None}

        new = _policy_d(tmp_path, "policy.d.new", STRICT_NEW)
        policy_d.rename(tmp_path / "policy.d.old")
        # At least two polls in the gap (one each 0.5 s); the gap lasts until one saw it.
        problems.append(_health_when(base, _held, at_least=1.2))
        new.rename(policy_d)
        swapped = _health_when(base, lambda state: _clear(state) and state["revision"] != revision)
        assert swapped["last_reload_error"] is None
        assert swapped["revision"] != revision  # the new directory applied

        shutil.rmtree(policy_d)
        problems.append(_health_when(base, _held))
        _policy_d(tmp_path, "policy.d", STRICT_NEW)
        back = _health_when(base, _clear)
        assert back == {"revision": swapped["revision"], "last_reload_error": None}

        (policy_d / "10-strict.yaml").unlink()  # the directory stays: the defaults apply
        written = time.monotonic()
        time.sleep(3.5)
    before = [(shown, listed) for at, shown, listed in poller.seen if at < written]
    after = [(at, shown, listed) for at, shown, listed in poller.seen if at >= written]
    assert len(before) > 150, "the reader was not polling"
    assert set(before) == {(404, 403)}, "the defaults (or an error) were seen"
    assert [p["revision"] for p in problems] == [revision, revision, swapped["revision"]]
    assert [p["last_reload_error"].split(";")[0] for p in problems] == [GONE] * 3
    applied = [at for at, shown, listed in after if (shown, listed) == (200, 200)]
    assert applied and applied[0] - written <= 3.0, "a file removed did not drop its rules"
    held = [line for line in stderr if "stays in force" in line]
    assert len(held) == 3, held  # one line each time the directory went, not one a request
    assert all(GONE in line and str(tmp_path) not in line for line in held)
