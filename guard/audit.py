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
(:func:`guard.log.fingerprint`), never by raw ids.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from guard.log import fingerprint

AUDIT_LOGGER = "guard.audit"
DEFAULT_QUEUE_SIZE = 10_000
#: How long a decision may wait before the writer logs it (seconds).
WRITE_INTERVAL_S = 0.1
# How often flush() looks again whether the writer is done (seconds).
_FLUSH_POLL_S = 0.005


def _value(source: Any, name: str) -> Any:
    """A value of the credentials or target: a mapping's key or an object's attribute."""
    # A plain dict first: the ABC check of Mapping costs more than the lookup.
    if type(source) is dict or isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _fingerprint_or_none(value: Any) -> str | None:
    return fingerprint(str(value)) if value else None


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
        self._thread = threading.Thread(target=self._run, name="guard-audit", daemon=True)
        self._thread.start()

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
                    _value(creds, "user_id"),
                    _value(creds, "project_id"),
                    _value(target, "project_id"),
                    _value(target, "user_id"),
                    [str(role) for role in roles],
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
        line = {
            "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="microseconds"),
            "request_id": request_id,
            "global_request_id": global_request_id,
            "action": action,
            "allowed": allowed,
            "branch": branch,
            "user": _fingerprint_or_none(user_id),
            "project": _fingerprint_or_none(project_id),
            "target_project": _fingerprint_or_none(target_project_id),
            "target_user": _fingerprint_or_none(target_user_id),
            "roles": roles,
            "revision": revision,
            "microseconds": round(microseconds, 1),
        }
        self._logger.info("%s", json.dumps(line, separators=(",", ":"), default=str))
