"""What can be wrong with a policy file, and the error that stops a start.

A :class:`Problem` names the file (its base name only), the line and the rule;
it never quotes the file's text, so it may be shown on the healthcheck and in
logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """One finding about a policy file."""

    source: str
    line: int | None
    rule: str | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        rule = f" rule {self.rule!r}:" if self.rule is not None else ""
        return f"{where}:{rule} {self.message}"


class PolicyFileError(ValueError):
    """The policy files cannot be used; raised at the first load.

    A subclass of ``ValueError`` because that is what oslo.policy raises for a
    policy file it cannot parse, so callers written for oslo.policy still
    catch it.
    """

    def __init__(self, problems: list[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.source, p.line or 0))
        self.problems = [p for p in ordered if p.severity == "error"]
        self.warnings = [p for p in ordered if p.severity == "warning"]
        super().__init__("invalid policy: " + "; ".join(str(p) for p in self.problems))
