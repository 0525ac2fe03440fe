"""Compile a policy rule, for one caller, into a SQL condition over rows.

A list must return exactly the rows that ``enforce(rule, row, creds)`` allows,
and it must page and count in the database, so the rule is compiled once per
request with the caller's credentials bound in. What depends only on the
credentials (roles, literals, values looked up in the credentials) becomes a
constant; what depends on the row (``%(project_id)s`` and the other target
keys) becomes a comparison of a column with bound parameters. The result is
three-way: always allowed, always denied, or a condition; a fourth answer,
``per_row``, says that a part of the rule cannot be expressed in SQL (an
http or custom check, an unusual format string) and the caller must evaluate
the rule row by row.

Semantics are oslo.policy's (``oslo_policy/_checks.py``), check for check:

* ``GenericCheck`` ``kind:match``: ``match`` is %-formatted with the *target*
  (a missing key makes the check false; ``None`` formats as ``'None'``), then
  compared with ``str()`` of ``kind`` read as a Python literal, or else of the
  value at the dotted path ``kind`` in the *credentials* (any list element on
  the way may match).
* ``RoleCheck`` ``role:match``: ``match`` formatted with the target,
  compared case-insensitively with the caller's roles.
* ``RuleCheck`` resolves the named rule (an unknown one is false); ``and``,
  ``or`` and ``not`` map over.
* The action's registered ``scope_types`` must include the token's scope
  (system, domain or project), as ``Enforcer.enforce`` requires.

Every condition produced is two-valued (never SQL ``NULL``), so ``NOT`` in
SQL means what ``not`` means in Python even over a nullable column.

Several rules that must all allow a row (a list shows a row only when the
list rule *and* the show rule allow it) are compiled one by one and joined
with :func:`conjoin`: the parts SQL can express become one condition, and
only the rules it cannot are left to :func:`per_row_check`.
:class:`guard.policy.filtercache.FilterCache` keeps what is compiled per
policy snapshot and credentials, since compiling costs a good part of a
list page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from oslo_context import context as oslo_context
from oslo_policy import _checks
from sqlalchemy import String, and_, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from guard.db import models
from guard.policy.compiler import NOT_A_LITERAL, literal_value, lookup_rule, token_scope

Kind = Literal["allow", "deny", "condition", "per_row"]

# %(name)s, a literal %%, or anything else that starts with % (not compiled).
_FORMAT_TOKEN_RE = re.compile(r"%\((?P<key>[^()]*)\)s|(?P<percent>%%)|(?P<other>%)")


@dataclass(frozen=True)
class RowFilter:
    """What a rule means for one caller over a table's rows.

    ``kind`` is ``"allow"`` (every row), ``"deny"`` (no row: do not query),
    ``"condition"`` (the rows where ``condition`` holds) or ``"per_row"``
    (the rows where ``condition`` holds, when there is one, and that each
    rule named in ``per_row`` allows, evaluated row by row; ``reason`` names
    those rules and the checks that could not be compiled).
    """

    kind: Kind
    condition: ColumnElement[bool] | None = None
    reason: str | None = None
    per_row: tuple[str, ...] = ()


ALLOW = RowFilter("allow")
DENY = RowFilter("deny")


class _NotCompilable(Exception):
    """A check whose meaning cannot be expressed as a SQL condition."""


@dataclass(frozen=True)
class _PerRow:
    """A compiled part that must be evaluated row by row, and why."""

    reason: str


# A compiled check: True/False when the row does not matter, a condition when
# it does, or _PerRow when SQL cannot say.
_Compiled = bool | ColumnElement[bool] | _PerRow


def policy_creds(creds: Any) -> dict[str, Any]:
    """The credentials dict ``Enforcer.enforce`` evaluates for ``creds``.

    A request context becomes its ``to_policy_values()``; ``system`` mirrors
    ``system_scope`` as oslo.policy sets it.
    """
    if isinstance(creds, oslo_context.RequestContext):
        values = dict(creds.to_policy_values().items())
    else:
        values = dict(creds)
    if values.get("system_scope"):
        values["system"] = values["system_scope"]
    return values


def compile_filter(
    snapshot: Any, action: str, creds: Any, columns: Mapping[str, ColumnElement[Any]]
) -> RowFilter:
    """Compile rule ``action`` of ``snapshot`` for ``creds`` into a :class:`RowFilter`.

    ``snapshot`` has ``.rules`` (name -> oslo check) and ``.registered``
    (name -> ``RuleDefault``). ``columns`` maps each target key the caller
    puts in a row's target (``project_id``, ``user_id``, ``consumer_type``,
    ``uuid``) to the column expression holding it; a key the rule formats
    that is not among them is a key missing from the target.
    """
    return compile_values(snapshot, action, policy_creds(creds), columns)


def compile_values(
    snapshot: Any,
    action: str,
    values: Mapping[str, Any],
    columns: Mapping[str, ColumnElement[Any]],
) -> RowFilter:
    """:func:`compile_filter` for credentials already made :func:`policy_creds` values."""
    if not snapshot.rules:
        return DENY  # Enforcer.enforce: no rules at all fails closed
    rule = lookup_rule(snapshot.rules, action)
    if rule is None:
        return DENY
    registered = snapshot.registered.get(action)
    scope_types = getattr(registered, "scope_types", None)
    if scope_types and token_scope(values) not in scope_types:
        return DENY
    compiled = _Compiler(snapshot.rules, values, columns).compile(rule)
    if isinstance(compiled, _PerRow):
        return RowFilter(
            "per_row", reason=f"rule {action!r}: {compiled.reason}", per_row=(action,)
        )
    if compiled is True:
        return ALLOW
    if compiled is False:
        return DENY
    return RowFilter("condition", condition=compiled)


def conjoin(*filters: RowFilter) -> RowFilter:
    """The rows that every one of ``filters`` allows.

    The rules are independent decisions, so their order does not matter:
    a row passes when each allows it (a rule that raises on a row denies it).
    """
    if any(row_filter.kind == "deny" for row_filter in filters):
        return DENY
    conditions = [f.condition for f in filters if f.condition is not None]
    condition = (
        None if not conditions else conditions[0] if len(conditions) == 1 else and_(*conditions)
    )
    per_row = tuple(action for f in filters for action in f.per_row)
    if per_row:
        reason = "; ".join(f.reason for f in filters if f.reason)
        return RowFilter("per_row", condition=condition, reason=reason, per_row=per_row)
    if condition is None:
        return ALLOW
    return RowFilter("condition", condition=condition)


def per_row_check(
    snapshot: Any, row_filter: RowFilter, creds: Any
) -> Callable[[Mapping[str, Any]], bool]:
    """Whether the rules ``row_filter`` leaves to Python allow one row's target.

    Evaluates ``snapshot``'s compiled rules as ``Enforcer.enforce`` does once
    the scope check (done by :func:`compile_filter`) passed, without a
    decision-log line per row: a list is one decision. An exception a rule
    raises on a row escapes, for the caller to count and deny.
    """
    values = policy_creds(creds)
    rules = [snapshot.compiled_rule(action) for action in row_filter.per_row]

    def check(target: Mapping[str, Any]) -> bool:
        return all(rule is not None and rule.evaluate(target, values) for rule in rules)

    return check


class _Compiler:
    """Compiles one check tree for one set of credentials."""

    def __init__(
        self,
        rules: Mapping[str, _checks.BaseCheck],
        creds: Mapping[str, Any],
        columns: Mapping[str, ColumnElement[Any]],
    ) -> None:
        self.rules = rules
        self.creds = creds
        self.columns = columns
        self._resolving: list[str] = []

    def compile(self, check: _checks.BaseCheck) -> _Compiled:
        try:
            return self._compile(check)
        except _NotCompilable as error:
            return _PerRow(str(error))

    def _compile(self, check: _checks.BaseCheck) -> _Compiled:
        kind = type(check)
        if kind is _checks.TrueCheck:
            return True
        if kind is _checks.FalseCheck:
            return False
        if kind is _checks.AndCheck:
            return _combine([self.compile(rule) for rule in check.rules], False, and_)
        if kind is _checks.OrCheck:
            return _combine([self.compile(rule) for rule in check.rules], True, or_)
        if kind is _checks.NotCheck:
            inner = self.compile(check.rule)
            if isinstance(inner, _PerRow):
                return inner
            return (not inner) if isinstance(inner, bool) else not_(inner)
        if kind is _checks.RuleCheck:
            return self._rule(check.match)
        if kind is _checks.RoleCheck:
            return self._role(check.match)
        if kind is _checks.GenericCheck:
            return self._generic(check.kind, check.match)
        raise _NotCompilable(f"{type(check).__name__} cannot be evaluated in SQL")

    def _rule(self, name: str) -> _Compiled:
        rule = lookup_rule(self.rules, name)
        if rule is None:
            return False  # oslo.policy: an unknown rule fails closed
        if name in self._resolving:
            raise _NotCompilable(f"rule {name!r} refers to itself")
        self._resolving.append(name)
        try:
            return self.compile(rule)
        finally:
            self._resolving.pop()

    def _role(self, match: str) -> _Compiled:
        template = _Template.parse(match)
        if not template.keys_present(self.columns):
            return False
        if "roles" not in self.creds:
            return False
        try:
            roles = sorted({role.lower() for role in self.creds["roles"]})
        except (AttributeError, TypeError) as error:
            raise _NotCompilable("roles that are not strings") from error
        return template.matches_any(roles, self.columns, lowercase=True)

    def _generic(self, kind: str, match: str) -> _Compiled:
        template = _Template.parse(match)
        if not template.keys_present(self.columns):
            return False
        return template.matches_any(sorted(self._left_values(kind)), self.columns)

    def _left_values(self, kind: str) -> set[str]:
        """The strings a generic check's left side can equal, for these credentials."""
        try:
            value = literal_value(kind)
        except Exception as error:  # oslo.policy lets these escape enforce()
            raise _NotCompilable(f"check kind {kind!r} is not a valid literal") from error
        if value is not NOT_A_LITERAL:
            return {str(value)}
        try:
            return set(_find_in_creds(self.creds, kind.split(".")))
        except Exception as error:  # e.g. indexing into a string: raises in enforce()
            raise _NotCompilable(f"credential path {kind!r} cannot be followed") from error


def _combine(
    parts: list[_Compiled], decisive: bool, join: Callable[..., ColumnElement[bool]]
) -> _Compiled:
    """``and`` (``decisive=False``, ``and_``) or ``or`` (``True``, ``or_``) of ``parts``.

    oslo.policy's left-to-right short circuit is kept: the first constant
    equal to ``decisive`` decides only if no per-row part comes before it
    (that part would have been evaluated first, and it may raise); the other
    constants drop out.
    """
    conditions: list[ColumnElement[bool]] = []
    for part in parts:
        if part is decisive or isinstance(part, _PerRow):
            return part
        if part is not (not decisive):
            conditions.append(part)
    if not conditions:
        return not decisive
    return conditions[0] if len(conditions) == 1 else join(*conditions)


def _find_in_creds(value: Any, path: list[str]) -> Iterator[str]:
    """Every ``str()`` of what ``path`` reaches in ``value`` (GenericCheck._find_in_dict)."""
    if not path:
        yield str(value)
        return
    try:
        value = value[path[0]]
    except KeyError:
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        yield from _find_in_creds(item, path[1:])


@dataclass(frozen=True)
class _Template:
    """A check's right side: literal text and ``%(key)s`` placeholders."""

    pieces: tuple[str, ...]  # literal, key, literal, key, ..., literal

    @classmethod
    def parse(cls, match: str) -> _Template:
        pieces: list[str] = []
        literal_text: list[str] = []
        position = 0
        for token in _FORMAT_TOKEN_RE.finditer(match):
            literal_text.append(match[position : token.start()])
            position = token.end()
            if token.group("percent"):
                literal_text.append("%")
            elif token.group("other"):
                raise _NotCompilable("a format other than %(key)s")
            else:
                pieces.extend(["".join(literal_text), token.group("key")])
                literal_text = []
        literal_text.append(match[position:])
        pieces.append("".join(literal_text))
        return cls(tuple(pieces))

    @property
    def keys(self) -> tuple[str, ...]:
        return self.pieces[1::2]

    def keys_present(self, columns: Mapping[str, Any]) -> bool:
        """Whether formatting succeeds (oslo.policy: a missing key makes the check false)."""
        return all(key in columns for key in self.keys)

    def matches_any(
        self,
        values: list[str],
        columns: Mapping[str, ColumnElement[Any]],
        *,
        lowercase: bool = False,
    ) -> _Compiled:
        """The rows whose formatted template is one of ``values``."""
        if not values:
            return False
        keys = self.keys
        if not keys:
            text = self.pieces[0].lower() if lowercase else self.pieces[0]
            return text in values
        if len(keys) == 1 and not lowercase:
            return self._strip_match(values, columns[keys[0]])
        return self._concat_match(values, columns, lowercase=lowercase)

    def _strip_match(self, values: list[str], column: ColumnElement[Any]) -> _Compiled:
        """One placeholder: compare the column itself, so that its index is used."""
        prefix, _key, suffix = self.pieces
        candidates = sorted(
            {
                value[len(prefix) : len(value) - len(suffix)]
                for value in values
                if len(value) >= len(prefix) + len(suffix)
                and value.startswith(prefix)
                and value.endswith(suffix)
            }
        )
        if not candidates:
            return False
        condition: ColumnElement[bool] = and_(
            column.is_not(None),
            column == candidates[0] if len(candidates) == 1 else column.in_(candidates),
        )
        if "None" in candidates:  # str(None) == 'None': a NULL column matches too
            condition = or_(column.is_(None), condition)
        return condition

    def _concat_match(
        self,
        values: list[str],
        columns: Mapping[str, ColumnElement[Any]],
        *,
        lowercase: bool,
    ) -> _Compiled:
        """Several placeholders (or a role): build the formatted string in SQL."""
        if lowercase and not all(piece.isascii() for piece in self.pieces[::2]):
            # SQL lower() folds ASCII only; row values are ASCII (validated).
            raise _NotCompilable("a non-ASCII role template")
        text: ColumnElement[Any] = literal(self.pieces[0], String)
        for index in range(1, len(self.pieces), 2):
            column = func.coalesce(columns[self.pieces[index]], literal("None", String))
            text = text + column + literal(self.pieces[index + 1], String)
        if lowercase:
            text = models.fold_case(text)
        return text.in_(values)


__all__ = [
    "ALLOW",
    "DENY",
    "RowFilter",
    "compile_filter",
    "compile_values",
    "conjoin",
    "per_row_check",
    "policy_creds",
    "token_scope",
]
