"""oslo.log's ContextFormatter, with guard's own lines written in one cheap pass.

``guard serve`` logs through oslo.log's handler and ContextFormatter by
default. Measured need: through it, the access line and the decision line
cost a request about 125 us of CPU, against 30 through a plain handler.
oslo's ``format`` asks the context for its logging values twice, sets each
on the record one by one, builds a ``tzlocal()`` for every record, formats
the time afresh, and guard then redacted its whole output a second time,
since the context values it adds may be raw ids.

:class:`ContextFormatter` is oslo's class, and formats every record as
oslo's does, with three changes. Two keep its text byte for byte:

* the time (``asctime``, ``isotime``) is computed once per second and time
  zone, not once per record;
* guard's own lines (:func:`guard.log.log_redacted`: an INFO message composed
  of safe parts, no arguments, no exception) take a path that finds each
  value the format string takes as oslo's ``format`` would set it, without
  setting the caller's values on the record, and redacts each value taken
  from the context (or the thread's and process's names) instead of the
  whole output: the text is what oslo's would be, redacted.
  A record or format string this path does not cover exactly (an instance,
  a dict context, a debug suffix, a ``%r`` of a context value, a secret's
  key in the format's own text) is formatted by oslo's code and redacted
  around the line as before.

The third: oslo's code formats a copy of the context with each of its values
redacted on its own (guard's lines it does not cover, and every other
record, which guard.log's handler then redacts whole). Redacting only the
whole text missed a caller's name glued to another value by the operator's
format: a value a request registered is scrubbed only where it is not part
of a longer word, and a hex id takes a name's leading hex letters with it.

:func:`guard.logsetup.setup` puts it in place of the ContextFormatter
oslo.log's setup made; an operator's ``logging.conf`` may name it too
(``class = guard.logformat.ContextFormatter``).
"""

from __future__ import annotations

import copy
import datetime
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oslo_context import context as oslo_context
from oslo_log import formatters as oslo_formatters

from guard import log as guard_log
from guard import logpatterns
from guard.logrecords import is_own_line, redact_around

# Set by the formatter after the context's values, so never the context's.
_SET_AFTER_CONTEXT = frozenset({"message", "asctime", "isotime", "instance", "error_summary"})
# What oslo's format sets from the formatter itself, before the context's values.
_FORMATTER_SETS = frozenset({"project", "version"})
# Record attributes guard's own line does not choose, redacted when shown.
_NOT_GUARDS = ("threadName", "processName")
# The keys oslo's format defaults to "" when the record has none.
_DEFAULTED = (
    "instance", "color", "user_identity", "resource", "user_name", "project_name",
    "global_request_id",
)  # fmt: skip
# One %-conversion: "%%", "%(key)<flags, width, precision>conv", or an unkeyed one.
_CONVERSION = re.compile(
    r"%(?:(?P<percent>%)|\((?P<key>[^()]*)\)[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?"
    r"(?P<conv>[a-zA-Z])|)"
)
_MAX_PLANS = 64
# Matched against the lowered text: IGNORECASE matching cost twice as much
# (measured), and no other character lowers to one of these.
_LOWERED_REQUEST_ID = re.compile(r"req-" + logpatterns.REQUEST_ID_RE.pattern)
_REQUEST_ID_LEN = 40
_REQUEST_ID_KEYS = frozenset({"request_id", "global_request_id"})


def _safe(value: Any) -> str:
    """``value`` as ``%s`` shows it, redacted (remembered: a context's values repeat)."""
    return guard_log.redact_value(value if type(value) is str else str(value))


def _is_request_id(key: str, value: Any) -> bool:
    """Whether ``value`` is the context's request id of guard's shape (kept as it is).

    What operators search for, and redaction keeps it too. Only under the
    request id keys: a user id that reads like a request id is still the
    user's id, scrubbed by value (guard.logscope.request_scope).
    """
    return (
        key in _REQUEST_ID_KEYS
        and type(value) is str
        and len(value) == _REQUEST_ID_LEN
        and _LOWERED_REQUEST_ID.fullmatch(value.lower()) is not None
    )


def _redacted_context(context: Any) -> Any:
    """A copy of an oslo.context context (or its dict) with each value redacted; or None."""
    if isinstance(context, oslo_context.RequestContext):
        shown = copy.copy(context)
        for name, value in vars(shown).items():
            if isinstance(value, (str, list, tuple)) and value:
                setattr(shown, name, _redacted_value(name, value))
        return shown
    if isinstance(context, dict):
        return {name: _redacted_value(name, value) for name, value in context.items()}
    return None


def _redacted_value(name: str, value: Any) -> Any:
    """A context's value for oslo's code: text and lists of texts redacted, request ids kept."""
    if type(value) is str:
        return value if _is_request_id(name, value) else _safe(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_safe_kept(item) for item in value)
    return value


def _safe_kept(value: Any) -> Any:
    """:func:`_safe`, but a value that is not text and that redaction leaves alone is kept.

    For the user identity format, whose conversions are the operator's: a
    ``%(is_admin)d`` or ``%(roles)r`` then shows what oslo's shows.
    """
    if type(value) is str:
        return _safe(value)
    shown = str(value)
    redacted = _safe(shown)
    return value if redacted == shown else redacted


@dataclass(frozen=True)
class _Plan:
    """What a format string takes from a record, and whether it fits the one-pass path.

    ``fits`` is false when the format's own text holds a secret's key (its
    value would follow in the text) or uses a conversion without a key.
    ``checked`` maps each key to whether it is only shown with ``%s`` (a
    value redacted on its own can stand in for it; each value alone is
    redacted at least as well as in the whole text, whatever it is glued to).
    """

    fits: bool
    checked: dict[str, bool]
    uses_time: bool
    error_summary: bool

    @classmethod
    def of(cls, fmt: str) -> _Plan:
        checked: dict[str, bool] = {}
        literal, fits, last_end = [], True, 0
        for match in _CONVERSION.finditer(fmt):
            literal.append(fmt[last_end : match.start()])
            last_end = match.end()
            key = match.group("key")
            if match.group("percent"):
                literal.append("%")
            elif key is None:
                fits = False
            else:
                checked[key] = checked.get(key, True) and match.group("conv") == "s"
        literal.append(fmt[last_end:])
        return cls(
            fits=fits and not logpatterns.has_hint("".join(literal)),
            checked=checked,
            uses_time=fmt.find("%(asctime)") >= 0,
            error_summary="%(error_summary)s" in fmt,
        )


class ContextFormatter(oslo_formatters.ContextFormatter):
    """oslo.log's ContextFormatter; guard's own lines in one pass, redacted as they are made."""

    #: Read by guard.log's ``Handler.format``: guard's own lines come out of
    #: this formatter redacted, and need no second pass.
    redacts_own_lines = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[str, _Plan] = {}
        self._identity_keys: tuple[str, tuple[str, ...] | None, bool] = ("", (), True)
        self._second: tuple[Any, ...] = ()
        self._second_iso: tuple[Any, ...] = ()

    @classmethod
    def like(cls, formatter: oslo_formatters.ContextFormatter) -> ContextFormatter:
        """This class in place of ``formatter``: its project, version, date format, options."""
        made = cls(
            project=formatter.project,
            version=formatter.version,
            datefmt=formatter.datefmt,
            config=formatter.conf,
        )
        made._style, made._fmt = formatter._style, formatter._fmt
        return made

    def format(self, record: logging.LogRecord) -> str:
        """oslo's text of ``record``, each context value redacted; guard's own line redacted."""
        if not is_own_line(record):
            return self._format_redacted(record)  # and redacted whole by guard.log's handler
        text = self._format_own_line(record)
        if text is None:
            text = redact_around(self._format_redacted(record), record.message, guard_log.redact)
        return text

    def _format_redacted(self, record: logging.LogRecord) -> str:
        """oslo's text of ``record``, its context's values redacted each on its own first.

        Redacting only the whole text would miss a name glued to a word or
        an id in the operator's format (a value the request registered is
        scrubbed only where it is not part of a longer word).
        """
        attrs = record.__dict__
        had_context = "context" in attrs
        context = attrs["context"] if had_context else oslo_context.get_current()
        try:
            shown = _redacted_context(context)
        except Exception:  # a context of an unusual make: the whole text is redacted after
            shown = None
        if shown is None:
            return super().format(record)
        attrs["context"] = shown
        try:
            return super().format(record)
        finally:
            if had_context:
                attrs["context"] = context
            else:
                del attrs["context"]

    def _format_own_line(self, record: logging.LogRecord) -> str | None:
        """What oslo's ``format`` writes for guard's own line, redacted; None when not covered.

        Each value the format string takes is found as oslo's ``format`` would
        have set it on the record (the context's logging values over the
        formatter's project and version over the record's own attributes, a
        few defaulted to ""), without setting them: measured, setting the
        context's values on the record (and making the user identity and
        ``isotime`` that the format may not show) were half of a line's
        instructions, and a later handler would find the caller's values on
        it, raw. The record gets what the standard formatter sets (``message``,
        ``asctime``) and the request id, which oslo.log's journal handler
        sends as a field.
        """
        attrs = record.__dict__
        if (
            record.levelno != logging.INFO  # DEBUG adds a suffix, WARNING an error summary
            or record.exc_info
            or record.exc_text
            or record.stack_info
            or record.args
            or type(record.msg) is not str
            or "context" in attrs
            or "instance" in attrs
            or "instance_uuid" in attrs
        ):
            return None
        context = oslo_context.get_current()
        values: dict[str, Any] = {}
        if context is not None:
            if not isinstance(context, oslo_context.RequestContext) or (
                getattr(context, "instance", None)
                or getattr(context, "instance_uuid", None)
                or getattr(context, "resource_uuid", None)
            ):
                return None
            values = context.get_logging_values()
        conf = self.conf
        # ConfigOpts finds an option in __getattr__, after the normal lookup has
        # failed: called directly, 0.3 us instead of 0.7 (measured), two a line.
        option = getattr(type(conf), "__getattr__", None)
        if option is None:
            return None
        request_id = values["request_id"] if "request_id" in values else attrs.get("request_id")
        # Checked once: shown as it is, and the record's field for the journal.
        kept_id = request_id if request_id and _is_request_id("request_id", request_id) else None
        if request_id:
            fmt = option(conf, "logging_context_format_string")
        else:
            fmt = option(conf, "logging_default_format_string")
        plan = self._plan(fmt)
        if not fmt or not plan.fits:  # an empty format is the stdlib's "%(message)s"
            return None
        if context is not None and "user_identity" not in plan.checked:
            # oslo's format makes the user identity even when it does not show
            # it, and raises when the operator's format does (a "%d" given
            # "-"): made here too, unless its conversions cannot raise.
            identity_format = option(conf, "logging_user_identity_format")
            if (
                not self._identity(identity_format)[1]
                and self._user_identity(identity_format, values) is None
            ):
                return None
        shown: dict[str, Any] = {}
        for key, alone in plan.checked.items():
            if key in _SET_AFTER_CONTEXT:
                if key == "message":
                    value: Any = record.msg
                elif key == "asctime":  # set on the record only once the line is made
                    value = self.formatTime(record, self.datefmt)
                elif key == "isotime":
                    value = self._iso_time(record.created)
                elif key == "instance":
                    value = ""
                else:  # error_summary
                    value = "-" if plan.error_summary else ""
            elif key == "user_identity" and context is not None:
                if not alone:
                    return None
                # Made of redacted values: an id glued to a name in the
                # operator's identity format is no bound for either.
                value = self._user_identity(
                    option(conf, "logging_user_identity_format"), values, _safe_kept
                )
                if value is None:  # a conversion that takes no redacted text: oslo's code
                    return None
            elif key in values or key in _NOT_GUARDS:
                value = values[key] if key in values else attrs.get(key)
                if value is not None:
                    if not alone:
                        return None
                    if not (key == "request_id" and value is kept_id) and not _is_request_id(
                        key, value
                    ):
                        value = _safe(value)
            elif key in _FORMATTER_SETS:
                value = self.project if key == "project" else self.version
            elif key in attrs:
                value = attrs[key]
            elif key in _DEFAULTED:
                value = ""
            else:  # oslo's format raises: its code reports it its way
                return None
            shown[key] = value
        try:
            text = fmt % shown
        except (KeyError, TypeError, ValueError):  # oslo's code reports it its way
            return None
        attrs["message"] = record.msg
        if "asctime" in shown:
            attrs["asctime"] = shown["asctime"]
        if kept_id is not None:
            attrs["request_id"] = kept_id
        return text

    def _plan(self, fmt: str) -> _Plan:
        plan = self._plans.get(fmt)
        if plan is None:
            plan = _Plan.of(fmt)
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[fmt] = plan
        return plan

    def _identity(self, identity_format: str) -> tuple[tuple[str, ...] | None, bool]:
        """The keys of an identity format (None: a conversion takes none), and whether
        every conversion is a keyed ``%s`` (it then cannot raise on a context's values)."""
        known = self._identity_keys
        if known[0] != identity_format:
            matches = list(_CONVERSION.finditer(identity_format))
            unkeyed = any(m.group("key") is None and not m.group("percent") for m in matches)
            keyed = tuple(m.group("key") for m in matches if m.group("key") is not None)
            text_only = all(m.group("percent") or m.group("conv") == "s" for m in matches)
            known = self._identity_keys = (
                identity_format,
                None if unkeyed else keyed,
                text_only and not unkeyed,
            )
        return known[1], known[2]

    def _user_identity(
        self,
        identity_format: str,
        values: dict[str, Any],
        shown: Callable[[Any], Any] | None = None,
    ) -> str | None:
        """``identity_format % _ReplaceFalseValue(values)`` as oslo's: false values become "-".

        ``shown`` is applied to each value first. None when oslo's would
        raise, or when a conversion takes no key (it would show the whole
        context).
        """
        keys = self._identity(identity_format)[0]
        if keys is None:
            return None
        try:
            if shown is None:  # no call per value: a line's most repeated step (measured)
                return identity_format % {key: values.get(key) or "-" for key in keys}
            return identity_format % {key: shown(values.get(key) or "-") for key in keys}
        except (KeyError, TypeError, ValueError):
            return None

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The stdlib's text, computed once a second (it has no finer part)."""
        if not datefmt:  # the stdlib's default format, with milliseconds
            return super().formatTime(record, datefmt)
        key = (int(record.created), datefmt, self.converter, time.timezone, time.altzone)
        second = self._second
        if second and second[0] == key:
            return second[1]
        text = super().formatTime(record, datefmt)
        self._second = (key, text)
        return text

    def _compute_iso_time(self, record: logging.LogRecord) -> None:
        """oslo's ``isotime`` on the record, found by :meth:`_iso_time` (oslo's code calls it)."""
        record.isotime = self._iso_time(record.created)

    def _iso_time(self, created: float) -> str:
        """oslo's ``isotime``: the local time with its UTC offset, the second's text found once.

        oslo builds a ``tzlocal()`` for every record and asks it for the offset;
        the local text and offset of one second are the same for all its
        records, and only the microseconds differ: rounded from ``created``
        as ``datetime.fromtimestamp`` rounds them (half to even, a carry into
        the next second).
        """
        fraction, whole = math.modf(created)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            whole += 1.0
            micro -= 1_000_000
        key = (whole, time.timezone, time.altzone, time.daylight)
        second = self._second_iso
        if not second or second[0] != key:
            naive = datetime.datetime.fromtimestamp(whole)
            local = naive.isoformat()
            aware = naive.replace(tzinfo=oslo_formatters.tz.tzlocal())  # oslo's own zone class
            second = self._second_iso = (key, local, aware.isoformat()[len(local) :])
        # isoformat() leaves out a zero fraction
        isotime = f"{second[1]}.{micro:06d}{second[2]}" if micro else second[1] + second[2]
        if created == int(created):  # oslo's fix-up of a whole second
            isotime = f"{isotime[:-6]}.000000{isotime[-6:]}"
        return isotime


def _own_line_values(record: logging.LogRecord) -> dict[str, Any]:
    """What oslo's ContextFormatter would have set on ``record``, each value redacted.

    For a later handler whose format names them (guard.log asks only when that
    format failed): oslo's formatter would have left them there, and the one
    pass does not. Made by the first handler's guard formatter; empty when no
    handler has one, or when oslo's code cannot format the record.
    """
    formatter = next(
        (
            handler.formatter
            for handler in guard_log.every_handler()
            if isinstance(handler.formatter, ContextFormatter)
        ),
        None,
    )
    if formatter is None:
        return {}
    made = logging.makeLogRecord(dict(record.__dict__))
    try:
        formatter._format_redacted(made)
    except Exception:  # the operator's format: its handler reports the missing field
        return {}
    return {name: value for name, value in vars(made).items() if name not in record.__dict__}


guard_log.set_own_line_values(_own_line_values)
