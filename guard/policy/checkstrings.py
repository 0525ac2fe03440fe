"""Why a check string (or an old list rule) of a policy file is unusable.

oslo.policy turns a check string it cannot parse into a silent deny-all, and
parses some that raise or never match on every decision (a ``%`` that is not
a target template, a generic check's left side ``ast.literal_eval`` cannot
read). These checks find them before any rule is used, in words that name the
fault but never the file's text; :mod:`guard.policy.validate` adds the file,
line and rule.
"""

from __future__ import annotations

import re

from oslo_policy import _checks, _external, _parser

from guard.policy.compiler import literal_value
from guard.policy.depth import MAX_DEPTH, text_depth_bound, walk

_QUOTES = {('"', '"'), ("'", "'")}
_OPERATORS = {"and", "or", "not"}
# "%(project_id)" at the end of a check: oslo's tokenizer takes its ")" for a
# closing parenthesis, so the real cause would show as unbalanced parentheses.
_TEMPLATE_WITHOUT_CONVERSION = re.compile(r"%\(([^()]*)\)(?=$|[\s)])")
#: A key or kind that may be named in a finding: a plain identifier, never the file's text.
KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
# A check's match with its target templates (%(key)s) and literal %% taken
# out: any "%" left over (%(key)d, %(key)r, %(key)5s, a lone %) makes
# oslo.policy's ``match % target`` raise or never equal a credential.
_FORMATTED_PARTS = re.compile(r"%\([^()]*\)s|%%")


def check_string_problem(check_str: str) -> str | None:
    """Why ``check_str`` does not parse, or ``None`` when it does.

    Mirrors oslo.policy's tokenizer (``_parser._parse_tokenize``) and runs its
    own reducer, so that a string oslo.policy would turn into a deny-all is
    reported instead. The empty string is oslo.policy's "always allow".
    """
    if check_str == "":
        return None
    if text_depth_bound(check_str) > MAX_DEPTH:
        return f"its operators nest more than {MAX_DEPTH} levels deep (too deep to evaluate)"
    unconverted = _TEMPLATE_WITHOUT_CONVERSION.search(check_str)
    if unconverted:
        key = unconverted.group(1)
        shown = f"%({key})" if KEY_NAME.fullmatch(key) else "a target template"
        return f"{shown} lacks the 's' that ends a target template: write {shown}s"
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
        # One token object since oslo.policy 5, a (kind, value) pair before.
        state.shift(*parsed) if isinstance(parsed, tuple) else state.shift(parsed)
    try:
        parsed_check = state.result
    except ValueError:
        return "the check string does not parse (unbalanced parentheses or a missing operand)"
    return _format_problem(parsed_check)


def _format_problem(check: _checks.BaseCheck) -> str | None:
    """Why a check of ``check``'s tree raises or never matches on every decision.

    oslo.policy fills a role or generic check's match in with the target
    (``match % target``): a "%" that is not ``%(key)s`` or ``%%`` raises on
    every decision (guard then denies, row by row over a whole list) or
    makes a text no credential equals. A generic check's left side is read
    with ``ast.literal_eval``, a credential path when that raises
    ValueError: any other error (``1.2.3``, an unclosed quote) escapes on
    every decision. Both parse, so they were accepted, and the rule denied
    everyone without a word on the healthcheck. An ``http:`` or ``https:``
    check fills its URL in the same way (``('http:' + match) % target``):
    a URL-encoded ``%20`` there raised on every decision too.
    """
    for node, _depth in walk(check):
        if not isinstance(node, _checks.RoleCheck | _checks.GenericCheck | _external.HttpCheck):
            continue
        # The kind is named only when it is a plain key, never the file's text.
        shown = f"the check '{node.kind}:'" if KEY_NAME.fullmatch(node.kind) else "a check"
        if "%" in _FORMATTED_PARTS.sub("", node.match):
            return (
                f"{shown} has a '%' that is not a target template %(key)s "
                "(write %% for a literal %)"
            )
        if isinstance(node, _checks.GenericCheck):
            try:
                literal_value(node.kind)
            except Exception:  # what oslo.policy lets escape at every decision
                return (
                    "a check's left side is neither a Python literal ('p1', True, 1) "
                    "nor a credential name such as project_id"
                )
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
            problem = _format_problem(_parser._parse_check(term))
            if problem:
                return problem
    return None


def value_problem(value: object) -> str | None:
    """Why a rule's value (a check string, an old list rule, or anything else) is unusable."""
    if isinstance(value, str):
        return check_string_problem(value)
    if isinstance(value, list):
        return _list_rule_problem(value)
    return 'the value is not a check string (write "" or "@" to allow everyone)'
