"""Redaction of logs: ids become keyed fingerprints, secrets become ``***``.

The security reviews found consumer uuids in debug logs, and the common tools
fall short (oslo.utils ``mask_password`` misses headers, bearer tokens, database
URLs and ``--os-token``, and breaks JSON; a logger-level filter misses child
loggers, dict arguments, ``extra`` fields and tracebacks). So guard puts one
:class:`RedactingFilter` on every *handler* and rewrites everything a record
carries to its output:

- the final message, after %-formatting (positional and dict arguments);
- every string in ``extra`` fields, nested containers included (values under
  secret-looking keys are masked whole), and oslo.context contexts;
- exception and stack text (the traceback is formatted here and redacted, so
  no formatter can render the raw exception again).

Ids (uuids dashed or not, any case, 32-hex and 64-hex keystone ids, also
inside longer hex runs, and any value of a ``project_id``/``user_id`` query
parameter) become ``<id:xxxxxxxx>``: a keyed HMAC-SHA256 of the normalized id,
so one id can be followed across lines and hosts sharing ``[guard]
fingerprint_key`` without being revealed. Request ids (``req-<uuid>``) stay
readable. Values a request carried itself (registered with
:func:`request_scope`) are scrubbed by value. The patterns, and why they run
in linear time, are :mod:`guard.logpatterns`; what is cached is bounded in
bytes (only id-sized values), so no client can make a process grow.

This module sits near the bottom of guard's layers: it imports nothing of
guard but its patterns.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import hmac
import logging
import os
import re
import string
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from guard import logpatterns as patterns
from guard.logrecords import OWN_LINE as _OWN_LINE
from guard.logrecords import OWN_LINE_MARK as _MARK
from guard.logrecords import make_record, redact_around

LOG = logging.getLogger(__name__)

MASK = patterns.MASK

_ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)
# Values up to this length are cached by the fingerprinter: ids are short, and
# a cache keyed by anything longer would let clients fill memory.
_CACHED_VALUE_LEN = 80
# Characters hashed at a time (a slice's UTF-8 stays small).
_HASH_SLICE = 8192
_QUOTE_STARTS = frozenset("\"'\\b")
# Texts longer than this look for their hints with substring tests.
_LONG_TEXT = 512
_KEY_OPTION = "[guard] fingerprint_key"
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", _MARK}
_PLAIN_RECORD_SIZE = len(logging.makeLogRecord({}).__dict__)
_MAX_DEPTH = 20
_TRACEBACK_FORMATTER = logging.Formatter()


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
        if len(value) <= _CACHED_VALUE_LEN:
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


class _Scope:
    """The values one request carried: secrets masked, ids fingerprinted, by value."""

    def __init__(self, secrets: tuple[str, ...], ids: tuple[str, ...]) -> None:
        # Longest first, so a value never leaves part of a longer one behind.
        self.secrets = tuple(sorted(set(secrets), key=len, reverse=True))
        self.ids = tuple(sorted(set(ids), key=len, reverse=True))

    def merged(self, values: Mapping[str, object] | Iterable[str]) -> _Scope:
        secrets, ids = list(self.secrets), list(self.ids)
        if isinstance(values, Mapping):
            for name, value in values.items():
                if isinstance(value, str) and value:
                    (secrets if _is_secret_name(str(name)) else ids).append(value)
        else:
            ids.extend(value for value in values if isinstance(value, str) and value)
        return _Scope(tuple(secrets), tuple(ids))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for value in self.ids:
            if value in text:
                text = _replace_bounded(text, value, fingerprint(value))
        return text


def _is_secret_name(name: str) -> bool:
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


_EMPTY_SCOPE = _Scope((), ())
_scopes: dict[tuple[Any, ...], _Scope] = {}
_MAX_SCOPES, _SCOPE_KEY_CHARS = 1024, 1024
_scope: contextvars.ContextVar[_Scope] = contextvars.ContextVar(
    "guard_log_scope", default=_EMPTY_SCOPE
)
_state_lock = threading.Lock()
_fingerprinter: Fingerprinter | None = None
_installed = False


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


def _current_fingerprinter() -> Fingerprinter:
    global _fingerprinter
    fingerprinter = _fingerprinter
    if fingerprinter is not None:
        return fingerprinter
    with _state_lock:
        drew_key = _fingerprinter is None
        if drew_key:
            _fingerprinter = Fingerprinter(os.urandom(32))
        fingerprinter = _fingerprinter
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


def _replace(match: re.Match[str]) -> str:
    """The masked text for one secret match; each alternative is a named group."""
    kind = match.lastgroup
    text = match.string
    if kind == "kv":
        value = match.group("kv_val")
        head = text[match.start() : match.start("kv_val")]
        if value[0] not in _QUOTE_STARTS and match.group("kq") is None:
            return head + MASK  # the common case, kept cheap: hostile lines repeat it
        return head + patterns.masked_like(value, match.group("kq"))
    if kind == "cli":
        value = match.group("cli_val")
        return text[match.start() : match.start("cli_val")] + patterns.masked_like(value, None)
    if kind == "url":
        return text[match.start() : match.start("url_pw")] + MASK + "@"
    if kind == "qid":
        return match.group("qid_key") + fingerprint(match.group("qid_val"))
    if kind == "cookie":
        return match.group("cookie_key") + MASK
    return MASK


def redact(text: str) -> str:
    """Return ``text`` with secrets masked and ids fingerprinted.

    Values registered for the current request (:func:`request_scope`) are
    scrubbed first, then the patterns. Redacting twice changes nothing.
    """
    return _redact(text, _scope.get())


def _redact(text: str, scope: _Scope) -> str:
    if scope is not _EMPTY_SCOPE:
        text = scope.scrub(text)
    lowered = text.lower()
    if len(text) > _LONG_TEXT:  # substring tests are linear; the hint regex is not cheap here
        hints = tuple(hint for hint in patterns.HINTS if hint in lowered)
        if hints:
            text = patterns.secret_pattern(hints).sub(_replace, text)
    elif patterns.ANY_HINT.search(lowered):
        hints = tuple(hint for hint in patterns.HINTS if hint in lowered)
        text = patterns.secret_pattern(hints).sub(_replace, text)
    if patterns.HEX_RUN.search(text):
        text = patterns.ID_PATTERN.sub(_replace_id, text)
    return text


def _replace_id(match: re.Match[str]) -> str:
    value = match.group()
    start = match.start()
    if (
        len(value) == 36
        and match.string[start - 4 : start].lower() == "req-"
        and patterns.REQUEST_ID_RE.fullmatch(value)
    ):
        return value  # a request id: not a secret, and what operators search for
    return fingerprint(value)


def _redact_value(value: Any, scope: _Scope, depth: int = 0) -> Any:
    """Redact a value from ``extra``: strings, containers, contexts, objects."""
    if isinstance(value, str):
        return _redact(value, scope)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= _MAX_DEPTH:
        return MASK
    if isinstance(value, Mapping):
        return {
            _redact_value(key, scope, depth + 1): _redact_named(key, item, scope, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_redact_value(item, scope, depth + 1) for item in value]
        if isinstance(value, list):
            return items
        return tuple(items) if isinstance(value, tuple) else set(items)
    if callable(getattr(value, "get_logging_values", None)):
        # An oslo.context context: oslo.log's formatters accept the dict.
        return _redact_value(dict(value.get_logging_values()), scope, depth + 1)
    # Any other object is rendered by a formatter through str(): redact that.
    return _redact(str(value), scope)


def _redact_named(name: object, value: Any, scope: _Scope, depth: int) -> Any:
    """A value under a secret-looking name is masked whole; others are redacted."""
    if value and isinstance(name, str) and _is_secret_name(name):
        return MASK
    return _redact_value(value, scope, depth)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts everything a record carries to its output.

    It never drops a record and never raises: a record it cannot format is
    replaced by a placeholder rather than logged raw.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        if mark := attrs.get(_MARK):  # done by another handler's filter, or guard's own line
            if mark == _OWN_LINE and len(attrs) != _PLAIN_RECORD_SIZE + 1:
                _redact_extras(attrs, _scope.get())  # a record factory's, a logger filter's
            return True
        scope = _scope.get()
        try:
            self._redact_record(record, attrs, scope)
        except Exception:  # fail closed: never log what could not be redacted
            record.msg = "<log record withheld: it could not be redacted>"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        attrs[_MARK] = True
        return True

    @staticmethod
    def _redact_record(record: logging.LogRecord, attrs: dict[str, Any], scope: _Scope) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg} [unformattable log arguments withheld]"
        record.msg = _redact(message, scope)
        record.args = ()
        if len(attrs) != _PLAIN_RECORD_SIZE:
            _redact_extras(attrs, scope)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
            # Formatters (oslo.log's among them) re-render exc_info when present.
            record.exc_info = None
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, scope)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info, scope)


def _redact_extras(attrs: dict[str, Any], scope: _Scope) -> None:
    """Redact a record's non-standard attributes in place; mask one that cannot be."""
    for name in attrs.keys() - _STANDARD_ATTRS:
        try:
            attrs[name] = _redact_named(name, attrs[name], scope, 0)
        except Exception:  # fail closed
            attrs[name] = MASK


_FILTER = RedactingFilter()


def log_redacted(logger: logging.Logger, level: int, message: str) -> None:
    """Log ``message``, composed by guard of parts already safe, without a second pass.

    For guard's own line-per-request logs (the access line, the decision log):
    every part of ``message`` is a fingerprint, a number, a fixed word, a
    request id checked against its pattern, or text passed through
    :func:`redact`. The record is marked as redacted, so the handlers' filter
    does not scan it again, made without ``findCaller``'s walk of the stack,
    from a per-thread template (:func:`guard.logrecords.make_record`). Measured
    need: the scan and the walk were half of the two lines' 40 us budget.
    """
    if not logger.isEnabledFor(level):
        return
    logger.handle(make_record(logger, level, message, sys._getframe(1), _MARK, _OWN_LINE))


def _carries_filter(handler: logging.Handler) -> bool:
    return any(isinstance(existing, RedactingFilter) for existing in handler.filters)


def _attach(handler: logging.Handler) -> None:
    if not _carries_filter(handler):
        handler.addFilter(_FILTER)


_original_add_handler = logging.Logger.addHandler
_original_handler_format = logging.Handler.format


def _add_handler(self: logging.Logger, hdlr: logging.Handler) -> None:
    """``Logger.addHandler`` that puts the filter on the handler first.

    This covers handlers attached after install(): by logging.config's
    dictConfig/fileConfig, by oslo.log's setup, by hand.
    """
    _attach(hdlr)
    _original_add_handler(self, hdlr)


def _format(self: logging.Handler, record: logging.LogRecord) -> str:
    """``Handler.format`` that also redacts the output of non-standard formatters.

    oslo.log's formatters add context values and an error summary taken from
    ``sys.exc_info()`` while formatting, after the filter has run; their
    output is redacted once more. Of guard's own lines (:func:`log_redacted`)
    only what the formatter added around the message is.
    """
    text = _original_handler_format(self, record)
    formatter = self.formatter
    plain = formatter is None or type(formatter) is logging.Formatter
    if not plain and _carries_filter(self):
        if record.__dict__.get(_MARK) == _OWN_LINE:
            if getattr(formatter, "redacts_own_lines", False):  # guard.logformat's
                return text
            return redact_around(text, record.__dict__.get("message"), redact)
        text = redact(text)
    return text


def every_handler() -> list[logging.Handler]:
    """Every handler logging may write through: root's, every logger's, ``lastResort``; once."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    return list(dict.fromkeys(handlers))


def install(key: bytes | str | None = None) -> RedactingFilter:
    """Put :class:`RedactingFilter` on every handler, now and later.

    ``key`` is ``[guard] fingerprint_key``; without one (and none installed
    before) a random per-process key is drawn and a notice logged once.
    Covers :func:`every_handler` and handlers attached later through any
    path that calls ``Logger.addHandler`` (logging.config, oslo.log).
    Calling it again is harmless; a new key replaces the old one.
    """
    global _fingerprinter, _installed
    drew_key = False
    with _state_lock:
        if key is not None:
            _fingerprinter = Fingerprinter(key.encode() if isinstance(key, str) else key)
        elif _fingerprinter is None:
            _fingerprinter = Fingerprinter(os.urandom(32))
            drew_key = True
        if not _installed:
            logging.Logger.addHandler = _add_handler  # type: ignore[method-assign]
            logging.Handler.format = _format  # type: ignore[method-assign]
            _installed = True
        for handler in every_handler():
            _attach(handler)
    if drew_key:
        _announce_random_key()
    return _FILTER


@contextlib.contextmanager
def request_scope(values: Mapping[str, object] | Iterable[str]) -> Iterator[None]:
    """Scrub a request's own values by value while the block runs.

    ``values`` is either a mapping from names to values, where a value under a
    secret-looking name (``auth_token``, ``service_token``, ...) becomes ``***``
    and any other becomes its fingerprint, or an iterable of values, each of
    which becomes its fingerprint (never shown, as for a token). Scopes nest;
    a ContextVar keeps threads and tasks apart.
    """
    token = _scope.set(_merged(_scope.get(), values))
    try:
        yield
    finally:
        _scope.reset(token)


def _merged(current: _Scope, values: Mapping[str, object] | Iterable[str]) -> _Scope:
    """``current.merged(values)``; a first scope from a small dict is kept and reused.

    Measured need: two scopes a request cost 6 us, and one caller's values repeat.
    """
    if current is not _EMPTY_SCOPE or type(values) is not dict:
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
