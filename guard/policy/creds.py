"""The credentials a decision reads: oslo.policy's dict, from a context or a dict.

oslo.policy's ``Enforcer.enforce()`` accepts an oslo.context
``RequestContext``, a dict, or a context's ``to_policy_values()`` and turns
them into one mutable dict of credentials, adding ``system`` for a
system-scoped caller. guard does the same, with one shortcut where it is
measured to matter (see :func:`context_creds`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from oslo_context import context
from oslo_policy import _checks, policy

_OSLO_CONTEXT_CREDS = policy.Enforcer._map_context_attributes_into_creds
_PolicyValues = context._DeprecatedPolicyValues


def context_creds(
    enforcer: policy.Enforcer, ctx: context.RequestContext
) -> MutableMapping[str, Any]:
    """oslo's ``_map_context_attributes_into_creds(ctx)`` as one dict copy (the same dict).

    oslo copies key by key through an abstract base class: half of a decision on a
    context (guard.tools.bench.policy). Where the result may differ (the method
    overridden or replaced, other values, deprecated keys whose reads warn) it is called.
    """
    if type(enforcer)._map_context_attributes_into_creds is _OSLO_CONTEXT_CREDS:
        values = ctx.to_policy_values()
        if type(values) is _PolicyValues and not values._deprecated:
            return dict(values._data)
    return enforcer._map_context_attributes_into_creds(ctx)


def creds_dict(enforcer: policy.Enforcer, creds: _checks.CredsT) -> MutableMapping[str, Any]:
    """The credentials ``enforcer`` decides on, as oslo.policy's ``enforce()`` makes them."""
    if isinstance(creds, context.RequestContext):
        values = context_creds(enforcer, creds)
    elif isinstance(creds, MutableMapping):
        values = creds
    else:
        raise policy.InvalidContextObject(
            f"Expected type oslo_context.context.RequestContext, dict, or the output of "
            f"oslo_context.context.RequestContext.to_policy_values but got "
            f"{type(creds)} instead"
        )
    if values.get("system_scope"):
        values["system"] = values.get("system_scope")
    return values
