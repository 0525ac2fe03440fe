"""guard's request context: who is asking, and the one question it may ask.

A subclass of oslo.context's ``RequestContext`` so that oslo.policy, oslo.log
and keystonemiddleware-aware code treat it as they treat any OpenStack
context. It sits at the bottom of guard's layers, so it does not import the
policy engine: the edge hands it the enforcer to ask.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

from oslo_context import context as oslo_context

from guard import exception

_MASK = "***"
_OSLO_IDENTITY_FORMAT = "{user} {project_id} {domain} {user_domain} {p_domain}"

# oslo.context's table of the identity headers keystonemiddleware sets, each
# attribute's headers in order of precedence: the same table from_environ
# reads, ranked once so that a request looks up only the headers it carries.
_HEADER_RANKS: dict[str, tuple[str, int]] = {
    header: (attribute, rank)
    for attribute, headers in oslo_context._ENVIRON_HEADERS.items()
    for rank, header in enumerate(headers)
}
_CONTEXT_HEADERS = frozenset(_HEADER_RANKS)


def forget_current() -> None:
    """Leave this thread without a current oslo.context context.

    oslo.context keeps the last context a thread stored, and oslo.log's
    formatters put its ids and names on every later line of that thread
    logged without a context of its own: after a request, the last caller's
    (raw once the request's redaction scope has closed). oslo.context has no
    public way to clear it.
    """
    oslo_context._request_store.__dict__.pop("context", None)


class _RandomBytes:
    """Random bytes from the OS, drawn a page at a time.

    Measured need: a request id is a uuid4, and ``uuid.uuid4()`` makes a
    ``getrandom`` system call and a ``UUID`` object per request, about a
    tenth of the guard middleware's own time per request. The bytes are the
    same ``os.urandom``'s, taken in slices; a forked child draws its own.
    """

    _PAGE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._page = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._page = b""
        self._offset = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            start = self._offset
            if start + count > len(self._page):
                self._page = os.urandom(self._PAGE)
                start = 0
            self._offset = start + count
            return self._page[start : start + count]


_RANDOM = _RandomBytes()


def generate_request_id() -> str:
    """A fresh request id, ``req-<uuid4>``, as oslo.context's ``generate_request_id``."""
    raw = bytearray(_RANDOM.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"req-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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

    @classmethod
    def from_environ(cls, environ: dict[str, Any], **kwargs: Any) -> RequestContext:
        """oslo.context's ``from_environ``, reading only the headers the request carries.

        The same table, precedence and defaults as oslo's, which walks every
        attribute's headers per request (measured: a third of building a
        context); keyword arguments override the environ as there.
        """
        ranks: dict[str, int] = {}
        for header in _CONTEXT_HEADERS.intersection(environ):
            attribute, rank = _HEADER_RANKS[header]
            if attribute in kwargs and attribute not in ranks:
                continue
            if rank < ranks.get(attribute, len(_HEADER_RANKS)):
                ranks[attribute] = rank
                kwargs[attribute] = environ[header]
        if "roles" not in kwargs:
            roles = environ.get("HTTP_X_ROLES", environ.get("HTTP_X_ROLE"))
            kwargs["roles"] = [r.strip() for r in roles.split(",")] if roles else []
        if "service_roles" not in kwargs:
            roles = environ.get("HTTP_X_SERVICE_ROLES")
            kwargs["service_roles"] = [r.strip() for r in roles.split(",")] if roles else []
        if "is_admin_project" not in kwargs:
            # oslo's default: true when absent (guard's edge passes its own).
            kwargs["is_admin_project"] = (
                environ.get("HTTP_X_IS_ADMIN_PROJECT", "true").lower() == "true"
            )
        return cls(**kwargs)

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

    def to_policy_values(self) -> Any:
        """oslo.context's policy values, without those the caller does not have.

        oslo.policy compares a credential with ``str()`` of it, and
        ``str(None)`` is ``'None'``: ``project_id:%(project_id)s`` held for a
        caller without a project (an unscoped token; a proxy that sent no
        ``X-Project-Id``) on every consumer of a project named ``None``, and
        the SQL filter compiled it into ``project_id = 'None'``. A value that
        is None is left out, and a check on a credential the caller lacks is
        false (oslo.policy's rule, kept by guard's engine): no id means no
        match, never a match with the word ``None``.
        """
        values = super().to_policy_values()
        data = getattr(values, "_data", None)  # oslo.context's _DeprecatedPolicyValues
        if not isinstance(data, dict):
            return {key: value for key, value in values.items() if value is not None}
        # Its current (not deprecated) values, kept in its own type: guard's
        # engine copies them in one step (guard.policy.creds).
        values._data = {key: value for key, value in data.items() if value is not None}  # type: ignore[attr-defined]
        return values

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
        """oslo.context's logging values, with both the user and the service token masked.

        The same keys, order and values as oslo's ``get_logging_values()``
        over this class's ``to_dict()``, made in one dict. Measured need:
        oslo.log's formatter asks for them on every line of a request, and
        oslo's two dicts and three calls were a third of guard's fast path
        through it. A subclass with its own ``to_dict()`` gets oslo's way.
        """
        if type(self).to_dict is not RequestContext.to_dict:
            values = super().get_logging_values()
            if self.service_token:
                values["service_token"] = _MASK
            return values
        auth_token = self.auth_token
        user_id, project_id, domain_id = self.user_id, self.project_id, self.domain_id
        user_domain_id, project_domain_id = self.user_domain_id, self.project_domain_id
        values = {
            "user_name": self.user_name,
            "project_name": self.project_name,
            "domain_name": self.domain_name,
            "user_domain_name": self.user_domain_name,
            "project_domain_name": self.project_domain_name,
            "user": user_id,
            "project_id": project_id,
            "system_scope": self.system_scope,
            "project": project_id,
            "domain": domain_id,
            "user_domain": user_domain_id,
            "project_domain": project_domain_id,
            "is_admin": self.is_admin,
            "read_only": self.read_only,
            "show_deleted": self.show_deleted,
            "auth_token": _MASK if auth_token else None,
            "request_id": self.request_id,
            "global_request_id": self.global_request_id,
            "resource_uuid": self.resource_uuid,
            "roles": self.roles,
            "user_identity": (
                # oslo's own format, written as an f-string (str.format's
                # parser ran for this line alone); another is oslo's way.
                f"{user_id or '-'} {project_id or '-'} {domain_id or '-'} "
                f"{user_domain_id or '-'} {project_domain_id or '-'}"
                if self.user_idt_format == _OSLO_IDENTITY_FORMAT
                else self.user_idt_format.format(
                    user=user_id or "-",
                    project_id=project_id or "-",
                    domain=domain_id or "-",
                    user_domain=user_domain_id or "-",
                    p_domain=project_domain_id or "-",
                )
            ),
            "is_admin_project": self.is_admin_project,
        }
        if self.service_token:
            values["service_token"] = _MASK
        return values
