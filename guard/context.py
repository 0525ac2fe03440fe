"""guard's request context: who is asking, and the one question it may ask.

A subclass of oslo.context's ``RequestContext`` so that oslo.policy, oslo.log
and keystonemiddleware-aware code treat it as they treat any OpenStack
context. It sits at the bottom of guard's layers, so it does not import the
policy engine: the edge hands it the enforcer to ask.
"""

from __future__ import annotations

from typing import Any, Protocol

from oslo_context import context as oslo_context

from guard import exception

_MASK = "***"


class Authorizer(Protocol):
    """What :meth:`RequestContext.can` needs of a policy enforcer."""

    def authorize(
        self, rule: str, target: dict[str, Any], creds: Any, do_raise: bool = ..., **kwargs: Any
    ) -> bool: ...


class RequestContext(oslo_context.RequestContext):
    """An oslo.context request context that can ask the policy engine."""

    def __init__(self, *args: Any, enforcer: Authorizer | None = None, **kwargs: Any) -> None:
        # overwrite=False: guard never relies on oslo.context's thread-local
        # "current context"; each call receives its context explicitly. (The
        # middleware sets it per request, for oslo.log's formatters only.)
        kwargs.setdefault("overwrite", False)
        super().__init__(*args, **kwargs)
        self.enforcer = enforcer

    def can(self, action: str, target: dict[str, Any] | None = None, fatal: bool = True) -> bool:
        """Ask whether this caller may perform ``action`` on ``target``.

        ``target`` is the object acted upon (for consumers: the row's owners),
        never the caller's own ids. With ``fatal`` a denial raises
        :class:`guard.exception.Forbidden`; otherwise it returns ``False``.
        Without an enforcer every action is denied (fail closed).
        """
        if self.enforcer is None:
            allowed = False
        else:
            allowed = bool(self.enforcer.authorize(action, target or {}, self, do_raise=False))
        if not allowed and fatal:
            raise exception.Forbidden()
        return allowed

    def to_dict(self) -> dict[str, Any]:
        """Return the context as a dict, with the caller's tokens masked.

        oslo.context's own ``to_dict()`` carries the raw token, and it is what
        oslo.log and notification code serialize.
        """
        values = super().to_dict()
        if values.get("auth_token"):
            values["auth_token"] = _MASK
        return values

    def get_logging_values(self) -> dict[str, Any]:
        """Logging values, with both the user and the service token masked."""
        values = super().get_logging_values()
        if self.service_token:
            values["service_token"] = _MASK
        return values
