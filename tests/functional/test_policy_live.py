"""A live ``guard serve`` never falls back to the defaults while its file is handled badly.

DESIGN.md "Policy file handling fails closed", over a real process in real
time: with a strict operator file (show and list admin-only), a reader polls
``GET /consumers/{uuid}`` and ``GET /consumers`` every 50 ms while the file
is deleted, renamed away and back, replaced by a dangling link, emptied, and
rewritten in place three times (truncate, pause, write). The more permissive
defaults (200 for the reader) are never seen; the admin healthcheck names the
problem while it lasts; and a real change (``{}``, the defaults) is seen
within 3 s, so the poller can tell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from guard.testing import http
from guard.tools import demo
from tests.functional.processes import guard_serve, read_until_serving

STRICT = '"guard:consumers:show": "rule:admin"\n"guard:consumers:list": "rule:admin"\n'
OWNED = demo.SEEDED[0][0]  # demo-alice's consumer
READER = demo.ALICE.headers()  # member and reader of demo-project-a
ADMIN = demo.ADMIN.headers()
HOLD = 2.5  # longer than the quiet second plus two reload intervals


class Poller(threading.Thread):
    """The reader's GET and list every 50 ms; records every status it gets."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.seen: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            shown = http("GET", f"{self.base}/consumers/{OWNED}", READER)[0]
            listed = http("GET", f"{self.base}/consumers", READER)[0]
            self.seen.append((time.monotonic(), shown, listed))
            time.sleep(0.05)


@contextlib.contextmanager
def polled(process: subprocess.Popen[str]) -> Iterator[tuple[str, Poller, list[str]]]:
    """A started ``guard serve``'s base URL, a running :class:`Poller` and its stderr lines.

    Its stderr is read as it comes (the access log fills a pipe in seconds).
    On the way out the poller and the server are stopped (SIGINT) and the
    stderr read to its end, so the caller asserts on all of it afterwards.
    """
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr or ()), daemon=True)
    drain.start()
    poller = None
    try:
        base = read_until_serving(process)[-1].split()[2]
        poller = Poller(base)
        poller.start()
        time.sleep(1)
        yield base, poller, stderr
    finally:
        if poller is not None:
            poller.stop.set()
            poller.join(timeout=30)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        drain.join(timeout=30)


def health(base: str) -> dict:
    status, _, body = http("GET", f"{base}/healthcheck", ADMIN)
    assert status == 200
    return json.loads(body)["policy"]


def test_the_defaults_are_never_seen_while_the_file_is_mishandled(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(STRICT)
    process = guard_serve(tmp_path, "--demo", "--port", "0", "--policy-file", str(policy_file))
    with polled(process) as (base, poller, stderr):
        revision = health(base)["revision"]
        problems = []

        def hold_then(restore) -> None:
            time.sleep(HOLD)
            problems.append(health(base)["last_reload_error"])
            restore()
            time.sleep(HOLD)

        policy_file.unlink()
        hold_then(lambda: policy_file.write_text(STRICT))

        policy_file.rename(tmp_path / "policy.yaml.old")
        hold_then(lambda: (tmp_path / "policy.yaml.old").rename(policy_file))

        (tmp_path / "dangling").symlink_to(tmp_path / "nowhere.yaml")
        os.replace(tmp_path / "dangling", policy_file)
        hold_then(lambda: policy_file.write_text(STRICT))

        policy_file.write_text("")
        hold_then(lambda: policy_file.write_text(STRICT))

        for _ in range(3):
            with open(policy_file, "w") as handle:  # truncates
                handle.flush()
                time.sleep(0.3)
                handle.write(STRICT)
            time.sleep(1.5)
        time.sleep(HOLD)

        assert [p.split(";")[0] for p in problems] == [
            "policy.yaml: the policy file is missing",
            "policy.yaml: the policy file is missing",
            "policy.yaml: the policy file is missing",
            "policy.yaml: the policy file is empty (policy.yaml)",
        ]
        assert health(base) == {"revision": revision, "last_reload_error": None}

        policy_file.write_text("{}\n")  # the operator asks for the defaults
        written = time.monotonic()
        time.sleep(3.5)
    before = [(shown, listed) for at, shown, listed in poller.seen if at < written]
    after = [(at, shown, listed) for at, shown, listed in poller.seen if at >= written]
    assert len(before) > 200, "the reader was not polling"
    assert set(before) == {(404, 403)}, "the defaults (or an error) were seen"
    applied = [at for at, shown, listed in after if (shown, listed) == (200, 200)]
    assert applied and applied[0] - written <= 3.0, "a real change was not applied within 3 s"
    held = [line for line in stderr if "stays in force" in line]
    assert len(held) == 4, held  # one line per problem, not one a request
