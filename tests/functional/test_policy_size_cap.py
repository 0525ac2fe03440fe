"""A policy file over guard's size cap is refused unread, like any other broken file.

A huge policy file stalled the request thread that found the change while
the YAML parser went through it (about 2.5 s a MiB here; 100 MiB would take
minutes). Every policy file guard reads (the main file and each file of
policy.d, at start-up, on a live service and in ``guard policy``) is capped at
``MAX_POLICY_FILE_BYTES``: at start-up and in the tools an error names the
file, its size and the limit; on a live service the last good rules stay,
with the same words in the reload error. The file is never read whole to
find out it is too big.

Real files (sparse where they are huge), real processes for start-up and the
tools, the injected clock of tests/functional/test_policy_reload.py for the
live case.
"""

from __future__ import annotations

import os
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from guard.policy import PolicyFileError, make_enforcer
from guard.policy.reload import MAX_POLICY_FILE_BYTES, PolicyFileTooLarge, read_policy_text
from tests.functional.processes import guard_serve, run_guard
from tests.functional.test_policy_reload import (
    ADMIN_ONLY,
    READER,
    SHOW,
    FakeClock,
    new_conf,
    requests_for,
    save,
)

LIMIT = f"the limit is {MAX_POLICY_FILE_BYTES:,} bytes"


def _too_large(path: Path, size: int = MAX_POLICY_FILE_BYTES + 1) -> str:
    """A valid policy file of ``size`` bytes (a rule padded by a comment); its size, printed."""
    rule = f'"{SHOW}": "rule:project_reader"\n'
    save(path, rule + "#" * (size - len(rule) - 1) + "\n")
    assert path.stat().st_size == size
    return f"too large: {size:,} bytes, {LIMIT}"


def _sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes of zeros that takes no disk space."""
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_a_file_at_the_limit_is_read(tmp_path):
    path = tmp_path / "policy.yaml"
    _too_large(path, MAX_POLICY_FILE_BYTES)
    assert len(read_policy_text(str(path))) == MAX_POLICY_FILE_BYTES


def test_a_huge_file_is_refused_without_being_read(tmp_path):
    """100 MiB: refused by its size, before any byte of it is in memory."""
    path = tmp_path / "policy.yaml"
    _sparse(path, 100 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(PolicyFileTooLarge) as raised:
            read_policy_text(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"{peak:,} bytes allocated to refuse it"
    assert raised.value.strerror == f"too large: {100 * 1024 * 1024:,} bytes, {LIMIT}"


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_a_file_bigger_than_its_size_says_is_read_bounded():
    """A regular file whose size the kernel reports as 0 (and one that grows while
    read): the read itself stops one byte past the limit."""
    with pytest.raises(PolicyFileTooLarge):
        read_policy_text("/proc/self/maps", limit=16)


def test_start_up_refuses_a_main_file_over_the_limit(tmp_path):
    path = tmp_path / "policy.yaml"
    _too_large(path)
    with pytest.raises(PolicyFileError) as raised:
        make_enforcer(new_conf(tmp_path), str(path))
    assert "too large" in str(raised.value)


def test_start_up_refuses_a_policy_d_file_over_the_limit(tmp_path):
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    size = _too_large(policy_d / "20-big.yaml")
    with pytest.raises(PolicyFileError) as raised:
        make_enforcer(new_conf(tmp_path, [str(policy_d)]))
    assert [str(p) for p in raised.value.problems] == [f"20-big.yaml: cannot be read: {size}"]


def test_a_live_main_file_over_the_limit_keeps_the_last_good_rules(tmp_path):
    fake = FakeClock()
    path = tmp_path / "policy.yaml"
    save(path, ADMIN_ONLY)
    enforcer = make_enforcer(new_conf(tmp_path), str(path), clock=fake.clock())
    revision = enforcer.revision
    size = _too_large(path)  # valid rules: applied (allowing the reader) were it read
    assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))
    assert enforcer.revision == revision
    assert enforcer.last_reload_error == (
        f"policy.yaml: the policy file cannot be read ({size}); the last good rules stay in force"
    )
    save(path, f'"{SHOW}": "rule:project_reader"\n')  # cut down: applied
    assert requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]
    assert enforcer.last_reload_error is None


def test_a_live_policy_d_file_over_the_limit_is_refused(tmp_path):
    fake = FakeClock()
    path = tmp_path / "policy.yaml"
    save(path, ADMIN_ONLY)
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    enforcer = make_enforcer(new_conf(tmp_path, [str(policy_d)]), str(path), clock=fake.clock())
    revision = enforcer.revision
    size = _too_large(policy_d / "20-big.yaml")
    assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))
    assert enforcer.revision == revision
    assert enforcer.last_reload_error == (
        f"reload refused: invalid policy: 20-big.yaml: cannot be read: {size}"
    )


@pytest.mark.parametrize(
    "command",
    [
        ("policy", "validate", "big.yaml"),
        ("policy", "explain", "--rule", SHOW, "--creds", "{}", "--policy-file", "big.yaml"),
        ("policy", "diff", "big.yaml", "small.yaml"),
    ],
)
def test_the_tools_name_the_file_its_size_and_the_limit(tmp_path, command):
    save(tmp_path / "small.yaml", ADMIN_ONLY)
    size = _too_large(tmp_path / "big.yaml")
    result = run_guard(tmp_path, *command)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: policy file big.yaml ({tmp_path / 'big.yaml'}): cannot be read ({size})\n"
    )


def test_serve_refuses_to_start_on_a_file_over_the_limit(tmp_path):
    size = _too_large(tmp_path / "big.yaml")
    process = guard_serve(tmp_path, "--demo", "--port", "0", "--policy-file", "big.yaml")
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("guard serve did not stop")
    assert process.returncode not in (0, None)
    assert "guard serving" not in stdout
    assert f"big.yaml ({tmp_path / 'big.yaml'}): cannot be read ({size})" in stderr
    assert "Traceback" not in stderr
