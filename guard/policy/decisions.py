"""One decision on a compiled snapshot, as oslo.policy's ``enforce()`` makes it, and its report.

:func:`decide` is the body shared by ``Enforcer.enforce()``, ``authorize()``
and ``authorize_in()``: the credentials as oslo.policy builds them, the rule's
scope check, the compiled rule's answer, and oslo.policy's exceptions when
``do_raise`` asks for them. When the enforcer has a decision log, each
decision is reported to it with the rule branch that decided (:func:`record`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import Any

from oslo_policy import _checks, policy

from guard.policy.creds import creds_dict as make_creds
from guard.policy.scope import scope_allows
from guard.policy.snapshot import PolicySnapshot

# The name this line had before it moved out of guard.policy.enforcer: log
# configurations that name it keep working.
LOG = logging.getLogger("guard.policy.enforcer")


def decide(
    enforcer: Any,
    snap: PolicySnapshot,
    rule: _checks.BaseCheck | str,
    target: _checks.TargetT,
    creds: _checks.CredsT,
    do_raise: bool,
    exc: type[Exception] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """oslo.policy's decision on ``snap``: ``True``/``False``, or its exception.

    ``enforcer`` is guard's Enforcer: its configuration, context mapping and
    ``decision_log``; oslo.policy's own checks receive it too.
    """
    creds_dict = make_creds(enforcer, creds)
    log = enforcer.decision_log
    started = time.perf_counter() if log is not None else 0.0
    branch = "denied"
    if isinstance(rule, _checks.BaseCheck):
        if not scope_allows(enforcer, creds_dict, rule, do_raise):
            record(log, snap, rule, False, "scope", creds, creds_dict, target, started)
            return False
        result = _checks._check(rule, target, creds_dict, enforcer, None)
        branch = "check"
    elif not snap.rules:
        result = False
        branch = "no_rules"
    else:
        compiled = snap.compiled_rule(rule)
        if compiled is None:
            result = False
            branch = "undefined_rule"
        else:
            registered = snap.registered.get(rule)
            if registered is not None and not scope_allows(
                enforcer, creds_dict, registered, do_raise
            ):
                record(log, snap, rule, False, "scope", creds, creds_dict, target, started)
                return False
            if log is None:
                result = compiled.evaluate(target, creds_dict)
            else:
                result, index = compiled.decide_with_branch(target, creds_dict)
                if index is not None:
                    branch = compiled.branches[index][0]
                elif result:
                    branch = compiled.label
    if log is not None:
        record(log, snap, rule, result, branch, creds, creds_dict, target, started)
    if do_raise and not result:
        if exc:
            raise exc(*args, **kwargs)
        raise policy.PolicyNotAuthorized(rule, target, creds_dict)
    return result


def record(
    log: Any,
    snap: PolicySnapshot,
    rule: Any,
    allowed: Any,
    branch: str,
    creds: Any,
    creds_dict: MutableMapping[str, Any],
    target: Any,
    started: float,
) -> None:
    """Report one decision; a failing decision log never fails the request."""
    if log is None:
        return
    try:
        log.record(
            action=rule if isinstance(rule, str) else "<check>",
            allowed=bool(allowed),
            branch=branch,
            creds=creds_dict,
            target=target,
            revision=snap.revision,
            microseconds=int((time.perf_counter() - started) * 1e6),
            request_id=getattr(creds, "request_id", None) or creds_dict.get("request_id"),
            global_request_id=(
                getattr(creds, "global_request_id", None) or creds_dict.get("global_request_id")
            ),
        )
    except Exception:  # the decision stands whatever the log does
        LOG.debug("The decision log failed to record a decision", exc_info=True)
