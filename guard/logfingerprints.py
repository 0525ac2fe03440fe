"""Keyed fingerprints of ids, ``<id:xxxxxxxx>``, and the process's key.

A log line shows an id as a keyed HMAC-SHA256 of its normal form, so one id
can be followed across lines and hosts sharing ``[guard] fingerprint_key``
without being revealed. The key is the process's: :func:`use_key` sets the
configured one (:func:`guard.log.install` does); without one, a random key is
drawn on first use and a notice logged once, since such fingerprints match
nothing in another process.

Stdlib only, with its patterns (:mod:`guard.logpatterns`): it sits at the
bottom of guard's layers, beside :mod:`guard.log`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import threading

from guard import logpatterns as patterns

# The notice is about the redaction of logs: it is logged as guard.log's.
LOG = logging.getLogger("guard.log")

#: Values up to this length are cached: ids are short, and a cache keyed by
#: anything longer would let clients fill memory.
CACHED_VALUE_LEN = 80
# Characters hashed at a time (a slice's UTF-8 stays small).
_HASH_SLICE = 8192
_KEY_OPTION = "[guard] fingerprint_key"


class Fingerprinter:
    """Turns an id into ``<id:xxxxxxxx>``, a keyed HMAC-SHA256 of its normal form.

    Hex ids (uuids, keystone ids) are lowercased and stripped of dashes
    first, so every spelling of one id has one fingerprint. Only id-sized
    values are cached (a bounded number of short strings); a longer value
    (a client's 150 KB path segment) is hashed each time and never kept.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        # A request logs the same few ids over and over.
        self._cached = functools.lru_cache(maxsize=4096)(self._compute)

    def __call__(self, value: str) -> str:
        if len(value) <= CACHED_VALUE_LEN:
            return self._cached(value)
        return self._compute(value)

    def _compute(self, value: str) -> str:
        if patterns.HEX_ID_RE.fullmatch(value):
            value = value.replace("-", "").lower()
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        # In slices: a long value (a client's path segment) is never copied
        # whole into bytes, so hashing it adds no large allocation.
        for start in range(0, len(value), _HASH_SLICE):
            mac.update(value[start : start + _HASH_SLICE].encode("utf-8", "surrogatepass"))
        return f"<id:{mac.hexdigest()[:8]}>"


_state_lock = threading.Lock()
_fingerprinter: Fingerprinter | None = None


def _current_fingerprinter() -> Fingerprinter:
    """The fingerprinter in use; the first call without a key draws one, announced once."""
    global _fingerprinter
    fingerprinter = _fingerprinter
    if fingerprinter is not None:
        return fingerprinter
    with _state_lock:
        fingerprinter = _fingerprinter
        drew_key = fingerprinter is None
        if fingerprinter is None:
            fingerprinter = _fingerprinter = Fingerprinter(os.urandom(32))
    if drew_key:
        _announce_random_key()
    return fingerprinter


def _announce_random_key() -> None:
    LOG.warning(
        "No %s configured: ids are fingerprinted with a random per-process key, so "
        "<id:...> fingerprints will not match across processes or restarts.",
        _KEY_OPTION,
    )


def fingerprint(value: str) -> str:
    """Return ``<id:xxxxxxxx>``, the keyed fingerprint of an id.

    The same id gives the same fingerprint whatever its case or dashes, in
    every process that shares the configured key.
    """
    return (_fingerprinter or _current_fingerprinter())(value)


def fingerprinter() -> Fingerprinter:
    """The fingerprinter in use: a new one when the key changes (caches of fingerprints)."""
    return _fingerprinter or _current_fingerprinter()


def use_key(key: bytes | str | None) -> None:
    """Fingerprint with ``key`` (``[guard] fingerprint_key``) from now on.

    A new key replaces the old one. ``None`` keeps the key in use, or draws a
    random one (with the notice) when there is none yet; so does an empty
    key (``fingerprint_key =`` left blank) or one of whitespace only (quoted:
    ``fingerprint_key = "   "``), which would be an HMAC anyone can compute:
    a log's fingerprints of names and known ids could be matched by whoever
    reads it.
    """
    global _fingerprinter
    if not key or not key.strip():
        _current_fingerprinter()
        return
    with _state_lock:
        _fingerprinter = Fingerprinter(key.encode() if isinstance(key, str) else key)
