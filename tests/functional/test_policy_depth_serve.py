"""Too-deep and broken policy files against real ``guard serve`` processes and ``guard policy``.

A rule set nested too deep to evaluate (5,000 ``rule:`` references in a
chain, ``not``/``and``/``or`` nested 5,000 deep, YAML lists 5,000 deep) is a
bad file: it stops a start and ``validate`` with the rule named, and on a
live service it is refused while the last good rules keep answering, the
admin healthcheck included. No traceback anywhere. A YAML error names the
rule by its key and line, never the text of the broken line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.testing import Persona, http
from tests.functional.processes import guard_serve, read_until_serving

LIST = "guard:consumers:list"
SHOW = "guard:consumers:show"
DEPTH = 5000
TIMEOUT = 60
# Generous: guard applies a saved change within 3 s (DESIGN.md); the machine may be busy.
RELOAD_WAIT = 20.0


def identity(roles: str, project: str = "proj-a") -> dict[str, str]:
    return Persona("u-" + roles.replace(",", "-"), project, tuple(roles.split(","))).headers()


ADMIN = identity("admin,member,reader", "proj-ops")
READER = identity("reader")
STRICT = f'"{LIST}": "role:admin"\n"{SHOW}": "role:admin"\n'


def chain_file(length: int = DEPTH) -> str:
    """``length`` references from the list rule down to a rule a reader would pass."""
    lines = [f'"{LIST}": "rule:r0"']
    lines += [f'"r{i}": "rule:r{i + 1}"' for i in range(length)]
    lines.append(f'"r{length}": "role:reader"')
    return "\n".join(lines) + "\n"


DEEP_FILES = {
    "rule chain": (chain_file, LIST),
    "rule chain of 600": (lambda: chain_file(600), LIST),  # the 500s on every request
    "not nesting": (lambda: f'"{LIST}": "{"not " * DEPTH}role:nobody"\n', LIST),
    "and nesting": (
        lambda: f'"{SHOW}": "{"(role:reader and " * DEPTH}role:reader{")" * DEPTH}"\n',
        SHOW,
    ),
    "or nesting": (
        lambda: f'"{LIST}": "{"(role:x or " * DEPTH}role:reader{")" * DEPTH}"\n',
        LIST,
    ),
    "yaml nesting": (lambda: f'"{LIST}": {"[" * DEPTH}"role:reader"{"]" * DEPTH}\n', LIST),
}


def no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert "RecursionError" not in text


@pytest.mark.parametrize("case", sorted(DEEP_FILES))
def test_validate_refuses_a_too_deep_file_naming_the_rule(tmp_path: Path, case: str) -> None:
    make, rule = DEEP_FILES[case]
    (tmp_path / "deep.yaml").write_text(make())
    result = subprocess.run(
        [sys.executable, "-m", "guard", "policy", "validate", "deep.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    assert re.search(rf"^error: deep\.yaml:\d+: rule '{rule}': .*deep", result.stdout, re.M)
    no_traceback(result.stdout + result.stderr)


@pytest.mark.parametrize("case", sorted(DEEP_FILES))
def test_serve_refuses_to_start_on_a_too_deep_file(tmp_path: Path, case: str) -> None:
    make, rule = DEEP_FILES[case]
    (tmp_path / "deep.yaml").write_text(make())
    process = guard_serve(tmp_path, "--port", "0", "--pipeline", "trusted",
                          "--policy-file", "deep.yaml")  # fmt: skip
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2
    assert "guard serving" not in stdout
    assert f"rule '{rule}'" in stderr and "deep" in stderr
    no_traceback(stderr)


def save(path: Path, text: str) -> None:
    """Replace the file as a deploy does: write aside, then rename over it."""
    aside = path.with_name(path.name + ".new")
    aside.write_text(text)
    os.replace(aside, path)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """A ``guard serve`` on a strict policy file (list and show admin-only)."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(STRICT)
    process = guard_serve(tmp_path, "--port", "0", "--pipeline", "trusted",
                          "--policy-file", "policy.yaml")  # fmt: skip
    try:
        lines = read_until_serving(process)
        match = re.search(r"guard serving (\S+) ", lines[-1])
        assert match is not None
        yield match.group(1), policy_file, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=TIMEOUT)


def reload_error(base_url: str) -> str | None:
    status, _, body = http("GET", f"{base_url}/healthcheck", ADMIN)
    assert status == 200, body[:300]
    return json.loads(body)["policy"]["last_reload_error"]


def wait_for_reload_error(base_url: str) -> str:
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        error = reload_error(base_url)
        if error:
            return error
        time.sleep(0.2)
    pytest.fail("the bad file was never reported on the healthcheck")


def still_strict(base_url: str) -> None:
    """The strict rules answer: the reader is refused, the admin served, nothing fails."""
    status, _, _ = http("GET", f"{base_url}/consumers", READER)
    assert status == 403
    status, _, _ = http("GET", f"{base_url}/consumers", ADMIN)
    assert status == 200


def test_a_too_deep_edit_on_a_live_service_is_refused(live) -> None:
    base_url, policy_file, process = live
    still_strict(base_url)
    revision = json.loads(http("GET", f"{base_url}/healthcheck", ADMIN)[2])["policy"]["revision"]
    save(policy_file, chain_file())
    error = wait_for_reload_error(base_url)
    assert f"rule '{LIST}'" in error and "deep" in error
    for _ in range(5):
        still_strict(base_url)
    document = json.loads(http("GET", f"{base_url}/healthcheck", ADMIN)[2])
    assert document["policy"]["revision"] == revision

    save(policy_file, f'"{LIST}": "{"not " * DEPTH}role:nobody"\n')
    deadline = time.monotonic() + RELOAD_WAIT
    while "more than" not in (reload_error(base_url) or "") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "more than" in (reload_error(base_url) or "")
    still_strict(base_url)

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    no_traceback(stderr)
    assert re.search(rf"refused.*rule '{LIST}'.*deep", stderr)


def test_a_yaml_error_names_the_rule_never_the_broken_lines_text(live) -> None:
    base_url, policy_file, process = live
    secret = "acme-secret-project"
    save(policy_file, f'"{SHOW}": "role:admin"\n{secret}: [oops\n"{LIST}": "role:admin"\n')
    error = wait_for_reload_error(base_url)
    assert secret not in error
    assert re.search(rf"policy\.yaml:\d+: YAML error after rule '{SHOW}'", error)
    still_strict(base_url)

    save(policy_file, f'"{SHOW}": "role:admin"\n"{LIST}": \'{secret}\n')
    deadline = time.monotonic() + RELOAD_WAIT
    while f"rule '{LIST}'" not in (reload_error(base_url) or "") and time.monotonic() < deadline:
        time.sleep(0.2)
    error = reload_error(base_url) or ""
    assert f"policy.yaml:3: rule '{LIST}': YAML error" in error
    assert secret not in error

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert secret not in stderr
    assert "YAML error" in stderr
    no_traceback(stderr)
