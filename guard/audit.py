"""The decision log: one JSON line per policy decision, on logger ``guard.audit``.

Operators need to see why a request was denied, but a log sink (a full disk, a
slow syslog, a remote collector) must never slow a request down. So
:meth:`DecisionLog.record` only appends a tuple to a bounded deque; a
background thread wakes a few times a second, turns what has accumulated into
JSON lines and logs them. When the deque is full the decision is dropped and
counted (``.dropped``, shown on the healthcheck): it never blocks and never
raises.

Why a deque and a timed wake-up rather than ``queue.Queue``: ``put()`` takes a
lock and notifies the writer on every decision, and the woken writer then
competes with the request for the GIL at once; measured behind waitress, that
handoff cost more than the decision itself. ``deque.append`` is atomic and
wakes nobody, and one wake-up writes a whole batch.

The line names the subject and the target by fingerprints
(:func:`guard.log.fingerprint`), never by raw ids. Its free-text fields
(action, branch, roles, a request id of another shape than guard's) are
redacted one by one before the line is composed, and the line is logged as
redacted (:func:`guard.log.log_redacted`): the handlers' filter would only
scan, at some 20 us a line, a text made of parts it has already seen.
A list request is one line (:func:`list_branch`: every row, filtered, or
denied, with the rule).

Queued lines outlive the process's end: :func:`flush_all` writes what every
live log holds (gunicorn's ``worker_exit`` closes the worker's log), and
:func:`flush_on_sigterm` makes a SIGTERM flush before the process stops, as
``guard serve`` needs (its default SIGTERM action would drop the queue).
"""

from __future__ import annotations

import collections
import json
import logging
import re
import signal
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from guard.log import fingerprint, log_redacted, redact

AUDIT_LOGGER = "guard.audit"
DEFAULT_QUEUE_SIZE = 10_000
# The writer caches the redaction of short free-text fields (rule names,
# branch labels, roles repeat from line to line): only texts this short, and
# at most this many, so what it keeps is bounded in bytes whatever clients send.
_CACHED_TEXT_LEN = 80
_MAX_CACHED_TEXTS = 2048
# A fixed text whose fingerprint changes when the fingerprint key does.
_KEY_PROBE = "guard.audit"
#: At most this many roles of one decision are kept, the rest counted: the
#: queue is bounded in decisions, so each decision must be bounded in bytes
#: (roles and ids are whatever the identity headers say; keystone's tokens
#: carry a few roles, of at most 255 characters, and ids of at most 64).
MAX_ROLES = 64
_MAX_TEXT_CHARS = 255
#: How long a decision may wait before the writer logs it (seconds).
WRITE_INTERVAL_S = 0.1
# How often flush() looks again whether the writer is done (seconds).
_FLUSH_POLL_S = 0.005
# How a list request ended, by the kind of its compiled row filter.
_LIST_OUTCOMES = {
    "allow": "all rows",
    "condition": "filtered",
    "per_row": "filtered",
    "deny": "denied",
}
# Every DecisionLog not yet collected, for flush_all().
_LIVE: weakref.WeakSet[DecisionLog] = weakref.WeakSet()


def _value(source: Any, name: str) -> Any:
    """A value of the credentials or target: a mapping's key or an object's attribute."""
    # A plain dict first: the ABC check of Mapping costs more than the lookup.
    if type(source) is dict or isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


class _Fingerprint(str):
    """An id fingerprinted when it was recorded (it was too long to keep)."""


def _kept(value: Any) -> Any:
    """``value`` as the queue keeps it: a text too long for an id is fingerprinted now."""
    if isinstance(value, str) and len(value) > _MAX_TEXT_CHARS:
        return _Fingerprint(fingerprint(value))
    return value


def _kept_roles(roles: Any) -> list[str]:
    """At most :data:`MAX_ROLES` roles, each bounded; the others counted."""
    roles = list(roles)
    kept = [_kept(str(role)) for role in roles[:MAX_ROLES]]
    if len(roles) > MAX_ROLES:
        kept.append(f"(+{len(roles) - MAX_ROLES} more)")
    return kept


def _fingerprint_or_none(value: Any) -> str | None:
    if isinstance(value, _Fingerprint):
        return value
    return fingerprint(str(value)) if value else None


# A request id as guard and oslo.middleware make them: kept readable as is.
_REQUEST_ID_RE = re.compile(r"req-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if _REQUEST_ID_RE.fullmatch(text) else redact(text)


class DecisionRecorder(Protocol):
    """What :attr:`guard.policy.Enforcer.decision_log` is: told of each decision.

    ``creds`` and ``target`` arrive raw; a recorder fingerprints what it keeps
    and must neither block nor raise (the decision stands whatever it does).
    """

    def record(
        self,
        *,
        action: str,
        allowed: bool,
        branch: str | None,
        creds: Any,
        target: Any,
        revision: str | None,
        microseconds: float,
        request_id: str | None,
        global_request_id: str | None,
    ) -> None: ...


class DecisionLog:
    """Writes decisions to ``guard.audit`` through a bounded deque and one thread.

    ``record()`` is what :attr:`guard.policy.Enforcer.decision_log` calls once
    per decision. ``flush()`` waits for what is queued to be written (tests,
    shutdown); ``close()`` drains it and stops the thread.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
        interval: float = WRITE_INTERVAL_S,
    ) -> None:
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)
        self._maxsize = maxsize
        self._interval = interval
        # Bounded by the length check in record(): a deque's own maxlen would
        # silently discard the oldest entry instead of counting a drop.
        self._pending: collections.deque[tuple[Any, ...]] = collections.deque()
        # True from before the writer takes an entry until it has written it.
        self._writing = False
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._closed = False
        self._stopping = False
        # Used by the writer thread only: no lock.
        self._redactions: dict[str, str] = {}
        self._key_tag = ""
        self._thread = threading.Thread(target=self._run, name="guard-audit", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    @property
    def dropped(self) -> int:
        """Decisions not written: the deque was full, the sink failed, or the log was closed."""
        return self._dropped

    def record(
        self,
        *,
        action: str,
        allowed: bool,
        branch: str | None,
        creds: Any,
        target: Any,
        revision: str | None,
        microseconds: float,
        request_id: str | None,
        global_request_id: str | None,
    ) -> None:
        """Queue one decision; never blocks, never raises (a failure is a drop)."""
        # No lock: two racing requests may both pass the length check, so the
        # deque can exceed maxsize by the number of request threads, no more.
        if self._closed or len(self._pending) >= self._maxsize:
            self._count_drop()
            return
        try:
            roles = _value(creds, "roles") or ()
            self._pending.append(
                (
                    time.time(),
                    request_id,
                    global_request_id,
                    action,
                    bool(allowed),
                    branch,
                    _kept(_value(creds, "user_id")),
                    _kept(_value(creds, "project_id")),
                    _kept(_value(target, "project_id")),
                    _kept(_value(target, "user_id")),
                    _kept_roles(roles),
                    revision,
                    microseconds,
                )
            )
        except Exception:  # a decision log must never fail a request
            self._count_drop()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every decision queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._pending or self._writing:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._thread.is_alive():
                return False
            self._wake.set()
            with self._drained:
                self._drained.wait(min(remaining, _FLUSH_POLL_S))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread. Later records are dropped."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _count_drop(self, count: int = 1) -> None:
        with self._dropped_lock:
            self._dropped += count

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        # A record() that passed the closed check as close() began: counted.
        self._count_drop(len(self._pending))

    def _drain(self) -> None:
        """Write the queued decisions, oldest first, one at a time.

        One at a time, so that what waits stays counted against maxsize while
        a slow sink holds the writer.
        """
        pending = self._pending
        if pending:
            key_tag = fingerprint(_KEY_PROBE)
            if key_tag != self._key_tag:  # a new key: cached fingerprints are stale
                self._redactions.clear()
                self._key_tag = key_tag
        while pending:
            self._writing = True
            try:
                self._write(pending.popleft())
            except Exception:  # the thread must outlive a failing sink
                self._count_drop()
            finally:
                self._writing = False
        with self._drained:
            self._drained.notify_all()

    def _write(self, item: tuple[Any, ...]) -> None:
        (
            when,
            request_id,
            global_request_id,
            action,
            allowed,
            branch,
            user_id,
            project_id,
            target_project_id,
            target_user_id,
            roles,
            revision,
            microseconds,
        ) = item
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        line = {
            "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="microseconds"),
            "request_id": _request_id(request_id),
            "global_request_id": _request_id(global_request_id),
            "action": self._text(action),
            "allowed": allowed,
            "branch": self._text(branch),
            "user": _fingerprint_or_none(user_id),
            "project": _fingerprint_or_none(project_id),
            "target_project": _fingerprint_or_none(target_project_id),
            "target_user": _fingerprint_or_none(target_user_id),
            "roles": [self._redacted(role) for role in roles],
            "revision": self._text(revision),
            "microseconds": round(microseconds, 1),
        }
        log_redacted(logger, logging.INFO, json.dumps(line, separators=(",", ":")))

    def _text(self, value: Any) -> str | None:
        return None if value is None else self._redacted(str(value))

    def _redacted(self, text: str) -> str:
        """:func:`guard.log.redact` of ``text``, cached when it is short."""
        if len(text) > _CACHED_TEXT_LEN:
            return redact(text)
        redactions = self._redactions
        done = redactions.get(text)
        if done is None:
            if len(redactions) >= _MAX_CACHED_TEXTS:
                redactions.clear()
            done = redactions[text] = redact(text)
        return done


def list_branch(filter_kind: str, rule_label: str | None) -> str:
    """The branch of a list request's one line: ``list <outcome>: <rule>``.

    ``filter_kind`` is the compiled row filter's kind (``allow``, ``condition``,
    ``per_row``, ``deny``); the rule label is the compiler's, literals
    fingerprinted.
    """
    outcome = _LIST_OUTCOMES.get(filter_kind, filter_kind)
    return f"list {outcome}: {rule_label}" if rule_label else f"list {outcome}"


def flush_all(timeout: float = 5.0) -> bool:
    """Write what every live decision log has queued; False if one timed out."""
    return all([log.flush(timeout) for log in list(_LIVE)])


def flush_on_sigterm() -> None:
    """On SIGTERM, write the queued decisions, then stop as SIGTERM would have.

    Installed by ``guard serve`` in its main thread: Python's default for
    SIGTERM ends the process at once, dropping the queue. The previous
    handler runs afterwards; when it is the default, ``SystemExit(143)`` is
    raised, so ``finally`` blocks and the server's shutdown run (waitress
    takes it as its cue to shut down cleanly).
    """
    previous = signal.getsignal(signal.SIGTERM)

    def _flush_then_stop(signum: int, frame: Any) -> None:
        flush_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _flush_then_stop)
