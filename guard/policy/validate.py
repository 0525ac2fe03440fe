"""Whole-file validation of operator policy files, before any rule is used.

oslo.policy turns a check string it cannot parse into a silent deny-all and a
YAML error into a ``ValueError`` at request time. guard checks a file whole
first: YAML, the shape of the document, every check string, references to
undefined rules and reference cycles. Each finding names the file, line and
rule (never the file's text), so it can be logged and shown on the healthcheck.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import yaml
from oslo_policy import _checks, _parser

from guard.policy.errors import Problem

_QUOTES = {('"', '"'), ("'", "'")}
_OPERATORS = {"and", "or", "not"}


@dataclass(frozen=True)
class FileRules:
    """The rules one policy file defines, with the line of each."""

    source: str
    check_strings: dict[str, str | list] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Names defined with an unusable value (reported in ``problems``).
    invalid: set[str] = field(default_factory=set)


def check_string_problem(check_str: str) -> str | None:
    """Why ``check_str`` does not parse, or ``None`` when it does.

    Mirrors oslo.policy's tokenizer (``_parser._parse_tokenize``) and runs its
    own reducer, so that a string oslo.policy would turn into a deny-all is
    reported instead. The empty string is oslo.policy's "always allow".
    """
    if check_str == "":
        return None
    for raw in _parser._tokenize_re.split(check_str):
        token = raw.lstrip("(")
        clean = token.rstrip(")")
        if not clean or clean.lower() in _OPERATORS:
            continue
        if len(token) >= 2 and (token[0], token[-1]) in _QUOTES:
            return "a quoted string stands where a check is expected"
        if clean not in ("@", "!") and ":" not in clean:
            return "a term is neither '@', '!' nor a check of the form kind:match"
    state = _parser.ParseState()
    for parsed in _parser._parse_tokenize(check_str):
        state.shift(parsed)
    try:
        state.result  # noqa: B018 - the property raises when the parse failed
    except ValueError:
        return "the check string does not parse (unbalanced parentheses or a missing operand)"
    return None


def _list_rule_problem(value: list) -> str | None:
    """Why a rule in oslo.policy's old list-of-lists syntax is unusable."""
    for inner in value:
        terms = [inner] if isinstance(inner, str) else inner
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            return "a list rule must hold check strings or lists of check strings"
        for term in terms:
            if term not in ("@", "!") and ":" not in term:
                return "a term is neither '@', '!' nor a check of the form kind:match"
    return None


def _value_problem(value: object) -> str | None:
    if isinstance(value, str):
        return check_string_problem(value)
    if isinstance(value, list):
        return _list_rule_problem(value)
    return 'the value is not a check string (write "" or "@" to allow everyone)'


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_KEY_AT_LINE_START = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([^\s"'#:][^:#]*?))\s*:""")


def _rule_at(text: str, line: int | None) -> str | None:
    """The rule name a YAML error's line (or the line above it) starts with."""
    if not line:
        return None
    lines = text.splitlines()
    for candidate in (line, line - 1):
        if 0 < candidate <= len(lines):
            found = _KEY_AT_LINE_START.match(lines[candidate - 1])
            if found:
                return next(group for group in found.groups() if group)
    return None


def _yaml_problem(source: str, text: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    reason = getattr(exc, "problem", None) or "the file is not valid YAML"
    # The parser quotes what it found (a tag, an alias, a character): that is the
    # file's text, which a problem never carries.
    reason = _QUOTED.sub("'...'", reason)
    return Problem(source, line, _rule_at(text, line), f"YAML error: {reason}")


def parse_policy_text(text: str, source: str) -> FileRules:
    """Parse one policy file's ``text``; ``source`` names it in problems."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return FileRules(source, problems=[_yaml_problem(source, text, exc)])
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
            rules.problems.append(Problem(source, None, str(name), "a rule name must be a string"))
            continue
        reason = _value_problem(value)
        if reason:
            rules.problems.append(Problem(source, rules.lines.get(name), name, reason))
            rules.invalid.add(name)
            continue
        rules.check_strings[name] = value
    return rules


def referenced_rules(check: _checks.BaseCheck) -> Iterator[str]:
    """Names of the rules that ``check`` refers to with ``rule:<name>``."""
    if isinstance(check, _checks.RuleCheck):
        yield check.match
    for child in getattr(check, "rules", ()):
        yield from referenced_rules(child)
    inner = getattr(check, "rule", None)
    if isinstance(inner, _checks.BaseCheck):
        yield from referenced_rules(inner)


def _reaches(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(graph.get(start, ()))
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(graph.get(name, ()))
    return seen


def reference_problems(
    rules: Mapping[str, _checks.BaseCheck],
    origins: Mapping[str, tuple[str, int | None]],
    known_names: Iterable[str],
) -> list[Problem]:
    """Undefined references and cycles among ``rules``, for rules in ``origins``.

    ``origins`` maps the names that came from policy files to their file and
    line; rules registered in code are not the operator's to fix. Rule names
    neither in ``known_names`` nor referred to by another rule are warned
    about (likely a typo), not refused.
    """
    graph = {name: set(referenced_rules(check)) for name, check in rules.items()}
    referenced = set().union(*graph.values()) if graph else set()
    known = set(known_names)
    problems = []
    for name, (source, line) in sorted(origins.items()):
        for missing in sorted(graph.get(name, set()) - set(rules)):
            problems.append(Problem(source, line, name, f"refers to undefined rule {missing!r}"))
        if name in _reaches(graph, name):
            problems.append(Problem(source, line, name, "is part of a cycle of rule references"))
        if name not in known and name not in referenced:
            problems.append(
                Problem(source, line, name, "is not a rule guard knows or uses", "warning")
            )
    return problems
