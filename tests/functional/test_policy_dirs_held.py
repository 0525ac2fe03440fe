"""A ``policy_dirs`` directory that vanishes from a live enforcer is held, never dropped.

oslo.policy's ``[oslo_policy] policy_dirs`` (default ``policy.d``) holds
operator overrides. An operator who swaps it with two renames
(``mv policy.d policy.d.old && mv policy.d.new policy.d``) leaves a gap in
which the directory does not exist; a reload in that gap applied "no
policy.d" (the main file's rules or the defaults) for about a second. A
directory that was applied and is gone (removed, renamed away, a dangling
link, a file in its place) now keeps the last good rules, with one log line
and the reload error naming it by base name, until it is back. A file
removed from a directory that is still there drops its rules, as before, and
a directory that never existed is "no overrides", as in oslo.policy.

Real files, a real ``make_enforcer`` enforcer, the injected clock of
tests/functional/test_policy_reload.py; test_policy_dirs_live.py does the
swap under a real ``guard serve`` process.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest
from oslo_config import cfg

from guard.policy import make_enforcer
from guard.policy.reload import COARSE_MARGIN, QUIET_SECONDS
from tests.functional.processes import run_guard
from tests.functional.test_policy_reload import (
    ADMIN,
    READER,
    SHOW,
    FakeClock,
    allowed,
    new_conf,
    requests_for,
    save,
)

AUDITOR = {"roles": ["auditor"], "project_id": "p9"}
# The main file lets readers of the project see the row; policy.d narrows it.
MAIN = f'"{SHOW}": "rule:project_reader"\n'
AUDITORS_ONLY = f'"{SHOW}": "role:auditor"\n'
HOLD = 5.0  # seconds of fake time: well past the quiet second and two polls


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


def _policy_d(parent: Path, text: str = AUDITORS_ONLY, name: str = "policy.d") -> Path:
    directory = parent / name
    directory.mkdir()
    save(directory / "10-show.yaml", text)
    return directory


def _enforcer(tmp_path: Path, fake: FakeClock, policy_dirs: list[str]):
    main = tmp_path / "policy.yaml"
    save(main, MAIN)
    return make_enforcer(new_conf(tmp_path, policy_dirs), str(main), clock=fake.clock())


def _rename_away(directory: Path) -> None:
    directory.rename(directory.with_name("policy.d.old"))


def _remove(directory: Path) -> None:
    shutil.rmtree(directory)


def _dangling_link(directory: Path) -> None:
    real = directory.with_name("policy.d.real")
    directory.rename(real)
    directory.symlink_to(real)
    real.rename(directory.with_name("policy.d.gone"))


def _file_in_its_place(directory: Path) -> None:
    _remove(directory)
    save(directory, AUDITORS_ONLY)


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        (_rename_away, "is missing"),
        (_remove, "is missing"),
        (_dangling_link, "is missing"),
        (_file_in_its_place, "is not a directory"),
    ],
)
def test_a_directory_gone_is_held_until_it_is_back(tmp_path, fake, caplog, operation, what):
    policy_d = _policy_d(tmp_path)
    enforcer = _enforcer(tmp_path, fake, [str(policy_d)])
    revision = enforcer.revision
    assert allowed(enforcer, SHOW, AUDITOR) and not allowed(enforcer, SHOW, READER)
    with caplog.at_level(logging.WARNING, logger="guard.policy"):
        operation(policy_d)
        answers = requests_for(enforcer, fake, HOLD, SHOW, READER)
    assert not any(answers), "the main file's rules applied while policy.d was gone"
    assert all(requests_for(enforcer, fake, 1.0, SHOW, AUDITOR))
    assert enforcer.revision == revision
    error = enforcer.last_reload_error
    assert error.startswith(f"policy.d: the policy directory {what}"), error
    assert "last good rules stay in force" in error
    assert str(tmp_path) not in error  # a base name, never the directory's path
    held = [r for r in caplog.records if "stays in force" in r.getMessage()]
    assert len(held) == 1, "one log line, not one a request"
    assert str(tmp_path) not in held[0].getMessage()
    if policy_d.is_symlink() or policy_d.is_file():
        policy_d.unlink()
    _policy_d(tmp_path)  # back as it was
    requests_for(enforcer, fake, 2.5, SHOW, READER)
    assert enforcer.last_reload_error is None
    assert enforcer.revision == revision


def test_a_swap_by_two_renames_never_applies_no_directory(tmp_path, fake):
    """``mv policy.d policy.d.old && mv policy.d.new policy.d``, a reload in the gap."""
    policy_d = _policy_d(tmp_path)
    enforcer = _enforcer(tmp_path, fake, [str(policy_d)])
    new = _policy_d(tmp_path, f'"{SHOW}": "role:auditor or role:observer"\n', "policy.d.new")
    policy_d.rename(tmp_path / "policy.d.old")
    gap = requests_for(enforcer, fake, 2.0, SHOW, READER)
    new.rename(policy_d)
    after = requests_for(enforcer, fake, 3.0, SHOW, READER)
    assert not any(gap + after), "the main file's rules applied in the gap"
    assert allowed(enforcer, SHOW, {"roles": ["observer"]})  # the new directory applied
    assert enforcer.last_reload_error is None


def test_an_explicit_load_rules_while_held_still_holds(tmp_path, fake):
    policy_d = _policy_d(tmp_path)
    enforcer = _enforcer(tmp_path, fake, [str(policy_d)])
    _rename_away(policy_d)
    enforcer.load_rules()
    assert not allowed(enforcer, SHOW, READER)
    assert enforcer.last_reload_error.startswith("policy.d: the policy directory is missing")


def test_a_file_removed_from_a_directory_still_there_drops_its_rules(tmp_path, fake):
    policy_d = _policy_d(tmp_path)
    enforcer = _enforcer(tmp_path, fake, [str(policy_d)])
    (policy_d / "10-show.yaml").unlink()
    assert requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]  # the main file's rule
    assert enforcer.last_reload_error is None


def test_a_directory_that_never_existed_means_no_overrides_until_it_appears(tmp_path, fake):
    policy_d = tmp_path / "policy.d"
    enforcer = _enforcer(tmp_path, fake, [str(policy_d)])
    assert allowed(enforcer, SHOW, READER)  # oslo.policy's semantics: no overrides
    assert enforcer.last_reload_error is None
    _policy_d(tmp_path)
    assert not requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]
    _remove(policy_d)  # applied once: now held when it goes
    assert not any(requests_for(enforcer, fake, HOLD, SHOW, READER))
    assert "policy.d: the policy directory is missing" in enforcer.last_reload_error


ABSENT = "the policy directory is not there: no overrides from it until it appears"


def test_a_directory_named_but_not_there_is_warned_about(tmp_path, fake):
    """Today's semantics (no overrides, picked up when it appears), said out loud:
    a mistyped path would drop the operator's overrides without a word."""
    enforcer = _enforcer(tmp_path, fake, [str(tmp_path / "polcy.d")])
    assert [str(p) for p in enforcer.last_reload_warnings] == [f"polcy.d: {ABSENT}"]


def test_oslos_default_directory_not_there_is_not_news(tmp_path, fake):
    enforcer = _enforcer(tmp_path, fake, ["policy.d"])
    assert enforcer.last_reload_warnings == []


def test_validate_warns_about_a_directory_named_but_not_there(tmp_path):
    config = tmp_path / "guard.conf"
    config.write_text(f"[oslo_policy]\npolicy_dirs = {tmp_path / 'polcy.d'}\n")
    result = run_guard(tmp_path, "policy", "validate", "--config-file", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"warning: polcy.d: {ABSENT}"


def _relative_setup(tmp_path: Path, monkeypatch, fake: FakeClock):
    """``policy_dirs = policy.d`` found beside guard.conf; a stray one in ``~/.guard``."""
    etc, home = tmp_path / "etc", tmp_path / "home"
    etc.mkdir()
    (home / ".guard").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    _policy_d(home / ".guard", f'"{SHOW}": "@"\n')  # a stray sample: allows everyone
    (etc / "guard.conf").write_text("[oslo_policy]\npolicy_dirs = policy.d\n")
    save(etc / "policy.yaml", MAIN)
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(etc / "guard.conf")], project="guard", default_config_files=[])
    policy_d = _policy_d(etc)
    return make_enforcer(conf, clock=fake.clock()), policy_d


@pytest.mark.parametrize("operation", [_rename_away, _remove])
def test_a_relative_entry_gone_is_held_not_found_further_down_the_search(
    tmp_path, fake, monkeypatch, operation
):
    enforcer, policy_d = _relative_setup(tmp_path, monkeypatch, fake)
    revision = enforcer.revision
    assert not allowed(enforcer, SHOW, READER)
    operation(policy_d)
    assert not any(requests_for(enforcer, fake, HOLD, SHOW, READER))
    assert not allowed(enforcer, SHOW, ADMIN)  # nor ~/.guard/policy.d's "@"
    assert enforcer.revision == revision
    assert enforcer.last_reload_error.startswith("policy.d: the policy directory is missing")
    _policy_d(policy_d.parent, f'"{SHOW}": "role:auditor or role:reader"\n')
    assert requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]  # the directory named is back
    assert enforcer.last_reload_error is None


def test_each_directory_gone_is_named(tmp_path, fake):
    """Two ``policy_dirs``: one gone holds all; both gone are both named."""
    first = _policy_d(tmp_path)
    second = _policy_d(tmp_path, f'"{SHOW}": "role:auditor or role:observer"\n', "extra.d")
    enforcer = _enforcer(tmp_path, fake, [str(first), str(second)])
    assert allowed(enforcer, SHOW, {"roles": ["observer"]})  # the later directory wins
    _remove(second)
    assert all(requests_for(enforcer, fake, HOLD, SHOW, {"roles": ["observer"]}))
    assert enforcer.last_reload_error == (
        "extra.d: the policy directory is missing; "
        "the last good rules stay in force until it is back"
    )
    _rename_away(first)
    assert all(requests_for(enforcer, fake, HOLD, SHOW, {"roles": ["observer"]}))
    assert enforcer.last_reload_error == (
        "policy.d: the policy directory is missing, extra.d: the policy directory is missing; "
        "the last good rules stay in force until they are back"
    )


def test_a_directory_emptied_and_refilled_waits_until_quiet(tmp_path, fake):
    """``rm -rf policy.d && mkdir policy.d && cp ... policy.d/``: a poll between
    the mkdir and the copy found an empty directory beside files old by their
    own times, called it settled and applied "no overrides" at once. A
    directory's own change now waits for the quiet second, as a file's does."""
    fake.wall_offset = 0.0  # the files' own times count, as on a live service
    policy_d = _policy_d(tmp_path)
    enforcer = _enforcer(tmp_path, fake, [str(policy_d)])
    assert not allowed(enforcer, SHOW, READER)
    # Old by their own times (ctime too, which no utime sets back): a real wait.
    time.sleep(QUIET_SECONDS + COARSE_MARGIN + 0.5)
    _remove(policy_d)
    policy_d.mkdir()  # empty for a moment
    between = requests_for(enforcer, fake, 0.75, SHOW, READER)
    save(policy_d / "10-show.yaml", AUDITORS_ONLY)
    after = requests_for(enforcer, fake, 2.5, SHOW, READER)
    assert not any(between + after), "the empty directory applied: no overrides"
    assert allowed(enforcer, SHOW, AUDITOR)
    assert enforcer.last_reload_error is None
