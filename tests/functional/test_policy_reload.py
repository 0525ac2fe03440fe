"""guard's fail-closed hot reload on real files, with an injected clock.

Every case of docs/api.md "The policy file" (a saved change
applied once the file is quiet for 1 s and within 3 s, bad edits refused,
missing, dangling and empty files never applied, ``{}`` meaning the defaults)
is driven through real policy files and a real ``guard.policy.Enforcer`` built
by ``make_enforcer``. The clock is a :class:`FakeClock` so the timings are
exact; tests/functional/test_policy_live.py does the same over a real
``guard serve`` process in real time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_policy import _checks

from guard.policies import list_rules
from guard.policy import Enforcer, PolicyFileError, make_enforcer
from guard.policy.reload import COARSE_MARGIN, QUIET_SECONDS, Clock

SHOW = "guard:consumers:show"
LIST = "guard:consumers:list"
READER = {"roles": ["reader"], "project_id": "p1"}
ADMIN = {"roles": ["admin"], "project_id": "p9"}
TARGET = {"project_id": "p1", "user_id": "u1"}
STEP = 0.25  # seconds of fake time between two requests

ADMIN_ONLY = f'"{SHOW}": "rule:admin"\n'
BAD_FILES = {
    "yaml error": f'"{SHOW}": "rule:admin"\n"{LIST}": rule:admin: oops\n',
    "bad check string": f'"{SHOW}": "rule:admin"\n"{LIST}": "(rule:admin or"\n',
    "undefined rule": f'"{SHOW}": "rule:admin"\n"{LIST}": "rule:nobody"\n',
    "cycle": f'"{SHOW}": "rule:admin"\n"{LIST}": "rule:loop"\n"loop": "rule:{LIST}"\n',
    "not a check string": f'"{SHOW}": "rule:admin"\n"{LIST}": 7\n',
    "bare word": f'"{SHOW}": "rule:admin"\n"{LIST}": "admin"\n',
}


def new_conf(tmp_path: Path, policy_dirs: list[str] | None = None) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="guard", default_config_files=[], default_config_dirs=[])
    if policy_dirs is not None:
        from oslo_policy import opts

        opts._register(conf)
        conf.set_override("policy_dirs", policy_dirs, group="oslo_policy")
    return conf


def save(path: Path, text: str) -> None:
    """Write as an editor that saves in place does."""
    with open(path, "w") as handle:
        handle.write(text)


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    save(path, ADMIN_ONLY)
    return path


class FakeClock:
    """Monotonic and wall time that move only when a test says so.

    Wall time starts far before the files' own timestamps, so only the
    enforcer's own watch can find a file quiet (unless a test moves ``wall``).
    """

    def __init__(self) -> None:
        self.now = 100.0
        self.wall_offset = -1e6

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.now, wall=lambda: time.time() + self.wall_offset)


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


@pytest.fixture
def enforcer(tmp_path: Path, policy_path: Path, fake: FakeClock):
    return make_enforcer(new_conf(tmp_path), str(policy_path), clock=fake.clock())


def requests_for(enforcer, fake: FakeClock, seconds: float, rule: str, creds: dict) -> list:
    """The answers of one request every STEP for ``seconds`` of fake time."""
    answers = []
    for _ in range(round(seconds / STEP)):
        fake.advance(STEP)
        answers.append(allowed(enforcer, rule, creds))
    return answers


def allowed(enforcer, rule: str, creds: dict) -> bool:
    return bool(enforcer.authorize(rule, dict(TARGET), dict(creds)))


def test_a_saved_edit_waits_until_quiet_for_one_second_then_applies(enforcer, policy_path, fake):
    assert not allowed(enforcer, SHOW, READER)
    save(policy_path, f'"{SHOW}": "rule:project_reader"\n')
    answers = requests_for(enforcer, fake, 3.0, SHOW, READER)
    # Seen at the first poll (0.5 s), applied once quiet for 1 s, within 3 s.
    assert answers.index(True) * STEP + STEP >= 1.0
    assert answers.index(True) * STEP + STEP <= 2.0
    assert all(answers[answers.index(True) :])
    assert enforcer.last_reload_error is None


def test_a_file_still_being_written_is_never_read(enforcer, policy_path, fake):
    """A writer that saves a part every 0.5 s: only the finished file applies."""
    whole = f'"{SHOW}": "role:reader"\n"{LIST}": "role:auditor"\n'
    parts = [whole[:10], whole[:30], whole[:45], whole]
    seen = []
    for part in parts:
        save(policy_path, part)
        seen += requests_for(enforcer, fake, 0.5, SHOW, READER)
        assert enforcer.last_reload_error is None  # no half file was even parsed
    seen += requests_for(enforcer, fake, 2.0, SHOW, READER)
    assert not any(seen[:8]) and seen[-1]
    assert allowed(enforcer, LIST, {"roles": ["auditor"]})


def test_a_file_old_by_its_own_times_applies_at_the_first_poll(enforcer, policy_path, fake):
    save(policy_path, f'"{SHOW}": "rule:project_reader"\n')
    fake.wall_offset = QUIET_SECONDS + COARSE_MARGIN + 0.1  # an idle service: no poll since
    fake.advance(STEP * 2)
    assert allowed(enforcer, SHOW, READER)


def test_an_explicit_load_rules_reads_now(enforcer, policy_path):
    save(policy_path, f'"{SHOW}": "rule:project_reader"\n')
    enforcer.load_rules()  # oslo.policy's API: no debounce
    assert allowed(enforcer, SHOW, READER)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_edit_keeps_the_last_good_rules(enforcer, policy_path, fake, case, caplog):
    revision = enforcer.revision
    save(policy_path, BAD_FILES[case])
    with caplog.at_level(logging.ERROR, logger="guard.policy"):
        assert all(requests_for(enforcer, fake, 4.0, LIST, READER))
        assert not any(requests_for(enforcer, fake, 1.0, SHOW, READER))
    assert enforcer.revision == revision
    error = enforcer.last_reload_error
    assert error is not None and "policy.yaml:" in error
    assert f"rule '{LIST}'" in error
    assert BAD_FILES[case].splitlines()[1] not in error  # never the file's text
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1, "a bad revision is logged once, not per request"


def test_a_fixed_file_clears_the_reload_error(enforcer, policy_path, fake):
    save(policy_path, BAD_FILES["cycle"])
    assert all(requests_for(enforcer, fake, 2.5, LIST, READER))
    assert enforcer.last_reload_error is not None
    save(policy_path, f'"{LIST}": "rule:admin"\n')
    assert not requests_for(enforcer, fake, 2.5, LIST, READER)[-1]
    assert enforcer.last_reload_error is None


def _delete(path: Path) -> None:
    path.unlink()


def _rename_away(path: Path) -> None:
    path.rename(path.with_name("policy.yaml.bak"))


def _empty(path: Path) -> None:
    save(path, "")


def _blank(path: Path) -> None:
    save(path, "\n")  # `echo > policy.yaml`: what operators call emptying a file


def _bom_and_spaces(path: Path) -> None:
    save(path, "\ufeff \t\n\n")  # an editor's "empty" UTF-8 file


@pytest.mark.parametrize("operation", [_delete, _rename_away, _empty, _blank, _bom_and_spaces])
def test_a_missing_or_empty_file_is_never_applied(enforcer, policy_path, fake, operation, caplog):
    revision = enforcer.revision
    with caplog.at_level(logging.WARNING, logger="guard.policy"):
        operation(policy_path)
        assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))  # never the defaults
    assert enforcer.revision == revision
    held = [r for r in caplog.records if "stays in force" in r.getMessage()]
    assert len(held) == 1, "one log line, not one a request"
    assert enforcer.last_reload_error.startswith("policy.yaml: the policy file is ")
    assert str(policy_path.parent) not in enforcer.last_reload_error
    save(policy_path, ADMIN_ONLY)  # back as it was
    requests_for(enforcer, fake, 2.5, SHOW, READER)
    assert enforcer.last_reload_error is None
    assert enforcer.revision == revision


def test_a_dangling_link_is_never_applied(tmp_path, fake):
    real = tmp_path / "real.yaml"
    save(real, ADMIN_ONLY)
    link = tmp_path / "policy.yaml"
    link.symlink_to(real)
    enforcer = make_enforcer(new_conf(tmp_path), str(link), clock=fake.clock())
    real.rename(tmp_path / "elsewhere.yaml")
    assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))
    assert "is missing" in enforcer.last_reload_error


def _binary(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00 not text \x80")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(("operation", "reason"), [(_binary, "not UTF-8"), (_directory, "")])
def test_an_unreadable_file_is_held_and_named_unreadable(
    enforcer, policy_path, fake, operation, reason
):
    """A file that is there but cannot be read is not reported as missing:
    the operator is told what is wrong with the file they saved."""
    revision = enforcer.revision
    operation(policy_path)
    assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))
    assert enforcer.revision == revision
    error = enforcer.last_reload_error
    assert error.startswith("policy.yaml: the policy file cannot be read") and reason in error
    assert "missing" not in error and str(policy_path.parent) not in error


def test_oslos_default_name_deleted_after_it_applied_is_missing(tmp_path, fake):
    """policy.yaml found beside the configuration file, applied, then deleted:
    held as missing (not as unreadable: nothing was there to read)."""
    config = tmp_path / "guard.conf"
    config.write_text("")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(config)], project="guard", default_config_files=[])
    enforcer = make_enforcer(conf, clock=fake.clock())
    save(tmp_path / "policy.yaml", ADMIN_ONLY)
    assert not requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]
    (tmp_path / "policy.yaml").unlink()
    assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))
    assert "is missing" in enforcer.last_reload_error


def test_an_empty_mapping_means_the_defaults(enforcer, policy_path, fake):
    save(policy_path, "{}\n")
    assert requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]  # the default rule
    assert enforcer.last_reload_error is None


def test_rules_set_through_oslo_api_keep_oslo_semantics(enforcer):
    enforcer.set_rules({SHOW: _checks.TrueCheck()}, overwrite=False)
    assert allowed(enforcer, SHOW, {"roles": []})
    enforcer.clear()
    enforcer.register_defaults(list_rules())
    enforcer.load_rules()
    assert not allowed(enforcer, SHOW, READER)


def test_two_edits_in_one_tick_are_both_seen(enforcer, policy_path, fake):
    # Same size, saved within one timestamp tick.
    first = f'"{SHOW}": "role:aaaaa"\n'
    second = f'"{SHOW}": "role:bbbbb"\n'
    assert len(first) == len(second)
    save(policy_path, first)
    assert requests_for(enforcer, fake, 2.5, SHOW, {"roles": ["aaaaa"]})[-1]
    mtime = policy_path.stat().st_mtime_ns
    save(policy_path, second)
    os.utime(policy_path, ns=(mtime, mtime))  # as if in the same tick
    assert requests_for(enforcer, fake, 2.5, SHOW, {"roles": ["bbbbb"]})[-1]
    assert not allowed(enforcer, SHOW, {"roles": ["aaaaa"]})


def test_policy_dirs_override_the_file_and_reload(tmp_path, policy_path, fake):
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    save(policy_d / "10-show.yaml", f'"{SHOW}": "role:auditor"\n')
    save(policy_d / ".hidden.yaml", f'"{SHOW}": "@"\n')
    conf = new_conf(tmp_path, [str(policy_d)])
    enforcer = make_enforcer(conf, str(policy_path), clock=fake.clock())
    assert allowed(enforcer, SHOW, {"roles": ["auditor"]})
    assert not allowed(enforcer, SHOW, ADMIN)  # the directory wins over the file
    save(policy_d / "20-list.yaml", f'"{LIST}": "rule:loop"\n')  # an invalid addition
    assert all(requests_for(enforcer, fake, 2.5, LIST, READER))
    assert "20-list.yaml:1" in enforcer.last_reload_error
    (policy_d / "20-list.yaml").unlink()
    save(policy_d / "10-show.yaml", f'"{SHOW}": "role:reader"\n')
    assert requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]
    assert enforcer.last_reload_error is None
    save(policy_d / "10-show.yaml", "")  # an emptied override file is not applied either
    assert all(requests_for(enforcer, fake, 2.5, SHOW, READER))
    assert "is empty (10-show.yaml)" in enforcer.last_reload_error


def test_at_most_one_stat_per_interval(enforcer, policy_path, fake, monkeypatch):
    """Requests within one reload interval cost no system call."""
    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):
        stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    fake.advance(1.0)
    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(1000):
        allowed(enforcer, SHOW, READER)
    monkeypatch.undo()
    assert stats.count(str(policy_path)) <= 1


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_at_start_is_an_error_naming_rule_and_line(tmp_path, case):
    path = tmp_path / "policy.yaml"
    save(path, BAD_FILES[case])
    with pytest.raises(PolicyFileError) as raised:
        make_enforcer(new_conf(tmp_path), str(path))
    problem = raised.value.problems[0]
    assert problem.source == "policy.yaml"
    assert problem.line == 2
    assert problem.rule == LIST


def test_requests_see_the_old_or_the_new_rules_never_a_mix(tmp_path, policy_path):
    """Two decisions on one snapshot always come from one revision (real time)."""
    enforcer = make_enforcer(new_conf(tmp_path), str(policy_path))
    versions = [
        f'"{SHOW}": "role:alpha"\n"{LIST}": "role:alpha"\n',
        f'"{SHOW}": "role:omega"\n"{LIST}": "role:omega"\n',
    ]
    alpha = {"roles": ["alpha"]}
    mixed: list[tuple[bool, bool]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            snapshot = enforcer.snapshot()
            show = enforcer.authorize_in(snapshot, SHOW, dict(TARGET), dict(alpha))
            listed = enforcer.authorize_in(snapshot, LIST, dict(TARGET), dict(alpha))
            if show != listed:
                mixed.append((show, listed))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for index in range(4):
            save(policy_path, versions[index % 2])
            time.sleep(1.6)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert mixed == []
    assert enforcer.last_reload_error is None


def test_skip_undefined_check_is_honoured_by_guards_validation(tmp_path):
    """oslo.policy's switch: an enforcer holding part of a rule set allows undefined refs."""
    path = tmp_path / "policy.yaml"
    save(path, BAD_FILES["undefined rule"])
    enforcer = Enforcer(new_conf(tmp_path), policy_file=str(path))
    enforcer.fail_closed()
    enforcer.skip_undefined_check = True
    enforcer.register_defaults(list_rules())
    enforcer.load_rules()
    assert not allowed(enforcer, LIST, ADMIN)  # rule:nobody is undefined: denied, as oslo
    with pytest.raises(PolicyFileError):
        make_enforcer(new_conf(tmp_path), str(path))


@pytest.mark.parametrize("stray_dir", ["", ".guard"])
@pytest.mark.parametrize("operation", [_delete, _rename_away])
def test_a_file_gone_is_held_not_replaced_by_one_found_further_down_the_search(
    tmp_path, fake, monkeypatch, stray_dir, operation
):
    """policy.yaml beside guard.conf applied, then deleted or renamed away (or
    caught mid-way through an editor's rename-and-rewrite): held as missing.
    oslo.config's search goes on to ~/.guard, ~, /etc/guard and /etc; a stray
    policy.yaml there (a sample generated in the home directory) was applied
    instead, silently, with no reload error."""
    etc, home = tmp_path / "etc", tmp_path / "home"
    etc.mkdir()
    (home / stray_dir).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    save(home / stray_dir / "policy.yaml", "{}\n")
    (etc / "guard.conf").write_text("")
    save(etc / "policy.yaml", ADMIN_ONLY)
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(etc / "guard.conf")], project="guard", default_config_files=[])
    enforcer = make_enforcer(conf, clock=fake.clock())
    revision = enforcer.revision
    assert not allowed(enforcer, SHOW, READER)
    operation(etc / "policy.yaml")
    assert not any(requests_for(enforcer, fake, 5.0, SHOW, READER))
    assert enforcer.revision == revision
    assert enforcer.last_reload_error.startswith("policy.yaml: the policy file is missing")
    save(etc / "policy.yaml", '"guard:consumers:show": "rule:admin or role:reader"\n')
    assert requests_for(enforcer, fake, 2.5, SHOW, READER)[-1]  # the file named comes back
    assert enforcer.last_reload_error is None
