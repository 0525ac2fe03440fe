"""Policy file paths as operators write them, on real processes (docs/api.md: the policy file).

A relative path on the command line is relative to the working directory; a
relative ``[oslo_policy] policy_file`` is found beside the configuration file.
A file named explicitly that is missing or unreadable stops ``guard serve``
and the WSGI entry point and makes ``guard policy validate|explain|diff``
exit 1; only oslo's default name, not found, means the defaults.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guard.testing import Persona, http
from tests.functional.processes import guard_serve, read_until_serving

LIST = "guard:consumers:list"
SHOW = "guard:consumers:show"
BROKEN = f'"{SHOW}": "rule:nobody"\n"{LIST}": "rule:admin or"\n'
ADMIN_ONLY_LIST = f'"{LIST}": "rule:admin"\n'
READER = Persona("ann", "proj-a", ("reader",)).headers()
TIMEOUT = 60


def guard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``guard ARGS`` run in ``cwd``, with a HOME of its own (no stray config found)."""
    return subprocess.run(
        [sys.executable, "-m", "guard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "HOME": str(cwd)},
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory with ``broken.yaml``, ``strict.yaml`` and an empty subdirectory."""
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "strict.yaml").write_text(ADMIN_ONLY_LIST)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


def test_validate_reads_a_relative_path_from_the_working_directory(workdir: Path) -> None:
    result = guard(workdir, "policy", "validate", "broken.yaml")
    assert result.returncode == 1
    assert f"error: broken.yaml:1: rule '{SHOW}':" in result.stdout
    assert f"error: broken.yaml:2: rule '{LIST}':" in result.stdout
    assert "ok:" not in result.stdout

    good = guard(workdir, "policy", "validate", "strict.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.endswith("1 rule(s) from files\n")

    nested = guard(workdir / "elsewhere", "policy", "validate", "../strict.yaml")
    assert nested.returncode == 0, nested.stdout + nested.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("policy", "validate", "missing.yaml"),
        ("policy", "validate", "elsewhere"),  # a directory is not a policy file
        ("policy", "explain", "--rule", SHOW, "--creds", "{}", "--policy-file", "missing.yaml"),
        ("policy", "diff", "strict.yaml", "missing.yaml"),
        ("policy", "diff", "missing.yaml", "strict.yaml"),
    ],
)
def test_the_tools_refuse_a_named_file_they_cannot_read(workdir: Path, args: tuple) -> None:
    result = guard(workdir, *args)
    assert result.returncode == 1
    named = next(a for a in args if a in ("missing.yaml", "elsewhere"))
    assert f"policy file {named} (" in result.stderr
    assert "Traceback" not in result.stderr


def test_diff_and_explain_compare_the_relative_files(workdir: Path) -> None:
    (workdir / "empty.yaml").write_text("")
    result = guard(workdir, "policy", "diff", "empty.yaml", "strict.yaml")
    assert result.returncode == 0, result.stderr
    assert "no decision changes" not in result.stdout
    assert LIST in result.stdout

    creds = json.dumps({"roles": ["reader"], "project_id": "p1"})
    target = json.dumps({"project_id": "p1"})
    explained = guard(
        workdir, "policy", "explain", "--rule", LIST, "--creds", creds, "--target", target,
        "--policy-file", "strict.yaml",
    )  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith(f"{LIST}: DENIED")


def test_a_configured_relative_file_is_found_beside_the_config_file(workdir: Path) -> None:
    config = workdir / "etc" / "guard.conf"
    config.parent.mkdir()
    config.write_text("[oslo_policy]\npolicy_file = custom.yaml\n")
    (config.parent / "custom.yaml").write_text(BROKEN)
    result = guard(workdir / "elsewhere", "policy", "validate", "--config-file", str(config))
    assert result.returncode == 1
    assert f"error: custom.yaml:2: rule '{LIST}':" in result.stdout

    (config.parent / "custom.yaml").unlink()
    missing = guard(workdir / "elsewhere", "policy", "validate", "--config-file", str(config))
    assert missing.returncode == 1
    assert "policy file custom.yaml: not found" in missing.stderr


def test_oslos_default_name_not_found_means_the_defaults(workdir: Path) -> None:
    config = workdir / "guard.conf"
    config.write_text("[oslo_policy]\npolicy_file = policy.yaml\n")
    result = guard(workdir / "elsewhere", "policy", "validate", "--config-file", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("0 rule(s) from files\n")


def _refused(process: subprocess.Popen[str]) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode not in (0, None)
    assert "guard serving" not in stdout
    assert "Traceback" not in stderr
    return stdout, stderr


def test_serve_refuses_a_missing_policy_file(workdir: Path) -> None:
    process = guard_serve(workdir, "--port", "0", "--pipeline", "trusted",
                          "--policy-file", "missing.yaml")  # fmt: skip
    _, stderr = _refused(process)
    assert f"policy file missing.yaml ({workdir / 'missing.yaml'}): no such file" in stderr


def test_serve_refuses_an_invalid_relative_policy_file(workdir: Path) -> None:
    process = guard_serve(workdir, "--port", "0", "--pipeline", "trusted",
                          "--policy-file", "broken.yaml")  # fmt: skip
    _, stderr = _refused(process)
    assert "refusing to start" in stderr
    assert f"broken.yaml:2: rule '{LIST}'" in stderr


def test_serve_refuses_a_configured_policy_file_that_is_missing(workdir: Path) -> None:
    config = workdir / "guard.conf"
    config.write_text("[guard]\npipeline = trusted\n[oslo_policy]\npolicy_file = gone.yaml\n")
    process = guard_serve(workdir, "--port", "0", "--config-file", str(config))
    _, stderr = _refused(process)
    assert "policy file gone.yaml: not found" in stderr


def test_serve_enforces_a_relative_policy_file(workdir: Path) -> None:
    process = guard_serve(workdir, "--port", "0", "--pipeline", "trusted",
                          "--policy-file", "strict.yaml")  # fmt: skip
    try:
        lines = read_until_serving(process)
        base_url = re.search(r"guard serving (\S+) ", lines[-1]).group(1)  # type: ignore[union-attr]
        status, _, _ = http("GET", f"{base_url}/consumers", READER)
        assert status == 403  # the defaults would list the reader's project
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=TIMEOUT)


def test_the_wsgi_entry_point_refuses_a_missing_policy_file(workdir: Path) -> None:
    config = workdir / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{workdir / 'guard.sqlite'}\n"
        "[guard]\npipeline = trusted\n[oslo_policy]\npolicy_file = gone.yaml\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import guard.wsgi; guard.wsgi.application"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "HOME": str(workdir), "GUARD_CONFIG_FILE": str(config)},
        check=False,
    )
    assert result.returncode != 0
    assert "policy file gone.yaml: not found" in result.stderr
