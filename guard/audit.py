"""The decision log: one JSON line per policy decision, on logger ``guard.audit``.

Operators need to see why a request was denied, but a log sink (a full disk, a
slow syslog, a remote collector) must never slow a request down. So
:meth:`DecisionLog.record` only puts a tuple on a bounded queue; a background
thread turns it into JSON and logs it. When the queue is full the decision is
dropped and counted (``.dropped``, shown on the healthcheck): it never blocks
and never raises.

The line names the subject and the target by fingerprints
(:func:`guard.log.fingerprint`), never by raw ids.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from guard.log import fingerprint

AUDIT_LOGGER = "guard.audit"
DEFAULT_QUEUE_SIZE = 10_000

_STOP = object()


def _value(source: Any, name: str) -> Any:
    """A value of the credentials or target: a mapping's key or an object's attribute."""
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _fingerprint_or_none(value: Any) -> str | None:
    return fingerprint(str(value)) if value else None


class DecisionLog:
    """Writes decisions to ``guard.audit`` through a bounded queue and one thread.

    ``record()`` is what :attr:`guard.policy.Enforcer.decision_log` calls once
    per decision. ``flush()`` waits for the queue to drain (tests, shutdown);
    ``close()`` drains it and stops the thread.
    """

    def __init__(
        self, logger: logging.Logger | None = None, maxsize: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)
        self._maxsize = maxsize
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="guard-audit", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Decisions not written: the queue was full, or the log was closed."""
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
        # Checked without the queue's lock: a full queue (a slow sink) must cost
        # a request as little as possible. A racing put still fails with Full.
        if self._closed or len(self._queue.queue) >= self._maxsize:
            self._count_drop()
            return
        try:
            roles = _value(creds, "roles") or ()
            self._queue.put_nowait(
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
        """Wait until every queued decision is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread. Later records are dropped."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _count_drop(self) -> None:
        with self._dropped_lock:
            self._dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._write(item)
            except Exception:  # the thread must outlive a failing sink
                self._count_drop()
            finally:
                self._queue.task_done()

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
