"""guard's policy engine: oslo.policy's language and decisions, compiled and hot-reloaded.

:func:`make_enforcer` is how guard builds its enforcer; :func:`get_enforcer`
is the ``oslo.policy.enforcer`` entry point used by the stock oslo.policy
tools (``oslopolicy-validator --namespace guard`` and friends).
"""

from __future__ import annotations

from oslo_config import cfg

from guard.policies import list_rules
from guard.policy.enforcer import Enforcer
from guard.policy.errors import PolicyFileError, Problem
from guard.policy.explain import Explanation
from guard.policy.reload import Clock
from guard.policy.snapshot import PolicySnapshot
from guard.policy.tools import ToolEnforcer

__all__ = [
    "Enforcer",
    "Explanation",
    "PolicyFileError",
    "PolicySnapshot",
    "Problem",
    "get_enforcer",
    "make_enforcer",
]


def _set_guard_defaults(conf: cfg.ConfigOpts) -> None:
    """guard's oslo.policy defaults: new defaults only, and scope enforced.

    With them a system-scoped token fails guard's project-scoped rules
    (docs/api.md). oslo.policy 6 always enforces scope and has no
    ``enforce_scope`` option any more; older releases do.
    """
    conf.set_default("enforce_new_defaults", True, group="oslo_policy")
    if "enforce_scope" in conf.oslo_policy:
        conf.set_default("enforce_scope", True, group="oslo_policy")


def make_enforcer(
    conf: cfg.ConfigOpts, policy_file: str | None = None, clock: Clock | None = None
) -> Enforcer:
    """An enforcer with guard's defaults registered and the policy files loaded now.

    Raises :class:`PolicyFileError` (naming rule and line) when the policy
    files are invalid: a service must not start on rules its operator did not
    mean. The enforcer uses guard's fail-closed file handling
    (:meth:`Enforcer.fail_closed`); ``Enforcer`` on its own behaves as
    oslo.policy's. ``clock`` is for tests.
    """
    enforcer = Enforcer(conf, policy_file=policy_file)
    enforcer.fail_closed(clock)
    _set_guard_defaults(conf)
    enforcer.register_defaults(list_rules())
    enforcer.load_rules()
    return enforcer


def get_enforcer() -> Enforcer:
    """The ``oslo.policy.enforcer`` entry point: an enforcer on ``cfg.CONF``.

    The oslo.policy tools parse their command line (``--config-file``) into
    ``cfg.CONF`` before they call this; they load the rules themselves, as
    oslo.policy does (:class:`guard.policy.tools.ToolEnforcer`).
    """
    enforcer = ToolEnforcer(cfg.CONF)
    _set_guard_defaults(cfg.CONF)
    enforcer.register_defaults(list_rules())
    return enforcer
