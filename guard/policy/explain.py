"""Why a rule allowed or denied: the evaluation tree with each check's result.

For operators (``guard policy explain``) and logs, never for clients: it shows
rule structure. The evaluation follows oslo.policy's order and short-circuits
(operands not evaluated are shown as skipped); leaves are evaluated by
oslo.policy's own check objects, so the result is the enforcer's.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from oslo_policy import _checks

from guard.policy.compiler import branch_label, lookup_rule, token_scope
from guard.policy.creds import creds_dict as make_creds
from guard.policy.depth import MAX_DEPTH
from guard.policy.snapshot import PolicySnapshot


@dataclass
class ExplainNode:
    """One check: its label, result (``None`` when skipped) and why."""

    label: str
    result: bool | None
    note: str = ""
    children: list[ExplainNode] = field(default_factory=list)

    def render(self, depth: int = 0) -> list[str]:
        mark = {True: "yes", False: "no", None: "skipped"}[self.result]
        note = f"  ({self.note})" if self.note else ""
        lines = [f"{'  ' * depth}- {self.label}: {mark}{note}"]
        for child in self.children:
            lines.extend(child.render(depth + 1))
        return lines


@dataclass
class Explanation:
    """The explained decision of ``action``."""

    action: str
    allowed: bool
    revision: str
    deciding_branch: str
    root: ExplainNode | None = None
    note: str = ""

    def __str__(self) -> str:
        verdict = "ALLOWED" if self.allowed else "DENIED"
        head = f"{self.action}: {verdict} by {self.deciding_branch} (revision {self.revision})"
        lines = [head]
        if self.note:
            lines.append(f"  {self.note}")
        if self.root is not None:
            lines.extend(self.root.render(1))
        return "\n".join(lines)


class _Explainer:
    def __init__(self, snapshot: PolicySnapshot, enforcer: Any, action: str) -> None:
        self._rules = snapshot.rules
        self._enforcer = enforcer
        self._action = action
        self._depth = 0

    def visit(
        self,
        check: _checks.BaseCheck,
        target: Mapping[str, Any],
        creds: MutableMapping[str, Any],
        stack: tuple[int, ...],
    ) -> ExplainNode:
        kind = type(check)
        if self._depth >= MAX_DEPTH:
            # Only rules set through oslo's API nest this deep (guard.policy.depth).
            result = bool(_checks._check(check, target, creds, self._enforcer, self._action))
            return ExplainNode(branch_label(check), result, "too deep to explain further")
        self._depth += 1
        try:
            return self._visit_node(kind, check, target, creds, stack)
        finally:
            self._depth -= 1

    def _visit_node(
        self,
        kind: type,
        check: Any,
        target: Mapping[str, Any],
        creds: MutableMapping[str, Any],
        stack: tuple[int, ...],
    ) -> ExplainNode:
        if kind in (_checks.AndCheck, _checks.OrCheck):
            return self._boolean(check, target, creds, stack)
        if kind is _checks.NotCheck:
            inner = self.visit(check.rule, target, creds, stack)
            return ExplainNode(branch_label(check), not inner.result, children=[inner])
        if kind is _checks.RuleCheck:
            return self._reference(check, target, creds, stack)
        result = bool(_checks._check(check, target, creds, self._enforcer, self._action))
        note = "" if result else _leaf_note(check, target, creds)
        return ExplainNode(branch_label(check), result, note)

    def _boolean(self, check: Any, target: Any, creds: Any, stack: tuple[int, ...]) -> ExplainNode:
        deciding = type(check) is _checks.OrCheck  # an "or" stops at True, an "and" at False
        children: list[ExplainNode] = []
        result = not deciding
        for child in check.rules:
            if result is deciding:
                children.append(ExplainNode(branch_label(child), None))
                continue
            node = self.visit(child, target, creds, stack)
            children.append(node)
            if node.result is deciding:
                result = deciding
        name = "or" if deciding else "and"
        return ExplainNode(name, result, children=children)

    def _reference(
        self, check: _checks.RuleCheck, target: Any, creds: Any, stack: tuple[int, ...]
    ) -> ExplainNode:
        label = branch_label(check)
        referenced = lookup_rule(self._rules, check.match)
        if referenced is None:
            return ExplainNode(label, False, "undefined rule")
        if id(referenced) in stack:
            return ExplainNode(label, False, "reference cycle; not expanded")
        inner = self.visit(referenced, target, creds, (*stack, id(referenced)))
        return ExplainNode(label, inner.result, children=[inner])


def _leaf_note(
    check: _checks.BaseCheck, target: Mapping[str, Any], creds: Mapping[str, Any]
) -> str:
    """Which key did not match, without showing any value."""
    if not isinstance(check, _checks.Check):
        return ""
    try:
        check.match % target
    except KeyError as exc:
        return f"the target has no {exc.args[0]!r}"
    except (TypeError, ValueError):
        return "the right side cannot be formatted from the target"
    if isinstance(check, _checks.RoleCheck):
        return "the caller holds no such role" if "roles" in creds else "the caller has no roles"
    if type(check) is _checks.GenericCheck:
        head = check.kind.split(".")[0]
        if head not in creds:
            return f"the caller's credentials have no {head!r}"
        return f"the caller's {check.kind!r} differs"
    return ""


def explain(
    enforcer: Any, snapshot: PolicySnapshot, action: str, target: Mapping[str, Any], creds: Any
) -> Explanation:
    """Explain ``action`` on ``target`` for ``creds`` under ``snapshot``."""
    creds_dict = dict(make_creds(enforcer, dict(creds) if isinstance(creds, Mapping) else creds))
    registered = snapshot.registered.get(action)
    if registered is not None and registered.scope_types:
        scope = token_scope(creds_dict)
        if scope not in registered.scope_types:
            return Explanation(
                action,
                False,
                snapshot.revision,
                "scope",
                note=f"a {scope}-scoped token; the rule requires {registered.scope_types}",
            )
    if not snapshot.rules:
        return Explanation(action, False, snapshot.revision, "no_rules", note="no rules loaded")
    check = lookup_rule(snapshot.rules, action)
    if check is None:
        return Explanation(action, False, snapshot.revision, "undefined_rule", note="no such rule")
    root = _Explainer(snapshot, enforcer, action).visit(check, target, creds_dict, (id(check),))
    allowed = bool(root.result)
    branch = "denied"
    if allowed and type(check) is _checks.OrCheck:
        branch = next(c.label for c in root.children if c.result)
    elif allowed:
        branch = branch_label(check)
    return Explanation(action, allowed, snapshot.revision, branch, root)
