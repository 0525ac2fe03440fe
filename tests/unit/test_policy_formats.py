"""A check that raises or never matches on every decision is refused.

A match with a '%' other than ``%(key)s`` or ``%%``, or a generic check's
left side on which ``ast.literal_eval`` raises other than ValueError
(``1.2.3:x``, an unclosed quote): oslo.policy lets those escape.

oslo.policy fills a role or generic check's match in with ``match % target``:
``project_id:%(project_id)d``, ``user_id:%(user_id)s%`` or ``role:100%``
raise on every decision (TypeError, ValueError) and ``%(key)r`` or
``%(key)5s`` make a text no credential equals. They parse, so guard's
validation accepted them: ``guard policy validate`` said ok, a live edit was
applied, the rule then denied everyone with a warning per request (a list
checked every row of the table in Python, one by one), the healthcheck
showed nothing, and ``guard policy explain`` died with a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from oslo_policy import _checks, _parser, policy

from guard.policy.validate import parse_policy_text

SHOW = "guard:consumers:show"
TARGET = {"project_id": "p1", "user_id": "u1"}
CREDS = {"roles": ["reader", "p1"], "project_id": "p1", "user_id": "u1"}

# Pieces of a match: templates well and badly formed, literal text, percents.
pieces = st.sampled_from(
    ["%(project_id)s", "%(user_id)s", "%(project_id)d", "%(user_id)r", "%(project_id)5s",
     "%(project_id)", "%%", "%", "%s", "p1", "u1", "reader", "-", "."]
)  # fmt: skip
matches = st.lists(pieces, min_size=1, max_size=4).map("".join)
# Left sides: credential names, Python literals, and (the last three) text
# on which ast.literal_eval raises SyntaxError, not oslo's ValueError.
GOOD_KINDS = ["role", "project_id", "user_id", "token.user.id", "'p1'", "True", "1"]
BAD_KINDS = ["1.2.3", "'p1", "0123"]
checks = st.builds(
    lambda kind, match: f"{kind}:{match}", st.sampled_from(GOOD_KINDS + BAD_KINDS), matches
)


def _oslo_decides(check_str: str) -> bool:
    """Stock oslo.policy's answer for ``check_str`` (raises what oslo raises)."""
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    enforcer = policy.Enforcer(conf, use_conf=False)
    enforcer.set_rules(policy.Rules.from_dict({SHOW: check_str}), use_conf=False)
    return bool(enforcer.enforce(SHOW, dict(TARGET), dict(CREDS)))


@settings(max_examples=300, deadline=None)
@given(st.lists(checks, min_size=1, max_size=3), st.sampled_from([" and ", " or "]))
def test_an_accepted_check_string_is_filled_in_as_written(parts: list[str], joiner: str) -> None:
    """Accepted means: oslo.policy evaluates it without raising, and each
    template it fills in is the target's value itself (a well-formed
    ``%(key)s``); refused means one of its matches has a stray '%' or one
    of its left sides is neither a literal nor a credential name."""
    check_str = joiner.join(parts)
    parsed = parse_policy_text(yaml.safe_dump({SHOW: check_str}), "policy.yaml")
    stray = any(_has_stray_percent(part.split(":", 1)[1]) for part in parts)
    bad_kind = any(part.split(":", 1)[0] in BAD_KINDS for part in parts)
    if stray or bad_kind:
        assert parsed.problems and SHOW in parsed.invalid, check_str
        assert all(check_str not in str(problem) for problem in parsed.problems)
    elif isinstance(_parser.parse_rule(check_str), _checks.FalseCheck):
        # oslo.policy cannot parse it: a match ending in ")" ('role:%%(project_id)')
        # closes a parenthesis no one opened. Refused too, whatever the reason given.
        assert parsed.problems and SHOW in parsed.invalid, check_str
    else:
        assert not parsed.problems, (check_str, parsed.problems)
        _oslo_decides(check_str)  # never raises


def _has_stray_percent(match: str) -> bool:
    """A scan left to right: "%%" and "%(key)s" are fine, any other "%" is stray."""
    position = 0
    while (found := match.find("%", position)) >= 0:
        if match.startswith("%%", found):
            position = found + 2
            continue
        close = match.find(")", found)
        if match.startswith("%(", found) and close > 0 and match.startswith(")s", close):
            position = close + 2
            continue
        return True
    return False


def test_validate_refuses_and_explain_answers_without_a_traceback(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        '"guard:consumers:list": "role:reader and project_id:%(project_id)d"\n'
        '"guard:consumers:show": "role:reader and project_id:%(project_id)s%"\n'
        '"guard:consumers:delete": "role:member and user_id:%(user_id)r"\n'
    )
    validate = _guard("policy", "validate", str(policy_file), cwd=tmp_path)
    assert validate.returncode == 1
    lines = validate.stderr.splitlines() + validate.stdout.splitlines()
    for line, rule in ((1, "list"), (2, "show"), (3, "delete")):
        assert any(
            f"policy.yaml:{line}: rule 'guard:consumers:{rule}'" in text
            and "a '%' that is not a target template" in text
            for text in lines
        ), lines
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
        [sys.executable, "-m", "guard", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, env={"HOME": str(cwd), "PATH": ""},
    )  # fmt: skip
