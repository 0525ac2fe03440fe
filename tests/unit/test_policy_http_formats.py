"""An ``http:``/``https:`` check whose URL has a stray '%' is refused as a role's is.

oslo.policy fills an external check's URL in with the target, ``('http:' +
match) % target``, as it fills a role or generic check's match: a
URL-encoded ``%20`` (or any '%' that is not ``%(key)s`` or ``%%``) raises
on every decision. Refusing such matches in role and generic checks left
this one: ``guard policy validate`` said ok, a live edit applied it, the
rule then raised on every decision and ``guard policy explain`` died with a
traceback. Nothing here contacts the URL: a refused rule is never evaluated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from guard.policy.validate import parse_policy_text

SHOW = "guard:consumers:show"


@pytest.mark.parametrize(
    ("check_str", "refused"),
    [
        ("http://127.0.0.1:1/check%20it", True),
        ("https://policy.example/%2Fconsumers", True),
        ("rule:admin or http://127.0.0.1:1/a%", True),
        ("role:reader and https://policy.example/%(project_id)d", True),
        # Written as oslo.policy fills them in: accepted.
        ("http://127.0.0.1:1/check%%20it", False),
        ("https://policy.example/%(project_id)s/%(uuid)s", False),
        ("rule:admin or http://127.0.0.1:1/ok", False),
    ],
)
def test_external_check_urls(check_str: str, refused: bool) -> None:
    parsed = parse_policy_text(yaml.safe_dump({SHOW: check_str}), "policy.yaml")
    assert (SHOW in parsed.invalid) is refused, parsed.problems
    if refused:
        assert any("a '%' that is not a target template" in str(p) for p in parsed.problems)
        assert all(check_str not in str(problem) for problem in parsed.problems)


def test_validate_refuses_and_explain_answers_without_a_traceback(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f'"{SHOW}": "rule:admin or http://127.0.0.1:1/check%20it"\n')
    validate = _guard("policy", "validate", str(policy_file), cwd=tmp_path)
    assert validate.returncode == 1
    assert f"policy.yaml:1: rule '{SHOW}'" in validate.stderr + validate.stdout
    explain = _guard(
        "policy", "explain", "--policy-file", str(policy_file), "--rule", SHOW,
        "--creds", '{"roles": ["reader"], "project_id": "p1"}',
        "--target", '{"project_id": "p1"}', cwd=tmp_path,
    )  # fmt: skip
    assert explain.returncode != 0
    assert "Traceback" not in explain.stderr
    assert "a '%' that is not a target template" in explain.stderr


def _guard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guard", "--config-file", "/dev/null", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, env={"HOME": str(cwd), "PATH": ""},
    )  # fmt: skip
