"""guard's fail-closed loading of the policy files, the part of the Enforcer that reads them.

After ``Enforcer.fail_closed()`` (``make_enforcer`` calls it for guard's
service) the enforcer no longer loads files as oslo.policy does. On each
poll of its :class:`~guard.policy.reload.PolicySource` it reads the files
itself, validates them whole (:func:`~guard.policy.validate.rule_set_problems`)
and only then builds the next rule set; a refused, missing or empty file keeps
the last good rules and says why in ``last_reload_error``, and so does a
``policy_dirs`` directory that was applied and is gone (until it is back).

This is a base class of :class:`guard.policy.enforcer.Enforcer` and not
meant to be used alone: it works on the state the Enforcer keeps (its
snapshot, the files' digest in force, whether the main file is part of it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

from oslo_policy import _checks, policy

from guard.policy.errors import PolicyFileError, Problem
from guard.policy.filerules import read_policy_files
from guard.policy.reload import Clock, PolicyFiles, PolicySource
from guard.policy.snapshot import PolicySnapshot
from guard.policy.validate import rule_set_problems

# The name these lines had before they moved out of guard.policy.enforcer: log
# configurations that name it keep working.
LOG = logging.getLogger("guard.policy.enforcer")
#: oslo.policy's default ``[oslo_policy] policy_dirs`` entry: its absence is not news.
OSLO_DEFAULT_POLICY_DIR = "policy.d"


def _source_name(path: str) -> str:
    """A file's or directory's base name: problems never carry directory paths."""
    return os.path.basename(os.path.normpath(path))


class FailClosedLoading(policy.Enforcer):
    """oslo.policy's Enforcer, with guard's whole-file validation of the policy files."""

    # The Enforcer's state this part reads and writes (set in its ``__init__``).
    reload_interval: float
    _clock: Clock
    _snapshot: PolicySnapshot | None
    _source: PolicySource | None
    _applied_digest: str | None
    _main_applied: bool
    #: Each ``policy_dirs`` entry whose directory the rules in force came from: its path.
    _dirs_applied: dict[str, str]
    #: The directories the last look located, each with its ``policy_dirs`` entry.
    _dir_entries: dict[str, str]
    last_reload_error: str | None
    last_reload_warnings: list[Problem]

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

    def _locate_policy_file(self) -> str | None:
        # An absolute path is not checked here: the poll's one stat tells.
        found = self._locate(self.policy_file)
        applied = self.policy_path if self._main_applied else None
        if applied and found != applied and not os.path.exists(applied):
            # The file in force is gone (deleted, renamed away, or an editor's
            # rename-and-rewrite caught mid-way): keep watching it, so that the
            # poll holds the last good rules, rather than take whatever file of
            # that name oslo.config's search finds further down (~/, /etc/guard).
            return applied
        return found

    def _locate_policy_dirs(self) -> list[str]:
        """The directories to read: those there, and those applied that are gone.

        A directory never applied that is not there is skipped, as oslo.policy
        skips it (no overrides). One applied that is gone (removed, renamed
        away, a dangling link, the gap of a swap by two renames) is still
        returned, so that the poll reports it gone and the last good rules
        stay, rather than silently losing its overrides; for a relative entry
        also rather than taking a directory of that name found further down
        oslo.config's search (~/.guard, ~, /etc/guard, /etc).
        """
        self._dir_entries = {}
        for entry in self.conf.oslo_policy.policy_dirs:
            if not entry:
                continue
            found = self._locate(entry)
            applied = self._dirs_applied.get(entry)
            if applied and found != applied and not os.path.isdir(applied):
                found = applied
            if found and (found == applied or os.path.isdir(found)):
                self._dir_entries.setdefault(found, entry)
        return list(self._dir_entries)

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
        applied_dirs = set(self._dirs_applied.values())
        gone = [(path, why) for path, why in files.directories_gone if path in applied_dirs]
        if not first and gone:
            what = ", ".join(
                f"{_source_name(path)}: the policy directory {why}" for path, why in gone
            )
            back = "they are" if len(gone) > 1 else "it is"
            self._hold(f"{what}; the last good rules stay in force until {back} back")
            return
        if files.digest == self._applied_digest:
            self.last_reload_error = None  # back as it was (renamed away and back)
            return
        self._apply(files)

    def _apply(self, files: PolicyFiles) -> None:
        """Build the next revision from ``files``, validated whole, and swap it in."""
        checks, file_rules, origins, problems = read_policy_files(files)
        base: MutableMapping[str, _checks.BaseCheck] = checks
        if not self.overwrite:
            base = {**self.rules, **base}
        base = self._with_defaults(base, file_rules)
        found = rule_set_problems(base, origins, self._known_names())
        if self.skip_undefined_check:
            # oslo.policy's switch for enforcers that hold part of a rule set.
            found = [p for p in found if not p.message.startswith("refers to undefined rule")]
        problems += found + self._absent_directories()
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
        self._dirs_applied = {
            self._dir_entries[path]: path
            for path in files.directories
            if path in self._dir_entries
        }
        self.rules = policy.Rules(base, self.default_rule)
        self.last_reload_error = None

    def _absent_directories(self) -> list[Problem]:
        """A warning for each ``policy_dirs`` entry named by the operator and not found.

        oslo.policy reads such a directory as "no overrides" (and picks it up
        if it appears), and so does guard; but a mistyped path would drop the
        operator's overrides without a word. oslo's default name (``policy.d``),
        absent from most deployments, is not warned about, as for the file.
        """
        located = set(self._dir_entries.values())
        return [
            Problem(
                _source_name(entry),
                None,
                None,
                "the policy directory is not there: no overrides from it until it appears",
                severity="warning",
            )
            for entry in self.conf.oslo_policy.policy_dirs
            if entry and entry != OSLO_DEFAULT_POLICY_DIR and entry not in located
        ]

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
