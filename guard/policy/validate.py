"""Whole-file validation of operator policy files, before any rule is used.

oslo.policy turns a check string it cannot parse into a silent deny-all and a
YAML error into a ``ValueError`` at request time. guard checks a file whole
first: YAML, the shape of the document, every check string, references to
undefined rules and reference cycles. Each finding names the file, line and
rule (never the file's text), so it can be logged and shown on the healthcheck.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from oslo_policy import _checks

from guard.policy.checkstrings import KEY_NAME, value_problem
from guard.policy.depth import MAX_DEPTH, rule_depths, walk
from guard.policy.errors import Problem

_TEMPLATE = re.compile(r"%\(([^()]*)\)")

#: The keys guard puts in every decision's target (the consumer row).
TARGET_KEYS = ("project_id", "user_id", "consumer_type", "uuid")
#: The last word of the rules that guard write actions (a write allowed to all is warned about).
WRITE_ACTIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class FileRules:
    """The rules one policy file defines, with the line of each."""

    source: str
    check_strings: dict[str, str | list] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Names defined with an unusable value (reported in ``problems``).
    invalid: set[str] = field(default_factory=set)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# A valid rule is a string or a list of lists of strings: the root mapping,
# two lists, a string. Deeper is refused before PyYAML's composer, which
# recurses once per level, builds it.
_MAX_YAML_DEPTH = 8
# Quoted in PyYAML's messages and shown: one punctuation character, an escaped
# control character, or a token kind such as <block end>.
_YAML_TOKEN = re.compile(r"[^\w\s]|\\[a-z]|\\x[0-9a-f]{2}|<[a-z ]+>")


@dataclass(frozen=True)
class _Key:
    """A top-level key as PyYAML read it."""

    line: int
    name: str
    #: Written in quotes, as guard's sample writes rule names.
    quoted: bool


@dataclass(frozen=True)
class _Outline:
    """The file's top-level keys with their lines, read from PyYAML's event stream."""

    keys: list[_Key]
    #: Whether a read stopped in the last key's entry (else: between two entries).
    in_value: bool

    def blame(self, line: int | None, in_entry: bool) -> tuple[str | None, str | None]:
        """The rule a problem at ``line`` lies in, else the rule before it.

        The entry's key is named only when it is quoted: an unquoted word that
        starts a broken line may be anything (a value, an id), not a rule name.
        """
        keys = [key for key in self.keys if line is None or key.line <= line]
        if in_entry and keys and keys[-1].quoted:
            return keys[-1].name, None
        if in_entry:
            keys = keys[:-1]
        return None, keys[-1].name if keys else None


def _line(mark: Any) -> int | None:
    """The 1-based line of a PyYAML mark, if there is one."""
    return mark.line + 1 if mark is not None else None


def _outline(text: str) -> tuple[_Outline, yaml.YAMLError | None, int | None]:
    """Read the top-level keys without building the document (PyYAML's parser is iterative).

    Returns the outline, the YAML error that stopped the read (if any) and
    the line of a value nested deeper than any rule (if any).
    """
    keys: list[_Key] = []
    depth = 0
    entries = 0  # nodes completed in the root collection: a key at each even count
    last_line = 0  # where the last event read ends
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            last_line = _line(event.end_mark) or last_line
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_YAML_DEPTH:
                    return _Outline(keys, entries % 2 == 1), None, _line(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                entries += depth == 1
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)) and depth == 1:
                if entries % 2 == 0 and isinstance(event, yaml.ScalarEvent):
                    quoted = event.style in ("'", '"')
                    keys.append(_Key(_line(event.start_mark) or 0, event.value, quoted))
                entries += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        on_last_line = mark is not None and mark.line + 1 <= last_line
        return _Outline(keys, entries % 2 == 1 or on_last_line), exc, None
    return _Outline(keys, False), None, None


def _quoted_yaml_text(found: re.Match[str]) -> str:
    """What a YAML message quotes: kept when it is punctuation or a token kind, else hidden."""
    return found.group(0) if _YAML_TOKEN.fullmatch(found.group(0)[1:-1]) else "'...'"


def _yaml_problem(source: str, outline: _Outline, exc: yaml.YAMLError, read: bool) -> Problem:
    """A YAML error, named by the rule it lies in (by its key, never the line's text).

    ``read`` says the error stopped the outline's read: it lies in the last
    key's entry, or between two entries. When no rule can be blamed, the
    message names the rule before the error.
    """
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    reason = getattr(exc, "problem", None) or "the file is not valid YAML"
    # The parser quotes what it found (a tag, an alias, a character): that is the
    # file's text, which a problem never carries.
    reason = _QUOTED.sub(_quoted_yaml_text, reason)
    rule, before = outline.blame(line, in_entry=not read or outline.in_value)
    after = f" after rule {before!r}" if before is not None else ""
    return Problem(source, line, rule, f"YAML error{after}: {reason}")


def parse_policy_text(text: str, source: str) -> FileRules:
    """Parse one policy file's ``text``; ``source`` names it in problems."""
    outline, error, too_deep = _outline(text)
    if error is not None:
        return FileRules(source, problems=[_yaml_problem(source, outline, error, read=True)])
    if too_deep is not None:
        rule, before = outline.blame(too_deep, in_entry=True)
        after = f" (after rule {before!r})" if before is not None else ""
        message = f"the value nests deeper than any rule can{after}; a rule is a string"
        return FileRules(source, problems=[Problem(source, too_deep, rule, message)])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return FileRules(source, problems=[_yaml_problem(source, outline, exc, read=False)])
    if data is None:
        return FileRules(source)
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        return FileRules(
            source,
            problems=[Problem(source, 1, None, "the file must map rule names to check strings")],
        )
    rules = FileRules(source)
    for key_node, _value_node in root.value:
        line = key_node.start_mark.line + 1
        name = key_node.value
        if name in rules.lines:
            rules.problems.append(
                Problem(source, line, name, "defined twice; this later line wins", "warning")
            )
        rules.lines[name] = line
    for name, value in data.items():
        if not isinstance(name, str):
            line = rules.lines.get(str(name))
            rules.problems.append(Problem(source, line, None, "a rule name must be a string"))
            continue
        reason = value_problem(value)
        if reason:
            rules.problems.append(Problem(source, rules.lines.get(name), name, reason))
            rules.invalid.add(name)
            continue
        rules.check_strings[name] = value
    return rules


def referenced_rules(check: _checks.BaseCheck) -> set[str]:
    """Names of the rules that ``check`` refers to with ``rule:<name>``."""
    return {node.match for node, _ in walk(check) if isinstance(node, _checks.RuleCheck)}


def _cyclic(graph: Mapping[str, set[str]]) -> set[str]:
    """The names on a cycle of ``graph``: Tarjan's strongly connected components, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()

    def visit(name: str) -> tuple[str, Iterator[str]]:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        return name, iter(sorted(graph[name] & graph.keys()))

    for root in graph:
        if root in index:
            continue
        work = [visit(root)]
        while work:
            name, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    work.append(visit(successor))
                    break
                if successor in on_stack:
                    low[name] = min(low[name], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[name])
                if low[name] == index[name]:
                    component = {name}
                    while (member := stack.pop()) != name:
                        component.add(member)
                    on_stack.difference_update(component)
                    if len(component) > 1 or name in graph[name]:
                        cyclic |= component
    return cyclic


def _depth_problems(
    rules: Mapping[str, _checks.BaseCheck],
    graph: Mapping[str, set[str]],
    origins: Mapping[str, tuple[str, int | None]],
) -> list[Problem]:
    """Rules whose decisions nest deeper than guard evaluates, blamed on the operator's rules.

    Only the outermost such rules are named (those no other too-deep rule
    refers to): a chain of 5,000 references is one problem, not 5,000. A
    registered rule made too deep by the files is reported at the operator's
    rule on its deepest path.
    """
    depths = rule_depths(rules)
    too_deep = {name for name in rules if depths.get(name, 0) > MAX_DEPTH}
    inner = set().union(*(graph[name] for name in too_deep)) if too_deep else set()
    problems: dict[str, Problem] = {}
    for name in sorted((too_deep - inner) or too_deep):
        blamed = _deepest_origin(name, graph, depths, origins)
        if blamed is None or blamed in problems:
            continue
        through = "" if blamed == name else f"rule {name!r}, through it, "
        problems[blamed] = Problem(
            *origins[blamed],
            blamed,
            f"{through}nests {depths[name]} levels deep in rule: references and operators; "
            f"guard evaluates at most {MAX_DEPTH}",
        )
    return list(problems.values())


def _deepest_origin(
    name: str,
    graph: Mapping[str, set[str]],
    depths: Mapping[str, int],
    origins: Mapping[str, tuple[str, int | None]],
) -> str | None:
    """The first operator rule on ``name``'s deepest path of references, if any."""
    seen: set[str] = set()
    while name not in origins:
        seen.add(name)
        onward = [ref for ref in graph.get(name, ()) if ref in depths and ref not in seen]
        if not onward:
            return None
        name = max(onward, key=lambda ref: (depths[ref], ref))
    return name


def _allows_everyone(
    check: _checks.BaseCheck, rules: Mapping[str, _checks.BaseCheck], memo: dict[str, bool]
) -> bool:
    """Whether ``check`` allows any caller on any target (``""``, ``@``, ``not !``, through
    references; ``memo``: rule name -> whether it does).

    Recursive: called only on rule sets whose depth was checked.
    """
    return _always(check, rules, {True: memo, False: {}}, True)


def _always(
    check: _checks.BaseCheck,
    rules: Mapping[str, _checks.BaseCheck],
    memos: dict[bool, dict[str, bool]],
    value: bool,
) -> bool:
    """Whether ``check`` is ``value`` for every caller and target, as far as its form tells.

    ``not`` flips what is asked of its operand: ``not !`` allows everyone as
    ``@`` does, and validate said nothing of it on a write rule.
    """
    kind = type(check)
    if kind is _checks.TrueCheck:
        return value
    if kind is _checks.FalseCheck:
        return not value
    if isinstance(check, _checks.NotCheck):
        return _always(check.rule, rules, memos, not value)
    if isinstance(check, (_checks.OrCheck, _checks.AndCheck)):
        combine = any if (kind is _checks.OrCheck) == value else all
        return combine(_always(child, rules, memos, value) for child in check.rules)
    if isinstance(check, _checks.RuleCheck) and check.match in rules:
        name, memo = check.match, memos[value]
        if name not in memo:
            memo[name] = False  # a cycle proves nothing
            memo[name] = _always(rules[name], rules, memos, value)
        return memo[name]
    return False


def _write_warnings(
    rules: Mapping[str, _checks.BaseCheck],
    graph: Mapping[str, set[str]],
    origins: Mapping[str, tuple[str, int | None]],
) -> list[Problem]:
    """A write rule that allows everyone, at the operator's rule that makes it so."""
    memo: dict[str, bool] = {}
    problems = []
    writes = [name for name in rules if name.rsplit(":", 1)[-1] in WRITE_ACTIONS]
    for write in sorted(writes):
        if not _allows_everyone(rules[write], rules, memo):
            continue
        culprits = (
            [write]
            if write in origins
            else sorted(
                name for name in _reaches(graph, write) if name in origins and memo.get(name)
            )
        )
        for culprit in culprits[:1]:
            what = "a write rule that" if culprit == write else f"rule {write!r}, through it,"
            problems.append(
                Problem(
                    *origins[culprit],
                    culprit,
                    f'{what} allows everyone ("" and "@" allow any caller on any consumer)',
                    "warning",
                )
            )
    return problems


def _reaches(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(graph.get(start, ()))
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(graph.get(name, ()))
    return seen


def _target_key_warnings(
    rules: Mapping[str, _checks.BaseCheck], origins: Mapping[str, tuple[str, int | None]]
) -> list[Problem]:
    """Operator checks that format a target key guard never supplies (always false)."""
    problems = []
    for name, origin in sorted(origins.items()):
        keys: set[str] = set()
        for node, _ in walk(rules[name]):
            if isinstance(node, _checks.Check) and isinstance(node.match, str):
                keys.update(_TEMPLATE.findall(node.match))
        for key in sorted(keys - set(TARGET_KEYS)):
            shown = f"%({key})s" if KEY_NAME.fullmatch(key) else "a target key"
            problems.append(
                Problem(
                    *origin,
                    name,
                    f"{shown} is never in guard's targets (they hold "
                    f"{', '.join(TARGET_KEYS)}): that check is always false",
                    "warning",
                )
            )
    return problems


def rule_set_problems(
    rules: Mapping[str, _checks.BaseCheck],
    origins: Mapping[str, tuple[str, int | None]],
    known_names: Iterable[str],
) -> list[Problem]:
    """What is wrong with ``rules`` as a whole, for the rules in ``origins``.

    Errors: references to undefined rules, cycles of references, decisions
    nested deeper than :data:`~guard.policy.depth.MAX_DEPTH`. Warnings: write
    rules that allow everyone, target keys guard never supplies, and rule
    names neither in ``known_names`` nor referred to by another rule (likely
    a typo). ``origins`` maps the names that came from policy files to their
    file and line; rules registered in code are not the operator's to fix.
    Nothing here recurses into a rule set before its depth is known good.
    """
    graph = {name: referenced_rules(check) for name, check in rules.items()}
    referenced = set().union(*graph.values()) if graph else set()
    known = set(known_names)
    cyclic = _cyclic(graph)
    problems = []
    for name, (source, line) in sorted(origins.items()):
        for missing in sorted(graph.get(name, set()) - set(rules)):
            problems.append(Problem(source, line, name, f"refers to undefined rule {missing!r}"))
        if name in cyclic:
            problems.append(Problem(source, line, name, "is part of a cycle of rule references"))
        if name not in known and name not in referenced:
            # A typo of a rule guard knows leaves that rule at its default: name it.
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            kept = "" if not close or close[0] in origins else " that rule keeps its default"
            hint = f" (did you mean {close[0]!r}?{kept})" if close else ""
            problems.append(
                Problem(source, line, name, f"is not a rule guard knows or uses{hint}", "warning")
            )
    too_deep = _depth_problems(rules, graph, origins)
    problems += too_deep
    if not too_deep:
        problems += _write_warnings(rules, graph, origins)
    problems += _target_key_warnings(rules, origins)
    return problems
