"""Depth, cycles and honest problems of policy files, checked against independent models.

The depth bound is held against the depth of the tree oslo.policy actually
parses; cycle detection against plain reachability; YAML error reports
against the text of the bad line, which they must never carry.
"""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_policy import _checks, _parser

from guard.policy.depth import MAX_DEPTH, rule_depths, text_depth_bound
from guard.policy.validate import _cyclic, parse_policy_text, rule_set_problems

SHOW = "guard:consumers:show"
LIST = "guard:consumers:list"
CREATE = "guard:consumers:create"
KNOWN = [SHOW, LIST, CREATE, "guard:consumers:update", "guard:consumers:delete"]


def tree_depth(check: _checks.BaseCheck) -> int:
    """The depth of an oslo check tree, recursively (the model; small trees only)."""
    inner = list(getattr(check, "rules", None) or [])
    if isinstance(getattr(check, "rule", None), _checks.BaseCheck):
        inner.append(check.rule)
    return 1 + max((tree_depth(child) for child in inner), default=0)


LEAVES = st.sampled_from(["role:a", "rule:b", "project_id:%(project_id)s", "@", "!"])


def expressions(leaves: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda e: f"not {e}", inner),
            st.builds(lambda e: f"({e})", inner),
            st.builds(
                lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or"]), inner
            ),
        ),
        max_leaves=12,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(LEAVES))
def test_the_text_bound_is_never_below_the_parsed_depth(check_str: str) -> None:
    parsed = _parser.parse_rule(check_str)
    assert text_depth_bound(check_str) >= tree_depth(parsed)


def test_rule_depths_count_through_references_without_recursion() -> None:
    length = 5000
    rules = {f"r{i}": _checks.RuleCheck("rule", f"r{i + 1}") for i in range(length)}
    rules[f"r{length}"] = _checks.RoleCheck("role", "admin")
    rules["both"] = _parser.parse_rule("role:a and (rule:r4999 or not rule:r4999)")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # an accidental recursion fails loudly here
    try:
        depths = rule_depths(rules)
        bound = text_depth_bound("not " * 100_000 + "role:a")
    finally:
        sys.setrecursionlimit(limit)
    assert depths["r0"] == length + 1
    assert depths[f"r{length}"] == 1
    assert depths["r4999"] == 2
    # and, or, not and the reference itself, then r4999's own depth
    assert depths["both"] == 4 + depths["r4999"]
    assert bound > 100_000


def test_a_cycle_counts_once_and_does_not_hang() -> None:
    rules = {"a": _parser.parse_rule("rule:b"), "b": _parser.parse_rule("rule:a or role:x")}
    assert rule_depths(rules) == {"a": 4, "b": 3}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdefg"), st.sets(st.sampled_from("abcdefgh"))))
def test_cycles_are_exactly_the_names_that_reach_themselves(graph: dict[str, set[str]]) -> None:
    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        frontier = [start]
        while frontier:
            for nxt in graph.get(frontier.pop(), ()):
                if nxt in graph and nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        return seen

    assert _cyclic(graph) == {name for name in graph if name in reaches(name)}


def _problems(text: str) -> list[str]:
    parsed = parse_policy_text(text, "policy.yaml")
    checks = {name: _parser.parse_rule(value) for name, value in parsed.check_strings.items()}
    origins = {name: ("policy.yaml", parsed.lines.get(name)) for name in parsed.check_strings}
    found = parsed.problems + rule_set_problems(checks, origins, KNOWN)
    return [str(problem) for problem in found]


def test_deep_operators_are_refused_before_oslo_parses_them() -> None:
    text = (
        f'"{SHOW}": "{"not " * 5000}role:a"\n'
        f'"{LIST}": "{"(role:a and " * 5000}role:b{")" * 5000}"\n'
        f'"{CREATE}": "{"(role:a or not " * 5000}role:b{")" * 5000}"\n'
    )
    problems = _problems(text)
    assert problems == [
        f"policy.yaml:{line}: rule '{name}': its operators nest more than {MAX_DEPTH} "
        "levels deep (too deep to evaluate)"
        for line, name in ((1, SHOW), (2, LIST), (3, CREATE))
    ]


def test_a_long_chain_names_its_outermost_rule_once() -> None:
    lines = [f'"r{i}": "rule:r{i + 1}"' for i in range(5000)]
    text = "\n".join([f'"{SHOW}": "rule:r0"', *lines, '"r5000": "role:admin"']) + "\n"
    assert _problems(text) == [
        f"policy.yaml:1: rule '{SHOW}': nests 5002 levels deep in rule: references and "
        f"operators; guard evaluates at most {MAX_DEPTH}"
    ]


def test_a_registered_rule_made_too_deep_is_blamed_on_the_operators_rule() -> None:
    # Each rule alone stays within the limit; the registered rule above them does not.
    lines = [f'"r{i}": "rule:r{i + 1}"' for i in range(MAX_DEPTH - 2)]
    text = "\n".join(['"admin": "rule:r0"', *lines, f'"r{MAX_DEPTH - 2}": "role:a"']) + "\n"
    parsed = parse_policy_text(text, "p.yaml")
    checks = {name: _parser.parse_rule(value) for name, value in parsed.check_strings.items()}
    checks[LIST] = _parser.parse_rule("role:x or (role:y and rule:admin)")
    origins = {name: ("p.yaml", parsed.lines[name]) for name in parsed.check_strings}
    found = [str(p) for p in rule_set_problems(checks, origins, KNOWN) if "deep" in str(p)]
    assert found == [
        f"p.yaml:1: rule 'admin': rule '{LIST}', through it, nests {MAX_DEPTH + 3} levels deep "
        f"in rule: references and operators; guard evaluates at most {MAX_DEPTH}"
    ]


def test_depth_up_to_the_limit_is_accepted() -> None:
    lines = [f'"r{i}": "rule:r{i + 1}"' for i in range(MAX_DEPTH - 2)]
    text = "\n".join([f'"{SHOW}": "rule:r0"', *lines, f'"r{MAX_DEPTH - 2}": "role:a"']) + "\n"
    assert [p for p in _problems(text) if "deep" in p] == []
    deeper = text.replace('"role:a"', '"rule:r_last"') + '"r_last": "role:a"\n'
    assert [p for p in _problems(deeper) if "deep" in p] != []


def test_deep_yaml_is_refused_before_it_is_built() -> None:
    text = f'"{SHOW}": "role:a"\n"{LIST}": {"[" * 5000}"role:a"{"]" * 5000}\n'
    assert _problems(text) == [
        f"policy.yaml:2: rule '{LIST}': the value nests deeper than any rule can; "
        "a rule is a string"
    ]


def test_validate_warns_about_writes_for_everyone_and_unknown_target_keys() -> None:
    text = (
        f'"{CREATE}": "@"\n'
        '"project_member": ""\n'
        f'"{SHOW}": "tenant_id:%(tenant_id)s or role:reader"\n'
        f'"{LIST}": "rule:project_member"\n'
    )
    problems = _problems(text)
    assert (
        f"policy.yaml:1: rule '{CREATE}': a write rule that allows everyone "
        '("" and "@" allow any caller on any consumer)'
    ) in problems
    assert (
        "policy.yaml:3: rule 'guard:consumers:show': %(tenant_id)s is never in guard's targets "
        "(they hold project_id, user_id, consumer_type, uuid): that check is always false"
    ) in problems
    # A list rule for everyone is not a write: no warning for it.
    assert not [p for p in problems if LIST in p]


def test_a_write_rule_opened_through_a_base_rule_is_warned_at_that_rule() -> None:
    text = '"project_member": "@"\n"guard:consumers:delete": "rule:project_member"\n'
    problems = _problems(text)
    assert problems == [
        "policy.yaml:2: rule 'guard:consumers:delete': a write rule that allows everyone "
        '("" and "@" allow any caller on any consumer)'
    ]
    registered = {
        "guard:consumers:update": _parser.parse_rule("rule:admin or rule:project_member")
    }
    checks = {"project_member": _parser.parse_rule(""), "admin": _parser.parse_rule("role:admin")}
    found = rule_set_problems({**registered, **checks}, {"project_member": ("p.yaml", 4)}, [])
    assert [str(p) for p in found] == [
        "p.yaml:4: rule 'project_member': rule 'guard:consumers:update', through it, allows "
        'everyone ("" and "@" allow any caller on any consumer)'
    ]


def test_a_template_without_its_s_is_named_as_such() -> None:
    assert _problems(f'"{SHOW}": "role:reader and project_id:%(project_id)"\n') == [
        f"policy.yaml:1: rule '{SHOW}': %(project_id) lacks the 's' that ends a target "
        "template: write %(project_id)s"
    ]


SECRETS = st.from_regex(r"zzsecret[a-z0-9]{4,12}", fullmatch=True)
# Lines where the secret is no rule's key (a key is how a problem names a rule).
BAD_LINES = [
    "{secret}\n",  # a bare word where a key is expected
    "{secret}: [oops\n",  # a word at the start of a broken line is not named as a rule
    "  {secret}: x: y\n",
    "{secret}: !!python/object:os.system x\n",
    '"guard:consumers:create": [{secret}, oops\n',  # an unclosed flow sequence
    '"guard:consumers:create": {secret}: oops\n',
    '"guard:consumers:create": \'{secret}\n',  # an unterminated quote
    '"guard:consumers:create": !!python/object:{secret} x\n',
    '"guard:consumers:create": "@" {secret}\n',
    '"guard:consumers:create": !{secret} x\n',
]


@settings(max_examples=200, deadline=None)
@given(SECRETS, st.sampled_from(BAD_LINES), st.integers(0, 2))
def test_yaml_errors_never_carry_the_bad_lines_text(secret: str, bad: str, where: int) -> None:
    good = [f'"{SHOW}": "role:admin"\n', f'"{LIST}": "role:admin"\n']
    lines = [*good[:where], bad.format(secret=secret), *good[where:]]
    parsed = parse_policy_text("".join(lines), "policy.yaml")
    assert parsed.problems, lines
    for problem in parsed.problems:
        assert secret not in str(problem)
        assert problem.rule in (None, SHOW, LIST, CREATE)
        assert problem.line is not None


def test_a_yaml_error_inside_a_rule_names_that_rule_and_line() -> None:
    parsed = parse_policy_text(f'"{SHOW}": "role:admin"\n"{LIST}": rule:admin: oops\n', "p.yaml")
    assert [str(p) for p in parsed.problems] == [
        f"p.yaml:2: rule '{LIST}': YAML error: mapping values are not allowed here"
    ]
    between = parse_policy_text(f'"{SHOW}": "role:a"\nacme-secret\n"{LIST}": "@"\n', "p.yaml")
    assert [str(p) for p in between.problems] == [
        f"p.yaml:3: YAML error after rule '{SHOW}': could not find expected ':'"
    ]
    unquoted = parse_policy_text(f'"{SHOW}": "role:a"\nacme-secret: [x\n', "p.yaml")
    assert [str(p) for p in unquoted.problems] == [
        f"p.yaml:3: YAML error after rule '{SHOW}': expected ',' or ']', but got '<stream end>'"
    ]


def test_a_key_that_is_not_a_string_is_refused_without_echoing_it() -> None:
    parsed = parse_policy_text(f'"{SHOW}": "@"\n98765432: "@"\n', "p.yaml")
    assert [str(p) for p in parsed.problems] == ["p.yaml:2: a rule name must be a string"]
