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
:func:`guard.logscope.request_scope`) are scrubbed by value. The patterns, and
why they run in linear time, are :mod:`guard.logpatterns`; the fingerprints
and their key :mod:`guard.logfingerprints`; what is cached is bounded in bytes
(only id-sized values), so no client can make a process grow.

This module sits near the bottom of guard's layers: it imports nothing of
guard but those modules and the records of guard's own lines
(:mod:`guard.logrecords`).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from guard import logpatterns as patterns
from guard.logfingerprints import Fingerprinter, fingerprint, use_key
from guard.logfingerprints import fingerprinter as _fingerprinter
from guard.logrecords import OWN_LINE as _OWN_LINE
from guard.logrecords import OWN_LINE_MARK as _MARK
from guard.logrecords import make_record, redact_around
from guard.logscope import EMPTY_SCOPE as _EMPTY_SCOPE
from guard.logscope import Scope as _Scope
from guard.logscope import current_scope as _scope
from guard.logscope import is_secret_name as _is_secret_name

MASK = patterns.MASK

_QUOTE_STARTS = frozenset("\"'\\b")
# Texts longer than this look for their hints with substring tests.
_LONG_TEXT = 512
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", _MARK}
_PLAIN_RECORD_SIZE = len(logging.makeLogRecord({}).__dict__)
_MAX_DEPTH = 20
_TRACEBACK_FORMATTER = logging.Formatter()
_MAX_REMEMBERED, _REMEMBERED_CHARS = 1024, 128
_remembered: tuple[Fingerprinter | None, dict[tuple[_Scope, str], str]] = (None, {})


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

    Values registered for the current request
    (:func:`guard.logscope.request_scope`) are scrubbed first, then the
    patterns. Redacting twice changes nothing.
    """
    return _redact(text, _scope.get())


def redact_value(text: str) -> str:
    """:func:`redact` of one short value (a context's id or name), remembered.

    Measured need: oslo.log's default user identity shows six of the
    caller's values, each redacted on its own (:mod:`guard.logformat`), on
    every line, at 2.5-12 us a value; one caller's scope (kept per caller,
    :mod:`guard.logscope`) and values repeat request after request. What is
    kept is bounded in bytes: short texts under small scopes, at most
    ``_MAX_REMEMBERED`` of them, made again when the fingerprint key changes.
    """
    scope = _scope.get()
    if len(text) > _REMEMBERED_CHARS or not scope.small:
        return _redact(text, scope)
    global _remembered
    fingerprinter, remembered = _remembered
    if fingerprinter is not (current := _fingerprinter()):  # a new key: texts are stale
        remembered = {}
        _remembered = (current, remembered)
    key = (scope, text)
    redacted = remembered.get(key)
    if redacted is None:
        redacted = _redact(text, scope)
        if len(remembered) >= _MAX_REMEMBERED:
            remembered.clear()
        remembered[key] = redacted
    return redacted


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
_install_lock = threading.Lock()
_installed = False


def _add_handler(self: logging.Logger, hdlr: logging.Handler) -> None:
    """``Logger.addHandler`` that puts the filter on the handler first.

    This covers handlers attached after install(): by logging.config's
    dictConfig/fileConfig, by oslo.log's setup, by hand.
    """
    _attach(hdlr)
    _original_add_handler(self, hdlr)


#: What oslo.log's ContextFormatter would have set on one of guard's own lines,
#: each value redacted (set by guard.logformat, whose one pass sets none).
_own_line_values: Callable[[logging.LogRecord], Mapping[str, Any]] | None = None


def set_own_line_values(values: Callable[[logging.LogRecord], Mapping[str, Any]]) -> None:
    """Give :func:`_format` what finds an own line's values for a later handler's format."""
    global _own_line_values
    _own_line_values = values


def _format(self: logging.Handler, record: logging.LogRecord) -> str:
    """``Handler.format`` that also redacts the output of non-standard formatters.

    oslo.log's formatters add context values and an error summary taken from
    ``sys.exc_info()`` while formatting, after the filter has run; their
    output is redacted once more. Of guard's own lines (:func:`log_redacted`)
    only what the formatter added around the message is. An own line whose
    format names a value guard's ContextFormatter did not set on it (a plain
    ``logging.Formatter`` showing ``%(user_name)s`` after it, as it would after
    oslo's) gets those values, redacted, rather than being lost.
    """
    try:
        text = _original_handler_format(self, record)
    except ValueError:  # "Formatting field not found in record"
        attrs = record.__dict__
        if attrs.get(_MARK) != _OWN_LINE or _own_line_values is None:
            raise
        for name, value in _own_line_values(record).items():
            attrs.setdefault(name, value)
        text = _original_handler_format(self, record)
    formatter = self.formatter
    plain = formatter is None or type(formatter) is logging.Formatter
    if not plain and _carries_filter(self):
        if record.__dict__.get(_MARK) == _OWN_LINE:
            if getattr(formatter, "redacts_own_lines", False):  # guard.logformat's
                return text
            text = redact_around(text, record.__dict__.get("message"), redact)
        else:
            text = redact(text)
        # And what it set on the record: oslo's JSONFormatter sets the
        # context's values on it, raw; the next handler's formatter reads the
        # record as this one left it, and this handler may send them as fields
        # after formatting (oslo.log's journal handler: USER_NAME, PROJECT_ID).
        _redact_extras(record.__dict__, _scope.get())
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
    global _installed
    with _install_lock:
        if not _installed:
            logging.Logger.addHandler = _add_handler  # type: ignore[method-assign]
            logging.Handler.format = _format  # type: ignore[method-assign]
            _installed = True
        for handler in every_handler():
            _attach(handler)
    # After the filters: the notice of a drawn key is logged through them.
    use_key(key)
    return _FILTER
