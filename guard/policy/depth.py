"""How deep a rule goes, measured without recursion, so too-deep rules are refused.

Every evaluator of a rule walks it recursively: oslo.policy's parser (one
frame per ``not``), its reference evaluator (two or three frames per level,
and a ``RecursionError`` inside ``inspect`` surfaces as a ``TypeError``),
guard's compiler, ``explain``, the SQL filter compiler and SQLAlchemy's own
statement compiler. A rule set whose decisions nest deeper than
:data:`MAX_DEPTH` levels (operators and ``rule:`` references together) is
therefore a bad policy file, refused when it is loaded, so no walker ever
meets one. The functions here are iterative: they measure any input.

Measured (a chain of ``rule:`` references, and ``not``/``and``/``or``
nesting, evaluated 150 frames down a stack as a request is): oslo.policy's
evaluator and the SQL filter fail from about 200 levels. :data:`MAX_DEPTH`
keeps a fourfold margin; real policies nest fewer than ten.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from oslo_policy import _checks, _parser

#: The deepest decision guard accepts: nodes on the longest path of a rule's
#: tree, counting through ``rule:`` references.
MAX_DEPTH = 50


def children(check: _checks.BaseCheck) -> list[_checks.BaseCheck]:
    """The checks ``check`` combines (``and``/``or`` operands, the ``not`` operand)."""
    found = list(getattr(check, "rules", None) or ())
    inner = getattr(check, "rule", None)
    if isinstance(inner, _checks.BaseCheck):
        found.append(inner)
    return [child for child in found if isinstance(child, _checks.BaseCheck)]


def walk(check: _checks.BaseCheck) -> Iterator[tuple[_checks.BaseCheck, int]]:
    """Every node of ``check``'s tree (references not followed) with its depth (root: 1)."""
    pending = [(check, 1)]
    while pending:
        node, depth = pending.pop()
        yield node, depth
        pending.extend((child, depth + 1) for child in reversed(children(node)))


def text_depth_bound(check_str: str) -> int:
    """An upper bound of the depth of the tree oslo.policy parses ``check_str`` into.

    Read from oslo.policy's tokens without parsing (its parser recurses once
    per ``not``): each open parenthesis may add an ``or`` and an ``and``
    level, each pending ``not`` one level, the check itself one.
    """
    pending_nots = [0]  # per open parenthesis: the nots waiting for their operand
    worst = 0
    for raw in _parser._tokenize_re.split(check_str):
        token = raw.lstrip("(")
        pending_nots.extend([0] * (len(raw) - len(token)))
        clean = token.rstrip(")")
        word = clean.lower()
        if word == "not":
            pending_nots[-1] += 1
        elif clean and word not in ("and", "or"):
            worst = max(worst, 2 * len(pending_nots) + sum(pending_nots) + 1)
            pending_nots[-1] = 0
        for _ in range(len(token) - len(clean)):
            if len(pending_nots) > 1:
                pending_nots.pop()
            pending_nots[-1] = 0  # the group was the operand of the nots before it
    return worst


def rule_depths(rules: Mapping[str, _checks.BaseCheck]) -> dict[str, int]:
    """Each rule's depth counting through ``rule:`` references (as evaluation goes).

    A reference to a rule not in ``rules`` counts as one level; a reference
    back into a cycle counts as one level too (cycles are refused on their own).
    """
    # For each rule: the depth of its own tree, and the depth of each reference in it.
    local: dict[str, tuple[int, list[tuple[int, str]]]] = {}
    for name, check in rules.items():
        own, references = 0, []
        for node, depth in walk(check):
            own = max(own, depth)
            if isinstance(node, _checks.RuleCheck) and node.match in rules:
                references.append((depth, node.match))
        local[name] = (own, references)

    depths: dict[str, int] = {}
    on_path: set[str] = set()
    for start in rules:
        if start in depths:
            continue
        stack = [start]
        on_path.add(start)
        while stack:
            name = stack[-1]
            waiting = [
                ref for _, ref in local[name][1] if ref not in depths and ref not in on_path
            ]
            if waiting:
                stack.append(waiting[0])
                on_path.add(waiting[0])
                continue
            own, references = local[name]
            through = (depth + depths.get(ref, 1) for depth, ref in references)
            depths[name] = max(own, *through) if references else own
            on_path.discard(stack.pop())
    return depths
