"""guard's default policy rules, kept as data in the top-level ``policies/`` YAML files.

Each file is a list of entries with ``name``, ``check_str``, ``description``
and optionally ``operations``, ``scope_types`` and ``deprecated_rule``
(``name``, ``check_str``, ``deprecated_reason``, ``deprecated_since``).
Entries with operations become oslo.policy ``DocumentedRuleDefault`` objects,
the base rules they refer to plain ``RuleDefault`` objects (as in Nova and
Placement). :func:`list_rules` is the ``oslo.policy.policies`` entry point,
so ``oslopolicy-sample-generator --namespace guard`` documents these rules.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from oslo_policy import policy

# The top-level policies/ directory, as installed (pyproject.toml maps it).
DEFAULTS_PACKAGE = "guard.policies.defaults"
# Files in the order their rules are listed (base personas first).
DEFAULT_FILES = ("base.yaml", "consumers.yaml")

_ENTRY_KEYS = {"name", "check_str", "description", "operations", "scope_types", "deprecated_rule"}
_DEPRECATED_KEYS = {"name", "check_str", "deprecated_reason", "deprecated_since"}


class InvalidDefaultsFile(ValueError):
    """A defaults file does not follow the documented schema."""


def _deprecated_rule(source: str, entry_name: str, data: Any) -> policy.DeprecatedRule:
    if not isinstance(data, dict) or set(data) != _DEPRECATED_KEYS:
        raise InvalidDefaultsFile(
            f"{source}: deprecated_rule of {entry_name} needs exactly the keys "
            f"{sorted(_DEPRECATED_KEYS)}"
        )
    return policy.DeprecatedRule(
        name=data["name"],
        check_str=data["check_str"],
        deprecated_reason=data["deprecated_reason"],
        deprecated_since=str(data["deprecated_since"]),
    )


def _rule_default(source: str, entry: Any) -> policy.RuleDefault:
    if not isinstance(entry, dict) or not {"name", "check_str", "description"} <= set(entry):
        raise InvalidDefaultsFile(f"{source}: each entry needs name, check_str and description")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise InvalidDefaultsFile(f"{source}: {entry['name']} has unknown keys {sorted(unknown)}")
    deprecated = entry.get("deprecated_rule")
    kwargs: dict[str, Any] = {
        "name": entry["name"],
        "check_str": entry["check_str"],
        "description": entry["description"],
        "scope_types": entry.get("scope_types"),
        "deprecated_rule": (
            _deprecated_rule(source, entry["name"], deprecated) if deprecated else None
        ),
    }
    if entry.get("operations"):
        return policy.DocumentedRuleDefault(operations=entry["operations"], **kwargs)
    return policy.RuleDefault(**kwargs)


def load_rule_defaults(text: str, source: str = "<defaults>") -> list[policy.RuleDefault]:
    """Parse one defaults file's ``text`` into oslo.policy rule defaults."""
    entries = yaml.safe_load(text) or []
    if not isinstance(entries, list):
        raise InvalidDefaultsFile(f"{source}: expected a list of rule entries")
    return [_rule_default(source, entry) for entry in entries]


def list_rules() -> list[policy.RuleDefault]:
    """Return guard's default rules, in documentation order."""
    package = resources.files(DEFAULTS_PACKAGE)
    rules: list[policy.RuleDefault] = []
    for filename in DEFAULT_FILES:
        rules.extend(load_rule_defaults(package.joinpath(filename).read_text("utf-8"), filename))
    return rules
