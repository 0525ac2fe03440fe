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
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from oslo_config import cfg
from oslo_context import context
from oslo_policy import _checks, policy

from guard.policy.compiler import token_scope
from guard.policy.errors import PolicyFileError, Problem
from guard.policy.explain import Explanation, explain
from guard.policy.reload import DEFAULT_INTERVAL, PolicyFiles, PolicySource
from guard.policy.snapshot import PolicySnapshot
from guard.policy.validate import parse_policy_text, rule_set_problems

LOG = logging.getLogger(__name__)


class _TrackedRules(policy.Rules):
    """oslo's ``Rules`` that tells its enforcer when it is changed in place."""

    def __init__(self, rules: Mapping[str, Any], default_rule: Any, on_change: Callable) -> None:
        object.__setattr__(self, "_on_change", on_change)
        super().__init__(dict(rules), default_rule)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        self._on_change()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._on_change()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._on_change()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._on_change()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._on_change()
        return value

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._on_change()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._on_change()
        return item

    def clear(self) -> None:
        super().clear()
        self._on_change()


def _source_name(path: str) -> str:
    """A file's base name: problems never carry directory paths."""
    return os.path.basename(path)


class Enforcer(policy.Enforcer):
    """oslo.policy's Enforcer with compiled rules and safe hot reload."""

    #: Seconds between two checks of the policy files (at most one ``stat`` each).
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
        #: ``None`` or an object with ``record(**decision)`` (``guard.audit.DecisionLog``).
        self.decision_log: Any = None
        #: The problems of the last refused policy revision, or ``None``.
        self.last_reload_error: str | None = None
        #: Warnings (not errors) about the policy files last read.
        self.last_reload_warnings: list[Problem] = []
        self._source = self._new_source()
        self._files_applied = False

    def _new_source(self) -> PolicySource:
        return PolicySource(
            self._locate_policy_file, self._locate_policy_dirs, self.reload_interval
        )

    # -- oslo.policy state, tracked so that any change recompiles -------------------------

    @property
    def rules(self) -> policy.Rules:
        return self._rules

    @rules.setter
    def rules(self, value: Mapping[str, _checks.BaseCheck]) -> None:
        if not isinstance(value, _TrackedRules):
            value = _TrackedRules(value, getattr(value, "default_rule", None), self._mark_dirty)
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
            self._source = self._new_source()
            self._files_applied = False
            self.last_reload_error = None

    # -- revisions ------------------------------------------------------------------------

    @property
    def revision(self) -> str:
        """The hash of the rule set in force."""
        return self.snapshot().revision

    def snapshot(self) -> PolicySnapshot:
        """The rules in force, after a (rate-limited) check of the policy files."""
        snap = self._snapshot
        if snap is not None and not self._dirty and not (self.use_conf and self._source.due()):
            return snap
        return self._refresh(force=False)

    def load_rules(self, force_reload: bool = False) -> None:
        """Load or reload the policy files (oslo.policy's entry point for it).

        Raises :class:`PolicyFileError` when the files are invalid and no good
        revision was loaded before; later, invalid files are refused and
        recorded in :attr:`last_reload_error`.
        """
        if force_reload:
            self.use_conf = True
        self._refresh(force=force_reload)

    def _refresh(self, force: bool) -> PolicySnapshot:
        first = self._snapshot is None
        if not self._lock.acquire(blocking=force or first):
            # Another thread is reloading: serve the rules in force meanwhile.
            return self._snapshot  # type: ignore[return-value]
        try:
            files = self._source.poll(force=force or first) if self.use_conf else None
            if files is not None:
                self.policy_path = files.main[0] if files.main else None
                self._informed_no_policy_file = files.main is None
            if files is not None or self._dirty or self._snapshot is None:
                self._apply(files)
            return self._snapshot  # type: ignore[return-value]
        finally:
            self._lock.release()

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

    def _apply(self, files: PolicyFiles | None) -> None:
        """Build the next revision from ``files`` (or the current rules) and swap it in."""
        if files is None or not (files.present or self._files_applied):
            # No file change (or never any file): oslo.policy fills the registered
            # defaults into the rules in force, whatever code put there.
            self._with_defaults(self.rules, self.file_rules)
            self._install(self.rules)
            return
        problems: list[Problem] = []
        if files.present:
            base, file_rules, origins, problems = self._read_files(files)
            if not self.overwrite:
                base = {**self.rules, **base}
        else:
            LOG.warning("The policy file is gone; the default rules are in force.")
            base, file_rules, origins = {}, {}, {}
        base = self._with_defaults(base, file_rules)
        problems += rule_set_problems(base, origins, self._known_names())
        self.last_reload_warnings = [p for p in problems if p.severity == "warning"]
        for warning in self.last_reload_warnings:
            LOG.warning("Policy: %s", warning)
        if any(p.severity == "error" for p in problems):
            self._refuse(PolicyFileError(problems))
            return
        self.file_rules = file_rules
        self._files_applied = files.present
        self.rules = policy.Rules(base, self.default_rule)
        self._install(self.rules)
        self.last_reload_error = None

    def _install(self, rules: policy.Rules) -> None:
        self._snapshot = PolicySnapshot.build(
            rules, rules.default_rule, self.registered_rules, self
        )
        self._dirty = False

    def _read_files(
        self, files: PolicyFiles
    ) -> tuple[
        dict[str, _checks.BaseCheck],
        dict[str, policy.RuleDefault],
        dict[str, tuple[str, int | None]],
        list[Problem],
    ]:
        """Parse every file in load order; later files override earlier rules."""
        problems = [
            Problem(_source_name(path), None, None, f"cannot be read: {reason}")
            for path, reason in files.unreadable
        ]
        checks: dict[str, _checks.BaseCheck] = {}
        file_rules: dict[str, policy.RuleDefault] = {}
        origins: dict[str, tuple[str, int | None]] = {}
        for path, text in ([files.main] if files.main else []) + list(files.directory_files):
            parsed = parse_policy_text(text, _source_name(path))
            problems.extend(parsed.problems)
            for name in parsed.invalid:
                # Stands in for an unusable rule so that references to it are not
                # also reported as undefined; the revision is refused anyway.
                checks[name] = _checks.FalseCheck()
            for name, check_str in parsed.check_strings.items():
                file_rules[name] = policy.RuleDefault(name, check_str)
                checks[name] = file_rules[name].check
                origins[name] = (parsed.source, parsed.lines.get(name))
        return checks, file_rules, origins, problems

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

    def _refuse(self, error: PolicyFileError) -> None:
        if self._snapshot is None:
            raise error
        self.last_reload_error = str(error)
        if self._dirty:
            # Changes made in code (a newly registered default) still apply.
            self._with_defaults(self.rules, self.file_rules)
            self._install(self.rules)
        LOG.error(
            "Policy reload refused; revision %s stays in force: %s",
            self._snapshot.revision,
            error,
        )

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

    def _creds_dict(self, creds: _checks.CredsT) -> MutableMapping[str, Any]:
        if isinstance(creds, context.RequestContext):
            creds_dict = self._map_context_attributes_into_creds(creds)
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

    @staticmethod
    def _scope_allows(creds: MutableMapping[str, Any], rule: Any, do_raise: bool) -> bool:
        """oslo.policy's ``_enforce_scope``, without the method-call overhead."""
        scope_types = rule.scope_types
        if not scope_types:
            return True
        scope = token_scope(creds)
        if scope not in scope_types:
            if do_raise:
                raise policy.InvalidScope(rule, scope_types, scope)
            return False
        return True

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
