"""What the decision log keeps of one decision: bounded in bytes, the caller's values scrubbed.

:meth:`guard.audit.DecisionLog.record` runs on the request's thread and only
copies references into its queue. The queue is bounded in decisions, so each
decision must be bounded in bytes too (roles and ids are whatever the identity
headers say): an over-long text is fingerprinted at once (:func:`kept`), and at
most :data:`MAX_ROLES` roles are kept (:func:`kept_roles`). A role spelled like
one of the request's own values is scrubbed here (:func:`caller_free`), where
the request's scope is, as its other lines scrub it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guard.logfingerprints import fingerprint
from guard.logscope import current_scope

#: At most this many roles of one decision are kept, the rest counted: the
#: queue is bounded in decisions, so each decision must be bounded in bytes
#: (roles and ids are whatever the identity headers say; keystone's tokens
#: carry a few roles, of at most 255 characters, and ids of at most 64).
MAX_ROLES = 64
#: A longer text is not kept as it is: it is fingerprinted when recorded.
MAX_TEXT_CHARS = 255


def values_of(source: Any, first: str, second: str) -> tuple[Any, Any]:
    """Two values of the credentials or target: a mapping's keys or an object's attributes."""
    # A plain dict first: the ABC check of Mapping costs more than the lookups.
    if type(source) is dict or isinstance(source, Mapping):
        return source.get(first), source.get(second)
    return getattr(source, first, None), getattr(source, second, None)


class Fingerprint:
    """An id fingerprinted when it was recorded (it was too long to keep).

    Not a ``str``: it must never equal (and so never share a cached line
    with) a raw id that happens to read like a fingerprint.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def kept(value: Any) -> Any:
    """``value`` as the queue keeps it: a text too long for an id is fingerprinted now."""
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        return Fingerprint(fingerprint(value))
    return value


def kept_roles(roles: Any) -> tuple[str, ...] | list[Any]:
    """At most :data:`MAX_ROLES` roles, each bounded; the others counted."""
    if type(roles) is list or type(roles) is tuple:
        # The usual case, checked in C: a few texts, together no longer than
        # one bounded role (so each is bounded), kept as they are.
        try:
            joined = "".join(roles)
        except TypeError:  # not all texts: the general case below
            joined = None
        if joined is not None and len(roles) <= MAX_ROLES and len(joined) <= MAX_TEXT_CHARS:
            return tuple(roles)
    roles = list(roles)
    bounded: list[Any] = [kept(str(role)) for role in roles[:MAX_ROLES]]
    if len(roles) > MAX_ROLES:
        bounded.append(f"(+{len(roles) - MAX_ROLES} more)")
    return bounded


def caller_free(roles: tuple[str, ...] | list[Any]) -> tuple[str, ...] | list[Any]:
    """``roles``, a role that is one of the request's own values fingerprinted.

    Roles are names, logged readable; but one spelled like the caller's id or
    name (or token) is that value, which the request's other lines scrub; one
    that holds it as a word ("<project id>-admin") is scrubbed as they scrub it.
    Runs on the request's thread, where its scope is (guard.logscope).
    """
    scope = current_scope.get()
    values = scope.values
    if not values:
        return roles
    # A role that holds such a value as a word of its own ("p1-admin") shows
    # it too: the other lines scrub it there (guard.logscope). The usual case,
    # no value inside any role, is checked in C.
    joined = "\n".join(role for role in roles if type(role) is str)
    if not any(map(joined.__contains__, values)):
        return roles
    return [
        Fingerprint(fingerprint(role))
        if role in values
        else scope.scrub(role)
        if type(role) is str
        else role
        for role in roles
    ]
