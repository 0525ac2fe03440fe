"""The scope check of a rule: does the token's scope match the rule's ``scope_types``?

oslo.policy checks a registered rule's ``scope_types`` against the caller's
token scope before it evaluates the rule (``Enforcer._enforce_scope``); guard
does the same, reading the configuration only when the scopes differ, since
almost every decision matches.
"""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping
from typing import Any

from oslo_policy import policy

from guard.policy.compiler import token_scope


def scope_allows(
    enforcer: policy.Enforcer, creds: MutableMapping[str, Any], rule: Any, do_raise: bool
) -> bool:
    """oslo.policy's ``_enforce_scope``, without its cost on the common path.

    Before oslo.policy 6, ``[oslo_policy] enforce_scope = False`` lets a
    mismatched scope through with a warning; it is read only on a mismatch.
    """
    scope_types = rule.scope_types
    if not scope_types:
        return True
    scope = token_scope(creds)
    if scope in scope_types:
        return True
    enforced = getattr(enforcer.conf.oslo_policy, "enforce_scope", True)
    if enforced and do_raise:
        raise policy.InvalidScope(rule, scope_types, scope)
    if "enforce_scope" in enforcer.conf.oslo_policy:  # oslo.policy < 6 also warns
        warnings.warn(
            f"Policy {rule} failed scope check. The token used to make the request "
            f"was {scope} scoped but the policy requires {scope_types} scope. This "
            f"behavior may change in the future where using the intended scope is "
            f"required",
            stacklevel=3,
        )
    return not enforced
