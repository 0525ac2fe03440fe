"""``guard.policy.Enforcer``: oslo.policy's Enforcer, compiled and safe to edit live.

A drop-in subclass of ``oslo_policy.policy.Enforcer``: same constructor,
``enforce()``/``authorize()`` signatures, decisions and exceptions. What
changes is how rules get to a decision:

- rules are held in immutable, compiled :class:`PolicySnapshot` revisions,
  swapped atomically; a request sees the old or the new rule set, never a mix;
- the policy files are polled at most once per ``reload_interval`` and
  validated whole before use; a bad edit is refused, logged once and recorded
  in :attr:`last_reload_error`, and the last good rules stay in force;
- an invalid file at the first load raises :class:`PolicyFileError`, never a
  silent fall back to defaults;
- each decision can be reported to :attr:`decision_log`.

This module holds the Enforcer's state and its revisions; the rest is in a
module of its own each: guard's reading of the files in
:mod:`guard.policy.loading`, one decision in :mod:`guard.policy.decisions`
(credentials: :mod:`guard.policy.creds`; scope: :mod:`guard.policy.scope`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from oslo_config import cfg
from oslo_policy import _checks, policy

from guard.audit import DecisionRecorder
from guard.policy.decisions import decide
from guard.policy.errors import Problem
from guard.policy.explain import Explanation, explain
from guard.policy.loading import FailClosedLoading
from guard.policy.reload import DEFAULT_INTERVAL, Clock, PolicySource
from guard.policy.snapshot import PolicySnapshot
from guard.policy.tracked import TrackedRules


class Enforcer(FailClosedLoading):
    """oslo.policy's Enforcer with compiled rules; guard's fail-closed reload on demand.

    Under oslo.policy's API it loads files as oslo.policy does (its
    ``load_rules()``, ``policy_dirs``, ``overwrite``, ``check_rules()`` and
    warnings), checking the files at most once per :attr:`reload_interval`
    per request. :meth:`fail_closed` (``make_enforcer`` calls it for guard's
    service) switches to guard's own file handling instead: whole-file
    validation, a refused file keeps the last good rules, a missing or empty
    file is never applied, and a saved change waits until the file is quiet.
    """

    #: Seconds between two checks of the policy files made on behalf of a request.
    reload_interval: float = DEFAULT_INTERVAL

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        policy_file: str | None = None,
        rules: MutableMapping[str, _checks.BaseCheck] | None = None,
        default_rule: _checks.BaseCheck | str | None = None,
        use_conf: bool = True,
        overwrite: bool = True,
        fallback_to_json_file: bool | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._dirty = True
        self._snapshot: PolicySnapshot | None = None
        self._registered: dict[str, policy.RuleDefault] = {}
        super().__init__(
            conf, policy_file, rules, default_rule, use_conf, overwrite, fallback_to_json_file
        )
        #: Told of each decision (``guard.audit.DecisionLog``), or ``None``.
        self.decision_log: DecisionRecorder | None = None
        #: Why the policy files are not in force (refused, missing, empty), or ``None``.
        self.last_reload_error: str | None = None
        #: Warnings (not errors) about the policy files last read.
        self.last_reload_warnings: list[Problem] = []
        self._next_check = 0.0
        self._clock = Clock()
        #: guard's own file handling (see :meth:`fail_closed`), or ``None``.
        self._source: PolicySource | None = None
        self._applied_digest: str | None = None
        self._main_applied = False
        self._dirs_applied: dict[str, str] = {}
        self._dir_entries: dict[str, str] = {}

    # -- oslo.policy state, tracked so that any change recompiles -------------------------

    @property
    def rules(self) -> policy.Rules:
        return self._rules

    @rules.setter
    def rules(self, value: Mapping[str, _checks.BaseCheck]) -> None:
        if isinstance(value, Mapping) and not isinstance(value, TrackedRules):
            value = TrackedRules(value, getattr(value, "default_rule", None), self._mark_dirty)
        self._rules = value
        self._dirty = True

    @property
    def registered_rules(self) -> dict[str, policy.RuleDefault]:
        return self._registered

    @registered_rules.setter
    def registered_rules(self, value: dict[str, policy.RuleDefault]) -> None:
        self._registered = value
        self._dirty = True

    def _mark_dirty(self) -> None:
        self._dirty = True

    def register_default(self, default: policy.RuleDefault) -> None:
        super().register_default(default)
        self._dirty = True

    def clear(self) -> None:
        with self._lock:
            super().clear()
            if self._source is not None:
                self.fail_closed(self._clock)
            self._applied_digest = None
            self._main_applied = False
            self._dirs_applied = {}
            self.last_reload_error = None

    # -- revisions ------------------------------------------------------------------------

    @property
    def revision(self) -> str:
        """The hash of the rule set in force."""
        return self.snapshot().revision

    def snapshot(self) -> PolicySnapshot:
        """The rules in force, after a (rate-limited) check of the policy files."""
        snap = self._snapshot
        if (
            snap is not None
            and not self._dirty
            and (not self.use_conf or self._clock.monotonic() < self._next_check)
        ):
            return snap
        return self._refresh(snap)

    def _refresh(self, snap: PolicySnapshot | None) -> PolicySnapshot:
        if not self._lock.acquire(blocking=snap is None):
            return snap  # type: ignore[return-value]  # another thread is reloading
        try:
            if self.use_conf and (
                self._snapshot is None or self._clock.monotonic() >= self._next_check
            ):
                self._next_check = self._clock.monotonic() + self.reload_interval
                if self._source is None:
                    super().load_rules()
                else:
                    self._poll(force=self._snapshot is None)
            if self._dirty or self._snapshot is None:
                self._install()
            return self._snapshot  # type: ignore[return-value]
        finally:
            self._lock.release()

    def load_rules(self, force_reload: bool = False) -> None:
        """Load or reload the policy files now (oslo.policy's entry point for it).

        oslo.policy's own loading, or after :meth:`fail_closed` guard's:
        validated, without waiting for the file to settle.
        """
        with self._lock:
            if self._source is None:
                super().load_rules(force_reload)
            else:
                if force_reload:
                    self.use_conf = True
                if self.use_conf:
                    self._poll(force=True)
            if self._dirty or self._snapshot is None:
                self._install()

    def _install(self) -> None:
        if self._source is not None:
            # guard's loading: defaults registered in code after the load apply too.
            self._with_defaults(self.rules, self.file_rules)
        self._snapshot = PolicySnapshot.build(
            self.rules, self.rules.default_rule, self.registered_rules, self
        )
        self._dirty = False

    def explain(
        self, action: str, target: Mapping[str, Any], creds: _checks.CredsT
    ) -> Explanation:
        """The evaluation tree of ``action`` with each check's result (never for clients)."""
        return explain(self, self.snapshot(), action, target, creds)

    # -- decisions ------------------------------------------------------------------------

    def enforce(
        self,
        rule: _checks.BaseCheck | str,
        target: _checks.TargetT,
        creds: _checks.CredsT,
        do_raise: bool = False,
        exc: type[Exception] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """oslo.policy's ``enforce()``, evaluated on the compiled snapshot."""
        return decide(self, self.snapshot(), rule, target, creds, do_raise, exc, args, kwargs)

    def authorize(
        self,
        rule: str,
        target: _checks.TargetT,
        creds: _checks.CredsT,
        do_raise: bool = False,
        exc: type[Exception] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """oslo.policy's ``authorize()``: ``enforce()`` of a registered rule only."""
        return self.authorize_in(
            self.snapshot(), rule, target, creds, do_raise, exc, *args, **kwargs
        )

    def authorize_in(
        self,
        snapshot: PolicySnapshot,
        rule: str,
        target: _checks.TargetT,
        creds: _checks.CredsT,
        do_raise: bool = False,
        exc: type[Exception] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """``authorize()`` on a given snapshot: several decisions, one rule set."""
        if rule not in snapshot.registered:
            raise policy.PolicyNotRegistered(rule)
        return decide(self, snapshot, rule, target, creds, do_raise, exc, args, kwargs)
