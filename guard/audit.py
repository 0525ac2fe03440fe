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
(:func:`guard.logfingerprints.fingerprint`), never by raw ids. Its free-text fields
(action, branch, roles, a request id of another shape than guard's) are
redacted one by one before the line is composed, and the line is logged as
redacted (:func:`guard.log.log_redacted`): the handlers' filter would only
scan, at some 20 us a line, a text made of parts it has already seen. The
writer composes the JSON itself, from parts it caches (a repeated decision
is one lookup), as ``json.dumps`` would write it. A list request is one
line (:func:`list_branch`: every row, filtered, or denied, with the rule).

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
from json.encoder import encode_basestring_ascii
from typing import Any, Protocol

from guard.auditjson import (
    CACHED_TEXT_LEN,
    MAX_CACHED_TEXTS,
    cached_json,
    is_request_id,
    json_number,
    json_request_id,
)
from guard.log import log_redacted, redact
from guard.logfingerprints import fingerprint
from guard.logscope import current_scope

AUDIT_LOGGER = "guard.audit"
DEFAULT_QUEUE_SIZE = 10_000
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


def _values(source: Any, first: str, second: str) -> tuple[Any, Any]:
    """Two values of the credentials or target: a mapping's keys or an object's attributes."""
    # A plain dict first: the ABC check of Mapping costs more than the lookups.
    if type(source) is dict or isinstance(source, Mapping):
        return source.get(first), source.get(second)
    return getattr(source, first, None), getattr(source, second, None)


class _Fingerprint:
    """An id fingerprinted when it was recorded (it was too long to keep).

    Not a ``str``: it must never equal (and so never share a cached line
    with) a raw id that happens to read like a fingerprint.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _kept(value: Any) -> Any:
    """``value`` as the queue keeps it: a text too long for an id is fingerprinted now."""
    if isinstance(value, str) and len(value) > _MAX_TEXT_CHARS:
        return _Fingerprint(fingerprint(value))
    return value


def _kept_roles(roles: Any) -> tuple[str, ...] | list[Any]:
    """At most :data:`MAX_ROLES` roles, each bounded; the others counted."""
    if type(roles) is list or type(roles) is tuple:
        # The usual case, checked in C: a few texts, together no longer than
        # one bounded role (so each is bounded), kept as they are.
        try:
            joined = "".join(roles)
        except TypeError:  # not all texts: the general case below
            joined = None
        if joined is not None and len(roles) <= MAX_ROLES and len(joined) <= _MAX_TEXT_CHARS:
            return tuple(roles)
    roles = list(roles)
    kept: list[Any] = [_kept(str(role)) for role in roles[:MAX_ROLES]]
    if len(roles) > MAX_ROLES:
        kept.append(f"(+{len(roles) - MAX_ROLES} more)")
    return kept


def _caller_free(roles: tuple[str, ...] | list[Any]) -> tuple[str, ...] | list[Any]:
    """``roles``, a role that is one of the request's own values fingerprinted.

    Roles are names, logged readable; but one spelled like the caller's id or
    name (or token) is that value, which the request's other lines scrub; one
    that holds it as a word ("<project id>-admin") is scrubbed as they scrub it.
    Runs on the request's thread, where its scope is (guard.logscope).
    """
    scope = current_scope.get()
    values = scope.values
    if not values:
        return roles
    # A role that holds such a value as a word of its own ("p1-admin") shows
    # it too: the other lines scrub it there (guard.logscope). The usual case,
    # no value inside any role, is checked in C.
    joined = "\n".join(role for role in roles if type(role) is str)
    if not any(map(joined.__contains__, values)):
        return roles
    return [
        _Fingerprint(fingerprint(role))
        if role in values
        else scope.scrub(role)
        if type(role) is str
        else role
        for role in roles
    ]


_NS_PER_S = 1_000_000_000


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
        # Used by the writer thread only: no lock. What is cached is bounded
        # in entries and (but for the role tuples, bounded by _kept_roles) in
        # key length, and cleared when the fingerprint key changes.
        self._texts: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self._role_lists: dict[tuple[str, ...], str] = {}
        self._decisions: dict[tuple[Any, ...], str] = {}
        self._key_tag = ""
        self._second = -1
        self._second_text = ""
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
            if type(target) is dict:  # _values() inline for the usual target: per request
                target_project_id, target_user_id = target.get("project_id"), target.get("user_id")
            else:
                target_project_id, target_user_id = _values(target, "project_id", "user_id")
            # What one decision is, apart from its time and request: the
            # writer caches its JSON by it (a list of roles is not cached).
            limit = _MAX_TEXT_CHARS
            decision = (
                action,
                bool(allowed),
                branch,
                # _kept() inline for the usual short id: this runs per request.
                user_id
                if not isinstance(user_id, str) or len(user_id) <= limit
                else _kept(user_id),
                project_id
                if not isinstance(project_id, str) or len(project_id) <= limit
                else _kept(project_id),
                target_project_id
                if not isinstance(target_project_id, str) or len(target_project_id) <= limit
                else _kept(target_project_id),
                target_user_id
                if not isinstance(target_user_id, str) or len(target_user_id) <= limit
                else _kept(target_user_id),
                _caller_free(_kept_roles(roles or ())),
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
        if pending:
            key_tag = fingerprint(_KEY_PROBE)
            if key_tag != self._key_tag:  # a new key: cached fingerprints are stale
                for cache in (self._texts, self._ids, self._role_lists, self._decisions):
                    cache.clear()
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
        when, request_id, global_request_id, microseconds, decision = item
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        # Composed as json.dumps(..., separators=(",", ":")) writes the same
        # object (ensure_ascii's escapes included), from parts the writer
        # caches: measured need, the dict and dumps() were a third of the line.
        # The time, the usual request ids (guard's shape, no global id), a
        # cached decision and whole microseconds inline: measured need, their
        # calls were a quarter of what was left (and cost more in place).
        seconds, nanoseconds = divmod(when, _NS_PER_S)
        if seconds != self._second:  # the date and time to the second change once a second
            self._second = seconds
            self._second_text = time.strftime('{"time":"%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))
        if type(request_id) is str and is_request_id(request_id):
            request_id = f'"{request_id}"'  # req-, hex digits and dashes: nothing to escape
        else:
            request_id = json_request_id(request_id)
        try:  # a repeated decision: _json_decision()'s cache, inline
            middle = self._decisions.get(decision)
        except TypeError:  # an unhashable part: _json_decision() composes it
            middle = None
        if middle is None:
            middle = self._json_decision(decision)
        if type(microseconds) is int:  # what the policy engine reports
            number = int.__repr__(microseconds)
        else:
            number = json_number(microseconds)
        log_redacted(
            logger,
            logging.INFO,
            f'{self._second_text}.{nanoseconds // 1000:06d}+00:00",'
            f'"request_id":{request_id},'
            f'"global_request_id":'
            f"{'null' if global_request_id is None else json_request_id(global_request_id)},"
            f'{middle},"microseconds":{number}}}',
        )

    def _json_decision(self, decision: tuple[Any, ...]) -> str:
        """The line's middle, ``"action":...`` to ``"revision":...``, cached by decision.

        Requests repeat decisions (the same caller, rule and owners), so the
        JSON of one is kept: only a decision whose texts are short (a list
        of roles, too many to be sure of, is not hashable and not cached).
        """
        cache = self._decisions
        try:
            done = cache.get(decision)
        except TypeError:  # an unhashable part: composed each time
            return self._compose_decision(decision)
        if done is None:
            done = self._compose_decision(decision)
            action, _, branch, *_, revision = decision
            if all(
                len(str(text)) <= CACHED_TEXT_LEN
                for text in (action, branch, revision)
                if text is not None
            ):
                if len(cache) >= MAX_CACHED_TEXTS:
                    cache.clear()
                cache[decision] = done
        return done

    def _compose_decision(self, decision: tuple[Any, ...]) -> str:
        action, allowed, branch, user, project, target_project, target_user, roles, revision = (
            decision
        )
        text, fp = self._json_text, self._json_id
        return (
            f'"action":{text(action)},"allowed":{"true" if allowed else "false"},'
            f'"branch":{text(branch)},"user":{fp(user)},"project":{fp(project)},'
            f'"target_project":{fp(target_project)},"target_user":{fp(target_user)},'
            f'"roles":{self._json_roles(roles)},"revision":{text(revision)}'
        )

    def _json_text(self, value: Any) -> str:
        """The JSON of a free-text field, redacted (``null`` for ``None``)."""
        if value is None:
            return "null"
        if type(value) is not str:
            value = str(value)
        return cached_json(self._texts, value, redact)

    def _json_id(self, value: Any) -> str:
        """The JSON of an id's fingerprint (``null`` for none)."""
        if not value:
            return "null"
        if isinstance(value, _Fingerprint):
            return encode_basestring_ascii(value.text)
        if type(value) is not str:
            value = str(value)
        return cached_json(self._ids, value, fingerprint)

    def _json_roles(self, roles: tuple[str, ...] | list[Any]) -> str:
        """The JSON list of the roles, each redacted (cached for short tuples)."""
        if not isinstance(roles, tuple):  # the general case: not cached
            return "[" + ",".join([self._json_text(role) for role in roles]) + "]"
        cache = self._role_lists
        done = cache.get(roles)
        if done is None:
            done = "[" + ",".join([self._json_text(role) for role in roles]) + "]"
            if len(cache) >= MAX_CACHED_TEXTS:
                cache.clear()
            cache[roles] = done
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
