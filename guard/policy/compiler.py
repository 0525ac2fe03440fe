"""Turn oslo.policy check trees into plain Python callables, once per revision.

Why hand-written: oslo.policy evaluates a tree node by node, and each node
costs an ``inspect.getfullargspec`` call (``_checks._check``); most of an
``enforce()`` is spent there. A compiled rule is a closure per node with the
same semantics, operand for operand:

- ``and``/``or`` short-circuit left to right and return ``True``/``False``;
- ``role:`` formats its match from the target (a missing key is ``False``),
  then compares it case-insensitively with ``creds['roles']``;
- a generic check formats its right side from the target, then compares it
  with a literal left side (``ast.literal_eval``) or with the value found at
  the left side's dotted path in the creds (lists match any element);
- ``rule:`` references are resolved when compiling, through oslo's
  ``Rules`` mapping, so a missing rule falls back to the default rule exactly
  as ``Rules.__missing__`` does, and to ``False`` when there is none.

Everything else (http/https checks, custom registered checks, subclasses,
check kinds whose literal cannot be evaluated, reference cycles) is delegated
to oslo.policy's own check object through ``_checks._check``, so decisions and
exceptions stay identical.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from oslo_policy import _checks

from guard.logfingerprints import fingerprint
from guard.policy.depth import MAX_DEPTH

# A compiled check: (target, creds) -> the value oslo.policy's check returns.
Evaluator = Callable[[Mapping[str, Any], MutableMapping[str, Any]], Any]


def _always_true(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
    return True


def _always_false(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class CompiledRule:
    """A top-level rule: its evaluator and, for an ``or``, each branch's.

    ``branches`` lets the decision log name the branch that decided without
    evaluating the rule twice: the first truthy branch decides an ``or``.
    """

    name: str | None
    evaluate: Evaluator
    branches: tuple[tuple[str, Evaluator], ...]
    delegates: bool
    label: str

    def decide_with_branch(
        self, target: Mapping[str, Any], creds: MutableMapping[str, Any]
    ) -> tuple[Any, int | None]:
        """The result, and the index of the deciding ``or`` branch (or ``None``)."""
        if not self.branches:
            return self.evaluate(target, creds), None
        for index, (_label, branch) in enumerate(self.branches):
            if branch(target, creds):
                return True, index
        return False, None


class RuleCompiler:
    """Compiles the rules of one revision; safe to share between threads."""

    def __init__(self, rules: Mapping[str, _checks.BaseCheck], enforcer: Any) -> None:
        self._rules = rules
        self._enforcer = enforcer

    def compile(self, name: str | None, check: _checks.BaseCheck) -> CompiledRule:
        """Compile ``check``, evaluated as the rule called ``name``."""
        tree = _TreeCompiler(self._rules, self._enforcer, name)
        stack = (id(check),)
        evaluate = tree.compile(check, stack)
        branches: tuple[tuple[str, Evaluator], ...] = ()
        if type(check) is _checks.OrCheck and check.rules:
            branches = tuple((branch_label(c), tree.compile(c, stack)) for c in check.rules)
        return CompiledRule(name, evaluate, branches, tree.delegated, branch_label(check))


class _TreeCompiler:
    """One compilation of one top-level rule (delegated checks get its name)."""

    def __init__(
        self, rules: Mapping[str, _checks.BaseCheck], enforcer: Any, current_rule: str | None
    ) -> None:
        self._rules = rules
        self._enforcer = enforcer
        self._current_rule = current_rule
        self.delegated = False
        self._depth = 0

    def compile(self, check: Any, stack: tuple[int, ...]) -> Evaluator:
        if self._depth >= MAX_DEPTH:
            # Deeper than a loaded policy file may go (guard.policy.depth): only rules
            # set through oslo's API get here, and oslo.policy's evaluation decides them.
            return self._delegate(check)
        self._depth += 1
        try:
            return self._compile_node(check, stack)
        finally:
            self._depth -= 1

    def _compile_node(self, check: Any, stack: tuple[int, ...]) -> Evaluator:
        kind = type(check)
        if kind is _checks.TrueCheck:
            return _always_true
        if kind is _checks.FalseCheck:
            return _always_false
        if kind is _checks.NotCheck:
            return _not(self.compile(check.rule, stack))
        if kind is _checks.AndCheck:
            return _and(tuple(self.compile(c, stack) for c in check.rules))
        if kind is _checks.OrCheck:
            return _or(tuple(self.compile(c, stack) for c in check.rules))
        if kind is _checks.RuleCheck:
            return self._compile_reference(check, stack)
        if kind is _checks.RoleCheck:
            return _role(check.match)
        if kind is _checks.GenericCheck:
            compiled = _generic(check.kind, check.match)
            if compiled is not None:
                return compiled
        return self._delegate(check)

    def _compile_reference(self, check: _checks.RuleCheck, stack: tuple[int, ...]) -> Evaluator:
        referenced = lookup_rule(self._rules, check.match)
        if referenced is None:
            return _always_false
        if not isinstance(referenced, _checks.BaseCheck) or id(referenced) in stack:
            # A cycle (or an odd default rule): oslo.policy's own recursion decides.
            return self._delegate(check)
        return self.compile(referenced, (*stack, id(referenced)))

    def _delegate(self, check: _checks.BaseCheck) -> Evaluator:
        self.delegated = True
        enforcer, current_rule = self._enforcer, self._current_rule

        def delegated(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> Any:
            return _checks._check(check, target, creds, enforcer, current_rule)

        return delegated


def _not(inner: Evaluator) -> Evaluator:
    def negated(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        return not inner(target, creds)

    return negated


def _and(operands: tuple[Evaluator, ...]) -> Evaluator:
    if len(operands) == 2:
        first, second = operands

        def both(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
            return bool(first(target, creds) and second(target, creds))

        return both

    def every(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        return all(operand(target, creds) for operand in operands)

    return every


def _or(operands: tuple[Evaluator, ...]) -> Evaluator:
    if len(operands) == 2:
        first, second = operands

        def either(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
            return bool(first(target, creds) or second(target, creds))

        return either

    def any_of(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        return any(operand(target, creds) for operand in operands)

    return any_of


def _role(match: str) -> Evaluator:
    if "%" not in match:
        wanted = match.lower()

        def has_role(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
            if "roles" in creds:
                return wanted in [role.lower() for role in creds["roles"]]
            return False

        return has_role

    def has_target_role(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        try:
            formatted = match % target
        except KeyError:
            return False
        if "roles" in creds:
            return formatted.lower() in [role.lower() for role in creds["roles"]]
        return False

    return has_target_role


#: What :func:`literal_value` returns for a left side that names a credential.
NOT_A_LITERAL = object()


def literal_value(kind: str) -> Any:
    """The literal value of a generic check's left side, or ``NOT_A_LITERAL``.

    As ``GenericCheck`` reads it: a ``ValueError`` from ``ast.literal_eval``
    means the left side is a (dotted) credential key. Raises what
    ``ast.literal_eval`` raises besides ``ValueError`` (for example
    ``SyntaxError``); oslo.policy lets those escape at evaluation time.
    """
    try:
        return ast.literal_eval(kind)
    except ValueError:
        return NOT_A_LITERAL


def lookup_rule(rules: Mapping[str, _checks.BaseCheck], name: str) -> _checks.BaseCheck | None:
    """``rules[name]`` as oslo.policy's ``RuleCheck`` reads it, or ``None``.

    Indexing (not ``.get``) lets oslo's ``Rules.__missing__`` substitute the
    default rule for an unknown name; with none, the answer is ``None``.
    """
    try:
        return rules[name]
    except KeyError:
        return None


def token_scope(creds: Mapping[str, Any]) -> str:
    """The scope of the caller's token, decided as oslo.policy decides it."""
    if creds.get("system"):
        return "system"
    if creds.get("domain_id"):
        return "domain"
    return "project"


def _generic(kind: str, match: str) -> Evaluator | None:
    try:
        literal = literal_value(kind)
    except Exception:
        # Delegated, so that oslo.policy raises it at each evaluation as it does.
        return None
    if literal is not NOT_A_LITERAL:
        return _literal_equals(str(literal), match)
    path = kind.split(".")
    if len(path) == 1:
        return _creds_key_equals(kind, match)
    return _creds_path_equals(path, match)


def _format(match: str) -> Callable[[Mapping[str, Any]], str]:
    if "%" not in match:
        return lambda target: match
    return lambda target: match % target


def _literal_equals(literal: str, match: str) -> Evaluator:
    if "%" not in match:
        result = match == literal
        return _always_true if result else _always_false

    def equals_literal(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        try:
            formatted = match % target
        except KeyError:
            return False
        return formatted == literal

    return equals_literal


def _creds_key_equals(key: str, match: str) -> Evaluator:
    formatter = _format(match)

    def equals_creds_value(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        try:
            formatted = formatter(target)
        except KeyError:
            return False
        try:
            value = creds[key]
        except KeyError:
            return False
        if isinstance(value, list):
            return any(formatted == str(item) for item in value)
        return formatted == str(value)

    return equals_creds_value


def _creds_path_equals(path: list[str], match: str) -> Evaluator:
    formatter = _format(match)
    # Bound through an instance: a static method since oslo.policy 5, an
    # instance method before.
    find = _checks.GenericCheck("generic", match)._find_in_dict

    def equals_creds_path(target: Mapping[str, Any], creds: MutableMapping[str, Any]) -> bool:
        try:
            formatted = formatter(target)
        except KeyError:
            return False
        return find(creds, path, formatted)

    return equals_creds_path


def branch_label(check: _checks.BaseCheck, depth: int = 0) -> str:
    """A short, id-free label of a check, for the decision log and explain.

    ``rule:``/``role:`` references, ``@``, ``!`` and target templates are
    shown; a literal on either side (which may be a project or user id, as in
    ``'acme-billing-prod':%(project_id)s``) becomes its keyed fingerprint, as
    ids do in every log line. Operands deeper than ``MAX_DEPTH`` are ``...``.
    """
    kind = type(check)
    if depth >= MAX_DEPTH:
        return "..."
    if kind in (_checks.TrueCheck, _checks.FalseCheck, _checks.RuleCheck, _checks.RoleCheck):
        return str(check)
    if kind is _checks.NotCheck:
        return f"not {branch_label(check.rule, depth + 1)}"
    if kind in (_checks.AndCheck, _checks.OrCheck):
        joiner = " and " if kind is _checks.AndCheck else " or "
        return "(" + joiner.join(branch_label(c, depth + 1) for c in check.rules) + ")"
    if isinstance(check, _checks.Check):
        match = check.match if "%(" in check.match else fingerprint(check.match)
        left = check.kind
        if left[:1] in ("'", '"'):
            left = fingerprint(left[1:-1])
        return f"{left}:{match}"
    return type(check).__name__
