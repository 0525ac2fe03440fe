"""A request's own values, scrubbed by value from every line it logs.

What a request carried (its token, its caller's name and ids) shows up in
lines where no pattern recognises it: a user name, a project id that is not
hex. :func:`request_scope` registers those values while the request runs:
each one under a secret-looking name becomes ``***``, any other its
fingerprint, wherever it stands as a word of its own. A ContextVar keeps
threads and tasks apart; :mod:`guard.log` scrubs the current scope before its
patterns run. What is cached is bounded in bytes (only small scopes, only
id-sized names), so no client can make a process grow.

Stdlib only, with its patterns and fingerprints: it sits at the bottom of
guard's layers, beside :mod:`guard.log`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import string
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from guard import logpatterns as patterns
from guard.logfingerprints import CACHED_VALUE_LEN as _CACHED_VALUE_LEN
from guard.logfingerprints import fingerprint
from guard.logpatterns import MASK

_ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)
#: The most characters a scope's values may hold for it to key a cache.
SMALL_SCOPE_CHARS = 1024


class Scope:
    """The values one request carried: secrets masked, ids fingerprinted, by value."""

    def __init__(self, secrets: tuple[str, ...], ids: tuple[str, ...]) -> None:
        # Longest first, so a value never leaves part of a longer one behind.
        self.secrets = tuple(sorted(set(secrets), key=len, reverse=True))
        self.ids = tuple(sorted(set(ids), key=len, reverse=True))
        #: Every value, for a test of a whole word (a role) against them at once.
        self.values = frozenset(self.secrets + self.ids)
        #: Whether its values are few and short enough to key a cache by it
        #: (what is cached is bounded in bytes).
        self.small = sum(map(len, self.values)) <= SMALL_SCOPE_CHARS

    def merged(self, values: Mapping[str, object] | Iterable[str]) -> Scope:
        """This scope with ``values`` added (see :func:`request_scope`)."""
        secrets, ids = list(self.secrets), list(self.ids)
        if isinstance(values, Mapping):
            for name, value in values.items():
                if isinstance(value, str) and value:
                    (secrets if is_secret_name(str(name)) else ids).append(value)
        else:
            ids.extend(value for value in values if isinstance(value, str) and value)
        return Scope(tuple(secrets), tuple(ids))

    def scrub(self, text: str) -> str:
        """``text`` with this scope's secrets masked and its ids fingerprinted."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for value in self.ids:
            if value in text:
                text = _replace_bounded(text, value, fingerprint(value))
        return text


def is_secret_name(name: str) -> bool:
    """Whether values under ``name`` are secrets.

    Names up to id size are cached (every request asks about the same few, and
    the 30-way pattern costs microseconds a name); longer ones are not kept.
    """
    if len(name) <= _CACHED_VALUE_LEN:
        return _is_short_secret_name(name)
    return patterns.SECRET_NAME_RE.search(name) is not None


@functools.lru_cache(maxsize=256)
def _is_short_secret_name(name: str) -> bool:
    return patterns.SECRET_NAME_RE.search(name) is not None


#: The scope of code outside any request: nothing to scrub.
EMPTY_SCOPE = Scope((), ())
_scopes: dict[tuple[Any, ...], Scope] = {}
_MAX_SCOPES, _SCOPE_KEY_CHARS = 1024, 1024
#: The scope of the running request (or task, or thread).
current_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar(
    "guard_log_scope", default=EMPTY_SCOPE
)


def _replace_bounded(text: str, value: str, replacement: str) -> str:
    """Replace ``value`` where it is not part of a longer ASCII word.

    Ids can be short ("p1"); replacing them inside other words would garble
    lines without hiding anything.
    """
    parts = []
    start = 0
    check_before = value[0] in _ASCII_ALNUM
    check_after = value[-1] in _ASCII_ALNUM
    while (index := text.find(value, start)) >= 0:
        end = index + len(value)
        if (check_before and index > 0 and text[index - 1] in _ASCII_ALNUM) or (
            check_after and end < len(text) and text[end] in _ASCII_ALNUM
        ):
            parts.append(text[start : index + 1])
            start = index + 1
            continue
        parts.append(text[start:index])
        parts.append(replacement)
        start = end
    parts.append(text[start:])
    return "".join(parts)


def holds_word(text: str, value: str) -> bool:
    """Whether ``value`` stands in ``text`` where :meth:`Scope.scrub` would replace it.

    That is, not as part of a longer ASCII word ("p" is not in "consumers").
    """
    return _replace_bounded(text, value, "") != text if value in text else False


@contextlib.contextmanager
def request_scope(values: Mapping[str, object] | Iterable[str]) -> Iterator[None]:
    """Scrub a request's own values by value while the block runs.

    ``values`` is either a mapping from names to values, where a value under a
    secret-looking name (``auth_token``, ``service_token``, ...) becomes ``***``
    and any other becomes its fingerprint, or an iterable of values, each of
    which becomes its fingerprint (never shown, as for a token). Scopes nest;
    a ContextVar keeps threads and tasks apart.
    """
    token = current_scope.set(_merged(current_scope.get(), values))
    try:
        yield
    finally:
        current_scope.reset(token)


def _merged(current: Scope, values: Mapping[str, object] | Iterable[str]) -> Scope:
    """``current.merged(values)``; a first scope from a small dict is kept and reused.

    Measured need: two scopes a request cost 6 us, and one caller's values repeat.
    """
    if current is not EMPTY_SCOPE or type(values) is not dict:
        return current.merged(values)
    try:
        scope = _scopes.get(key := tuple(values.items()))
    except TypeError:  # an unhashable value
        return current.merged(values)
    if scope is None:
        scope = current.merged(values)
        if len(repr(key)) <= _SCOPE_KEY_CHARS:  # bounded in bytes: only small scopes
            if len(_scopes) >= _MAX_SCOPES:
                _scopes.clear()
            _scopes[key] = scope
    return scope
