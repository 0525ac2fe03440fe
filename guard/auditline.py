"""One decision's JSON line, composed by the decision log's writer from parts it caches.

:class:`LineWriter` is the writer thread's half of :class:`guard.audit.DecisionLog`:
it turns a queued decision into its line and logs it. The line names the
subject and the target by fingerprints (:func:`guard.logfingerprints.fingerprint`),
never by raw ids. Its free-text fields (action, branch, roles, a request id of
another shape than guard's) are redacted one by one before the line is
composed, and the line is logged as redacted (:func:`guard.log.log_redacted`):
the handlers' filter would only scan, at some 20 us a line, a text made of
parts it has already seen. The writer composes the JSON itself, from parts it
caches (a repeated decision is one lookup), as ``json.dumps`` would write it
(the parts: :mod:`guard.auditjson`). A list request is one line
(:func:`list_branch`: every row, filtered, or denied, with the rule).
"""

from __future__ import annotations

import logging
import time
from json.encoder import encode_basestring_ascii
from typing import Any

from guard.auditjson import (
    CACHED_TEXT_LEN,
    MAX_CACHED_TEXTS,
    cached_json,
    is_request_id,
    json_number,
    json_request_id,
)
from guard.auditvalues import Fingerprint
from guard.log import log_redacted, redact
from guard.logfingerprints import fingerprint

# A fixed text whose fingerprint changes when the fingerprint key does.
_KEY_PROBE = "guard.audit"
# How a list request ended, by the kind of its compiled row filter.
_LIST_OUTCOMES = {
    "allow": "all rows",
    "condition": "filtered",
    "per_row": "filtered",
    "deny": "denied",
}
_NS_PER_S = 1_000_000_000


class LineWriter:
    """Logs queued decisions on ``logger``, one JSON line each, from cached parts.

    Used by the writer thread only: no lock. What is cached is bounded in
    entries and (but for the role tuples, bounded by
    :func:`guard.auditvalues.kept_roles`) in key length, and cleared when the
    fingerprint key changes (:meth:`follow_key`).
    """

    def __init__(self, logger: logging.Logger) -> None:
        #: Where the lines go (``guard.audit`` unless a test or tool says otherwise).
        self.logger = logger
        self._texts: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self._role_lists: dict[tuple[str, ...], str] = {}
        self._decisions: dict[tuple[Any, ...], str] = {}
        self._key_tag = ""
        self._second = -1
        self._second_text = ""

    def follow_key(self) -> None:
        """Forget what is cached when the fingerprint key has changed (it is stale)."""
        key_tag = fingerprint(_KEY_PROBE)
        if key_tag != self._key_tag:  # a new key: cached fingerprints are stale
            for cache in (self._texts, self._ids, self._role_lists, self._decisions):
                cache.clear()
            self._key_tag = key_tag

    def write(self, item: tuple[Any, ...]) -> None:
        """Log one queued decision, ``(time_ns, request_id, global_request_id, us, decision)``."""
        when, request_id, global_request_id, microseconds, decision = item
        logger = self.logger
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
        if isinstance(value, Fingerprint):
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
