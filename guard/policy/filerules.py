"""Parse the policy files one poll read into oslo.policy rules, with each rule's origin.

guard's own loading (``Enforcer.fail_closed``) reads the files itself (to
validate them whole before anything is used) and builds the rules here; the
origins (file base name and line) let every problem name where it is.
"""

from __future__ import annotations

import os

from oslo_policy import _checks, policy

from guard.policy.errors import Problem
from guard.policy.reload import PolicyFiles
from guard.policy.validate import parse_policy_text


def read_policy_files(
    files: PolicyFiles,
) -> tuple[
    dict[str, _checks.BaseCheck],
    dict[str, policy.RuleDefault],
    dict[str, tuple[str, int | None]],
    list[Problem],
]:
    """Parse every file in load order; later files override earlier rules."""
    problems = [
        Problem(os.path.basename(path), None, None, f"cannot be read: {reason}")
        for path, reason in files.unreadable
    ]
    checks: dict[str, _checks.BaseCheck] = {}
    file_rules: dict[str, policy.RuleDefault] = {}
    origins: dict[str, tuple[str, int | None]] = {}
    for path, text in ([files.main] if files.main else []) + list(files.directory_files):
        parsed = parse_policy_text(text, os.path.basename(path))
        problems.extend(parsed.problems)
        for name in parsed.invalid:
            # Stands in for an unusable rule so that references to it are not
            # also reported as undefined; the revision is refused anyway.
            checks[name] = _checks.FalseCheck()
        for name, check_str in parsed.check_strings.items():
            # oslo.policy takes its old list-of-lists syntax here too (stubs say str).
            file_rules[name] = policy.RuleDefault(name, check_str)  # type: ignore[arg-type]
            checks[name] = file_rules[name].check
            origins[name] = (parsed.source, parsed.lines.get(name))
    return checks, file_rules, origins, problems
