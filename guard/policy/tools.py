"""The enforcer the stock oslopolicy tools get for ``--namespace guard``.

The tools (``oslopolicy-validator``, ``-policy-generator``,
``-list-redundant``, ...) call ``load_rules()`` themselves and behave on guard
exactly as on any service. One exception, on purpose: a policy file that
oslo.policy cannot load at all (a YAML error, a value that is not a check
string) makes stock oslo.policy raise out of ``load_rules()``, and the tool
dies with a traceback. Here the tool stops with exit status 1 and one
``error:`` line per problem, naming file, line and rule, as ``guard policy
validate`` does (docs/oslo-compat.md).
"""

from __future__ import annotations

import os
import sys

from guard.policy.enforcer import Enforcer
from guard.policy.reload import read_policy_text
from guard.policy.validate import parse_policy_text


class ToolEnforcer(Enforcer):
    """guard's Enforcer, stopping a tool cleanly on a file it cannot load."""

    def load_rules(self, force_reload: bool = False) -> None:
        try:
            super().load_rules(force_reload)
        except (ValueError, TypeError, AttributeError) as exc:
            problems = self._file_problems()
            for problem in problems or [f"{type(exc).__name__}: {exc}"]:
                print(f"error: {problem}", file=sys.stderr)
            raise SystemExit(1) from None

    def _file_problems(self) -> list[str]:
        """What guard's whole-file validation finds in the policy files."""
        paths = [self.policy_path] if self.policy_path else []
        for directory in self.conf.oslo_policy.policy_dirs:
            found = self.conf.find_file(directory)
            if found and os.path.isdir(found):
                names = sorted(n for n in os.listdir(found) if not n.startswith("."))
                paths.extend(os.path.join(found, n) for n in names)
        problems = []
        for path in paths:
            try:
                text = read_policy_text(path)
            except (OSError, UnicodeDecodeError):
                continue
            parsed = parse_policy_text(text, os.path.basename(path))
            problems += [str(p) for p in parsed.problems if p.severity == "error"]
        return problems
