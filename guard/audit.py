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

What one decision keeps while it waits is bounded in bytes and free of the
caller's own values (:mod:`guard.auditvalues`); the writer composes its JSON
line from cached parts (:class:`guard.auditline.LineWriter`).

Queued lines outlive the process's end: :func:`flush_all` writes what every
live log holds (gunicorn's ``worker_exit`` closes the worker's log), and
:func:`flush_on_sigterm` makes a SIGTERM flush before the process stops, as
``guard serve`` needs (its default SIGTERM action would drop the queue).
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

from guard.auditline import LineWriter
from guard.auditvalues import MAX_TEXT_CHARS, caller_free, kept, kept_roles, values_of

AUDIT_LOGGER = "guard.audit"
DEFAULT_QUEUE_SIZE = 10_000
#: How long a decision may wait before the writer logs it (seconds).
WRITE_INTERVAL_S = 0.1
# How often flush() looks again whether the writer is done (seconds).
_FLUSH_POLL_S = 0.005
# Every DecisionLog not yet collected, for flush_all().
_LIVE: weakref.WeakSet[DecisionLog] = weakref.WeakSet()


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
        # The writer thread's half: composes and logs each line.
        self._lines = LineWriter(logger or logging.getLogger(AUDIT_LOGGER))
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
        """Queue one decision; never blocks, never raises (a failure is a drop).

        It runs on the request's thread, so it only copies references and
        bounds what it keeps; everything else is the writer's.
        """
        pending = self._pending
        # No lock: two racing requests may both pass the length check, so the
        # deque can exceed maxsize by the number of request threads, no more.
        if self._closed or len(pending) >= self._maxsize:
            self._count_drop()
            return
        try:
            if type(creds) is dict or isinstance(creds, Mapping):
                user_id, project_id = creds.get("user_id"), creds.get("project_id")
                roles = creds.get("roles")
            else:
                user_id = getattr(creds, "user_id", None)
                project_id = getattr(creds, "project_id", None)
                roles = getattr(creds, "roles", None)
            if type(target) is dict:  # values_of() inline for the usual target: per request
                target_project_id, target_user_id = target.get("project_id"), target.get("user_id")
            else:
                target_project_id, target_user_id = values_of(target, "project_id", "user_id")
            # What one decision is, apart from its time and request: the
            # writer caches its JSON by it (a list of roles is not cached).
            limit = MAX_TEXT_CHARS
            decision = (
                action,
                bool(allowed),
                branch,
                # kept() inline for the usual short id: this runs per request.
                user_id
                if not isinstance(user_id, str) or len(user_id) <= limit
                else kept(user_id),
                project_id
                if not isinstance(project_id, str) or len(project_id) <= limit
                else kept(project_id),
                target_project_id
                if not isinstance(target_project_id, str) or len(target_project_id) <= limit
                else kept(target_project_id),
                target_user_id
                if not isinstance(target_user_id, str) or len(target_user_id) <= limit
                else kept(target_user_id),
                caller_free(kept_roles(roles or ())),
                revision,
            )
            pending.append((time.time_ns(), request_id, global_request_id, microseconds, decision))
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
        lines = self._lines
        if pending:
            lines.follow_key()
        while pending:
            self._writing = True
            try:
                lines.write(pending.popleft())
            except Exception:  # the thread must outlive a failing sink
                self._count_drop()
            finally:
                self._writing = False
        with self._drained:
            self._drained.notify_all()


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
