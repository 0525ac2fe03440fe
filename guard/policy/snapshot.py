"""One immutable, compiled revision of the policy.

A request that needs several decisions takes one snapshot and asks it all of
them, so it never sees half of an old rule set and half of a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oslo_policy import _checks, policy

from guard.policy.compiler import CompiledRule, RuleCompiler


def revision_of(
    rules: Mapping[str, _checks.BaseCheck], registered: Mapping[str, policy.RuleDefault]
) -> str:
    """A short hash naming the rule set: check trees and registered scope types."""
    canonical = {
        "rules": sorted((name, str(check)) for name, check in rules.items()),
        "scopes": sorted((name, rule.scope_types or []) for name, rule in registered.items()),
        "default": str(getattr(rules, "default_rule", None)),
    }
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class PolicySnapshot:
    """The rules in force: ``rules`` resolved, ``registered`` for scope types.

    ``rules`` is oslo.policy's ``Rules`` mapping (so a missing name falls back
    to the default rule as in oslo.policy); treat it as read-only.
    """

    rules: policy.Rules
    registered: Mapping[str, policy.RuleDefault]
    revision: str
    compiled: Mapping[str, CompiledRule] = field(repr=False)
    _compiler: RuleCompiler = field(repr=False)
    _fallback: CompiledRule | None = field(repr=False)

    @classmethod
    def build(
        cls,
        rules: Mapping[str, _checks.BaseCheck],
        default_rule: Any,
        registered: Mapping[str, policy.RuleDefault],
        enforcer: Any,
    ) -> PolicySnapshot:
        """Freeze copies of ``rules`` and ``registered`` and compile every rule."""
        frozen = policy.Rules(dict(rules), default_rule)
        frozen_registered = dict(registered)
        compiler = RuleCompiler(frozen, enforcer)
        compiled = {name: compiler.compile(name, check) for name, check in frozen.items()}
        try:
            fallback_check = frozen.__missing__("")
        except KeyError:
            fallback_check = None
        fallback = (
            compiler.compile(None, fallback_check)
            if isinstance(fallback_check, _checks.BaseCheck)
            else None
        )
        return cls(
            rules=frozen,
            registered=frozen_registered,
            revision=revision_of(frozen, frozen_registered),
            compiled=compiled,
            _compiler=compiler,
            _fallback=fallback,
        )

    def compiled_rule(self, name: Any) -> CompiledRule | None:
        """The rule evaluated for ``name``: its own, the default rule, or ``None``.

        The default rule is compiled once; it is recompiled under ``name``
        only when it holds a delegated check, which receives the rule name.
        """
        compiled = self.compiled.get(name)
        if compiled is not None or self._fallback is None:
            return compiled
        if not self._fallback.delegates:
            return self._fallback
        return self._compiler.compile(name, self.rules[name])
