"""Cheaper log records for guard's own line-per-request logs.

Measured need: the access line and the decision line cost a request about
80-100 us of CPU in place in the pipeline (twice their isolated cost), and
``Logger.makeRecord`` was the largest single part of each: ``LogRecord``'s
constructor recomputes, for every record, what is the same for every record
of one call site in one thread of one process (the file's base name and
module, the level's name, the thread's id and name, the process's id and
name). :func:`make_record` builds one record per (logger, level, call site)
and thread the standard library's way, keeps its attributes as a template,
and gives every later record a copy of them with its own message and time:
the same type, the same attributes with the same values, at about a quarter
of the cost.

What keeps the copied attributes right:

- per thread: templates live in a ``threading.local`` (a thread's templates
  die with it, so a new thread that reuses an id starts afresh), and a
  template is rebuilt when its thread was renamed;
- after ``fork``: a child process starts with no template (its pid differs);
- ``logging.logThreads``/``logProcesses``/``logMultiprocessing`` turned off,
  a record factory of the application's (``logging.setLogRecordFactory``) or
  a logger class with its own ``makeRecord``: the standard library's path,
  untouched.

:func:`redact_around` is the second redaction pass of such a line in a
non-standard formatter's output (oslo.log's), around the line only.

Stdlib only, like :mod:`guard.log`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

# At most this many call sites a thread keeps templates for (guard has two).
_MAX_TEMPLATES = 64
#: The attribute, and its value, that mark a record as one of guard's own lines
#: (guard.log.log_redacted's: composed of safe parts, not to be redacted again).
OWN_LINE_MARK, OWN_LINE = "_guard_redacted", "own line"
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


class _Templates(threading.local):
    """One thread's templates: (code's id, instruction, level, logger) -> (code, attributes)."""

    def __init__(self) -> None:
        # Runs in each thread on its first use: this is that thread's object.
        self.thread = threading.current_thread()
        self.by_site: dict[tuple[int, int, int, logging.Logger], tuple[CodeType, dict[str, Any]]]
        self.by_site = {}


def _forked() -> None:
    """In a forked child, every thread starts with no template (the pid differs)."""
    global _templates
    _templates = _Templates()


os.register_at_fork(after_in_child=_forked)
_templates = _Templates()
_LogRecord = logging.LogRecord
_new_record = logging.LogRecord.__new__
_stdlib_make_record = logging.Logger.makeRecord


def make_record(
    logger: logging.Logger,
    level: int,
    message: str,
    caller: FrameType,
    mark: str,
    value: object = True,
) -> logging.LogRecord:
    """A record of ``message`` (no arguments) as ``logger.makeRecord`` would make it.

    ``caller`` is the frame of the call site, which gives ``pathname``,
    ``lineno`` and ``funcName`` as ``findCaller`` would; the attribute
    ``mark`` is set to ``value`` on the record (guard's "already redacted"
    mark).
    """
    code = caller.f_code
    if (
        type(logger).makeRecord is not _stdlib_make_record
        or logging.getLogRecordFactory() is not _LogRecord
        or not (logging.logThreads and logging.logProcesses and logging.logMultiprocessing)
    ):  # the application changed how records are made: its way
        record = logger.makeRecord(
            logger.name, level, code.co_filename, caller.f_lineno, message, (), None, code.co_name
        )
        record.__dict__[mark] = value
        return record
    local = _templates
    # Keyed by the code's id, checked to be the same code: hashing a code
    # object hashes its constants (0.2-0.4 us, a sixth of a record). And by
    # the call's instruction, not its line: a frame finds its line number by
    # walking its code's line table from the start (some 8,000 instructions
    # in a long function, measured with cachegrind: a fifth of a record).
    key = (id(code), caller.f_lasti, level, logger)
    site = local.by_site.get(key)
    if site is None or site[0] is not code or site[1]["threadName"] != local.thread.name:
        site = (code, _template(logger, level, code, caller.f_lineno))
        if len(local.by_site) >= _MAX_TEMPLATES:
            local.by_site.clear()
        local.by_site[key] = site
    template = site[1]
    now = time.time_ns()
    created = now / _NS_PER_S
    attrs = template.copy()
    attrs["msg"] = message
    attrs[mark] = value
    attrs["created"] = created
    attrs["msecs"] = (now % _NS_PER_S) // _NS_PER_MS + 0.0
    attrs["relativeCreated"] = template["relativeCreated"] + (created - template["created"]) * 1000
    if "taskName" in attrs:  # Python 3.12+: the asyncio task, which varies per call
        attrs["taskName"] = _task_name()
    record = _new_record(_LogRecord)
    record.__dict__ = attrs
    return record


def _template(logger: logging.Logger, level: int, code: CodeType, lineno: int) -> dict[str, Any]:
    """The attributes of a record made the standard library's way, now, in this thread."""
    record = logger.makeRecord(
        logger.name, level, code.co_filename, lineno, "", (), None, code.co_name
    )
    return dict(record.__dict__)


def _task_name() -> str | None:
    """The current asyncio task's name, as ``LogRecord`` finds it (Python 3.12+)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or not getattr(logging, "logAsyncioTasks", True):
        return None
    try:
        task = asyncio.current_task()
    except Exception:  # no running loop in this thread
        return None
    return task.get_name() if task is not None else None


def is_own_line(record: logging.LogRecord) -> bool:
    """Whether ``record`` is one of guard's own lines."""
    return record.__dict__.get(OWN_LINE_MARK) == OWN_LINE


def redact_around(text: str, message: object, redact: Callable[[str], str]) -> str:
    """``redact(text)`` where ``text`` holds ``message``, one of guard's own lines, whole.

    For :func:`guard.log.log_redacted`'s lines in a non-standard formatter's output.

    Measured need: the second pass cost a line as much as oslo.log's formatter,
    half of it on the message, already safe. Whitespace (or the text's ends)
    around it: no id or token runs across, and the line ends with a request id,
    a fingerprint or ``}``, never a secret's key. Then only the rest is redacted.
    """
    if isinstance(message, str) and message:
        start = text.rfind(message)
        end = start + len(message)
        if (
            start >= 0
            and (start == 0 or text[start - 1].isspace())
            and (end == len(text) or text[end].isspace())
        ):
            before, after = text[:start], text[end:]
            return (redact(before) if before else "") + message + (redact(after) if after else "")
    return redact(text)
