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
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Mapping, MutableMapping
from typing import Any

from oslo_config import cfg
from oslo_context import context
from oslo_policy import _checks, policy

from guard.audit import DecisionRecorder
from guard.policy.compiler import token_scope
from guard.policy.errors import PolicyFileError, Problem
from guard.policy.explain import Explanation, explain
from guard.policy.filerules import read_policy_files
from guard.policy.reload import DEFAULT_INTERVAL, Clock, PolicyFiles, PolicySource
from guard.policy.snapshot import PolicySnapshot
from guard.policy.tracked import TrackedRules
from guard.policy.validate import rule_set_problems

LOG = logging.getLogger(__name__)
_OSLO_CONTEXT_CREDS = policy.Enforcer._map_context_attributes_into_creds
_PolicyValues = context._DeprecatedPolicyValues


def _source_name(path: str) -> str:
    """A file's base name: problems never carry directory paths."""
    return os.path.basename(path)


class Enforcer(policy.Enforcer):
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

    def fail_closed(self, clock: Clock | None = None) -> None:
        """Use guard's file handling from now on (``make_enforcer`` does, for the service).

        The next load validates the files whole and raises
        :class:`PolicyFileError` when they are invalid and no good revision
        was loaded before; afterwards a bad, missing or empty file keeps the
        last good rules and is reported in :attr:`last_reload_error`.
        """
        self._clock = clock or Clock()
        self._source = PolicySource(
            self._locate_policy_file, self._locate_policy_dirs, self.reload_interval, self._clock
        )
        self._snapshot = None

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

    # -- guard's own file handling (after fail_closed()) ----------------------------------

    def _locate_policy_file(self) -> str | None:
        # An absolute path is not checked here: the poll's one stat tells.
        return self._locate(self.policy_file)

    def _locate_policy_dirs(self) -> list[str]:
        found = (self._locate(path) for path in self.conf.oslo_policy.policy_dirs if path)
        return [path for path in found if path and os.path.isdir(path)]

    def _locate(self, path: str) -> str | None:
        if os.path.isabs(path):
            return path
        return self.conf.find_file(path)

    def _poll(self, force: bool) -> None:
        files = self._source.poll(force=force)  # type: ignore[union-attr]
        first = self._snapshot is None
        if files is None:
            return
        missing = files.main_missing or (
            self.policy_path is not None and files.main is None and self._main_applied
        )
        if not first and (files.empty or (missing and self._main_applied)):
            if files.main_unreadable:
                what = f"cannot be read ({files.main_unreadable})"
            else:
                what = "is missing" if missing else f"is empty ({', '.join(files.empty)})"
            name = _source_name(self.policy_path or "policy file")
            self._hold(f"{name}: the policy file {what}; the last good rules stay in force")
            return
        if files.digest == self._applied_digest:
            self.last_reload_error = None  # back as it was (renamed away and back)
            return
        self._apply(files)

    def _apply(self, files: PolicyFiles) -> None:
        """Build the next revision from ``files``, validated whole, and swap it in."""
        base, file_rules, origins, problems = read_policy_files(files)
        if not self.overwrite:
            base = {**self.rules, **base}
        base = self._with_defaults(base, file_rules)
        found = rule_set_problems(base, origins, self._known_names())
        if self.skip_undefined_check:
            # oslo.policy's switch for enforcers that hold part of a rule set.
            found = [p for p in found if not p.message.startswith("refers to undefined rule")]
        problems += found
        self.last_reload_warnings = [p for p in problems if p.severity == "warning"]
        for warning in self.last_reload_warnings:
            LOG.warning("Policy: %s", warning)
        if any(p.severity == "error" for p in problems):
            error = PolicyFileError(problems)
            if self._snapshot is None:
                raise error
            self._hold(f"reload refused: {error}")
            return
        self.policy_path = files.main[0] if files.main else None
        self._informed_no_policy_file = files.main is None
        self.file_rules = file_rules
        self._applied_digest = files.digest
        self._main_applied = files.main is not None
        self.rules = policy.Rules(base, self.default_rule)
        self.last_reload_error = None

    def _hold(self, reason: str) -> None:
        """Keep the rules in force and say why, once per poll that finds a change."""
        self.last_reload_error = reason
        revision = self._snapshot.revision if self._snapshot else None
        LOG.error("Policy revision %s stays in force: %s", revision, reason)

    def _with_defaults(
        self,
        base: MutableMapping[str, _checks.BaseCheck],
        file_rules: dict[str, policy.RuleDefault],
    ) -> MutableMapping[str, _checks.BaseCheck]:
        """Add the registered defaults missing from ``base``, as oslo's ``load_rules``."""
        if not self.use_conf:
            return base
        saved, self.file_rules = self.file_rules, file_rules
        try:
            for default in self.registered_rules.values():
                if default.deprecated_for_removal:
                    self._emit_deprecated_for_removal_warning(default)
                if default.name in base:
                    continue
                check = default.check
                if default.deprecated_rule:
                    check = self._handle_deprecated_rule(default)
                base[default.name] = check
        finally:
            self.file_rules = saved
        return base

    def _known_names(self) -> set[str]:
        names = set(self.registered_rules)
        names.update(
            d.deprecated_rule.name for d in self.registered_rules.values() if d.deprecated_rule
        )
        return names

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
        return self._decide(self.snapshot(), rule, target, creds, do_raise, exc, args, kwargs)

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
        return self._decide(snapshot, rule, target, creds, do_raise, exc, args, kwargs)

    def _context_creds(self, ctx: context.RequestContext) -> MutableMapping[str, Any]:
        """oslo's ``_map_context_attributes_into_creds(ctx)`` as one dict copy (the same dict).

        oslo copies key by key through an abstract base class: half of a decision on a
        context (guard.tools.bench.policy). Where the result may differ (the method
        overridden or replaced, other values, deprecated keys whose reads warn) it is called.
        """
        if type(self)._map_context_attributes_into_creds is _OSLO_CONTEXT_CREDS:
            values = ctx.to_policy_values()
            if type(values) is _PolicyValues and not values._deprecated:
                return dict(values._data)
        return self._map_context_attributes_into_creds(ctx)

    def _creds_dict(self, creds: _checks.CredsT) -> MutableMapping[str, Any]:
        if isinstance(creds, context.RequestContext):
            creds_dict = self._context_creds(creds)
        elif isinstance(creds, MutableMapping):
            creds_dict = creds
        else:
            raise policy.InvalidContextObject(
                f"Expected type oslo_context.context.RequestContext, dict, or the output of "
                f"oslo_context.context.RequestContext.to_policy_values but got "
                f"{type(creds)} instead"
            )
        if creds_dict.get("system_scope"):
            creds_dict["system"] = creds_dict.get("system_scope")
        return creds_dict

    def _decide(
        self,
        snap: PolicySnapshot,
        rule: _checks.BaseCheck | str,
        target: _checks.TargetT,
        creds: _checks.CredsT,
        do_raise: bool,
        exc: type[Exception] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        creds_dict = self._creds_dict(creds)
        log = self.decision_log
        started = time.perf_counter() if log is not None else 0.0
        branch = "denied"
        if isinstance(rule, _checks.BaseCheck):
            if not self._scope_allows(creds_dict, rule, do_raise):
                self._record(log, snap, rule, False, "scope", creds, creds_dict, target, started)
                return False
            result = _checks._check(rule, target, creds_dict, self, None)
            branch = "check"
        elif not snap.rules:
            result = False
            branch = "no_rules"
        else:
            compiled = snap.compiled_rule(rule)
            if compiled is None:
                result = False
                branch = "undefined_rule"
            else:
                registered = snap.registered.get(rule)
                if registered is not None and not self._scope_allows(
                    creds_dict, registered, do_raise
                ):
                    self._record(
                        log, snap, rule, False, "scope", creds, creds_dict, target, started
                    )
                    return False
                if log is None:
                    result = compiled.evaluate(target, creds_dict)
                else:
                    result, index = compiled.decide_with_branch(target, creds_dict)
                    if index is not None:
                        branch = compiled.branches[index][0]
                    elif result:
                        branch = compiled.label
        if log is not None:
            self._record(log, snap, rule, result, branch, creds, creds_dict, target, started)
        if do_raise and not result:
            if exc:
                raise exc(*args, **kwargs)
            raise policy.PolicyNotAuthorized(rule, target, creds_dict)
        return result

    def _scope_allows(self, creds: MutableMapping[str, Any], rule: Any, do_raise: bool) -> bool:
        """oslo.policy's ``_enforce_scope``, without its cost on the common path.

        Before oslo.policy 6, ``[oslo_policy] enforce_scope = False`` lets a
        mismatched scope through with a warning; it is read only on a mismatch.
        """
        scope_types = rule.scope_types
        if not scope_types:
            return True
        scope = token_scope(creds)
        if scope in scope_types:
            return True
        enforced = getattr(self.conf.oslo_policy, "enforce_scope", True)
        if enforced and do_raise:
            raise policy.InvalidScope(rule, scope_types, scope)
        if "enforce_scope" in self.conf.oslo_policy:  # oslo.policy < 6 also warns
            warnings.warn(
                f"Policy {rule} failed scope check. The token used to make the request "
                f"was {scope} scoped but the policy requires {scope_types} scope. This "
                f"behavior may change in the future where using the intended scope is "
                f"required",
                stacklevel=3,
            )
        return not enforced

    @staticmethod
    def _record(
        log: Any,
        snap: PolicySnapshot,
        rule: Any,
        allowed: Any,
        branch: str,
        creds: Any,
        creds_dict: MutableMapping[str, Any],
        target: Any,
        started: float,
    ) -> None:
        """Report one decision; a failing decision log never fails the request."""
        if log is None:
            return
        try:
            log.record(
                action=rule if isinstance(rule, str) else "<check>",
                allowed=bool(allowed),
                branch=branch,
                creds=creds_dict,
                target=target,
                revision=snap.revision,
                microseconds=int((time.perf_counter() - started) * 1e6),
                request_id=getattr(creds, "request_id", None) or creds_dict.get("request_id"),
                global_request_id=(
                    getattr(creds, "global_request_id", None)
                    or creds_dict.get("global_request_id")
                ),
            )
        except Exception:  # the decision stands whatever the log does
            LOG.debug("The decision log failed to record a decision", exc_info=True)
