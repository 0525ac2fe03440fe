"""A bounded cache of what is compiled for one policy snapshot and one caller's credentials.

Compiling rules into SQL (:mod:`guard.policy.sqlfilter`) for every list
request would cost more than a third of a 50-row page; the same caller, or
another with the same credential values, asks again and again under one
policy revision.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, Generic, TypeVar

from guard.policy.sqlfilter import policy_creds

T = TypeVar("T")


class FilterCache(Generic[T]):
    """What ``build(snapshot, values)`` makes of one snapshot and one caller's credentials.

    ``build`` compiles rules for credentials (``sqlfilter.compile_values``) into
    whatever the caller needs (for a list: two filters joined); the cache
    hands the same answer to the next call with the same snapshot and equal
    credential values. Measured need: compiling the list and show rules cost
    more than a third of a 50-row list page, and a caller's credentials
    repeat from request to request. Entries are kept for one snapshot only
    (a reload starts afresh) and at most ``max_entries`` of them (then it
    starts afresh too), so memory stays bounded whoever calls. Credentials
    that cannot be a key (objects a service put in its policy values) are
    compiled every time.
    """

    def __init__(
        self, build: Callable[[Any, Mapping[str, Any]], T], max_entries: int = 1024
    ) -> None:
        self._build = build
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._snapshot: Any = None
        self._entries: dict[Hashable, T] = {}

    def get(self, snapshot: Any, creds: Any) -> T:
        """``build(snapshot, policy_creds(creds))``, from the cache when it can."""
        values = policy_creds(creds)
        key = _key(values)
        if key is None:
            return self._build(snapshot, values)
        with self._lock:
            if self._snapshot is snapshot and key in self._entries:
                return self._entries[key]
        built = self._build(snapshot, values)
        with self._lock:
            if self._snapshot is not snapshot or len(self._entries) >= self._max_entries:
                self._snapshot = snapshot
                self._entries = {}
            self._entries[key] = built
        return built


# Value types whose repr() tells apart every two values that compile apart
# (True, 1, '1' and 'True' all differ).
_PLAIN_TYPES: Final = frozenset({str, bool, int, float, type(None)})


def _key(values: Mapping[str, Any]) -> Hashable | None:
    """A cache key equal only for credential values that compile alike; ``None`` if none.

    oslo.context's values (strings, ``None``, booleans, lists of strings)
    take the fast way, their ``repr``; anything nested goes through
    :func:`_freeze`.
    """
    for value in values.values():
        kind = type(value)
        if kind in _PLAIN_TYPES:
            continue
        if kind is list and all(type(item) is str for item in value):
            continue
        return _freeze(values)
    return repr(values)


def _freeze(value: Any) -> Hashable | None:
    """A hashable stand-in equal only for values that compile alike; ``None`` if there is none.

    Scalars keep their type (``True``, ``1`` and ``'1'`` differ: a rule sees
    their ``str()``); dicts and lists become tuples, in order. Anything else
    (an object a service put in its policy values) has no stand-in.
    """
    if type(value) is str:
        return value
    if type(value) in _PLAIN_TYPES:
        return (type(value).__name__, value)
    if isinstance(value, Mapping):
        pairs = tuple((key, _freeze(item)) for key, item in value.items())
        return None if any(frozen is None for _, frozen in pairs) else ("dict", pairs)
    if isinstance(value, list | tuple):
        items = tuple(_freeze(item) for item in value)
        return None if any(frozen is None for frozen in items) else (type(value).__name__, items)
    return None


__all__ = ["FilterCache"]
