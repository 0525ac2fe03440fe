"""guard.conf: oslo.config options, read from the files an operator names, one object each."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_middleware import sizelimit

from guard import conf as guard_conf


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_load_reads_the_named_file(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "guard.conf",
        "[database]\nconnection = sqlite:////srv/guard.sqlite\nmax_pool_size = 7\n"
        "[guard]\npipeline = trusted\n[api]\nbind_port = 9999\n",
    )
    conf = guard_conf.load([config])
    assert conf.database.connection == "sqlite:////srv/guard.sqlite"
    assert conf.database.max_pool_size == 7
    assert conf.guard.pipeline == "trusted"
    assert conf.api.bind_port == 9999


def test_later_files_win_and_a_config_dir_is_read(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.conf", "[api]\nthreads = 4\nbind_port = 1111\n")
    second = _write(tmp_path / "b.conf", "[api]\nthreads = 16\n")
    extra = tmp_path / "guard.conf.d"
    extra.mkdir()
    _write(extra / "10-host.conf", "[api]\nbind_host = 10.0.0.5\n")
    conf = guard_conf.load([first, second], config_dirs=[str(extra)])
    assert (conf.api.threads, conf.api.bind_port, conf.api.bind_host) == (16, 1111, "10.0.0.5")


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigFilesNotFoundError):
        guard_conf.load([str(tmp_path / "absent.conf")])


def test_the_default_search_is_used_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".guard").mkdir(parents=True)
    _write(home / ".guard" / "guard.conf", "[guard]\npipeline = trusted\n")
    monkeypatch.setenv("HOME", str(home))
    assert guard_conf.load().guard.pipeline == "main"  # a library reads only what it is given
    assert guard_conf.load(search=True).guard.pipeline == "trusted"  # ~/.guard/guard.conf


def test_defaults_fail_closed_and_hold_the_contract_s_body_limit() -> None:
    conf = guard_conf.load()
    assert conf.guard.pipeline == "main"
    assert conf.database.connection is None
    assert conf.oslo_middleware.max_request_body_size == guard_conf.MAX_REQUEST_BODY_SIZE == 65536
    # guard's default is set per ConfigOpts: oslo.middleware's own stays as it ships.
    assert sizelimit.OPTS[0].default != guard_conf.MAX_REQUEST_BODY_SIZE


def test_each_load_is_a_private_configuration() -> None:
    one, two = guard_conf.load(), guard_conf.load()
    one.set_override("connection", "sqlite:////tmp/one.sqlite", group="database")
    assert two.database.connection is None
    assert one is not cfg.CONF and two is not cfg.CONF


def test_an_unknown_pipeline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigFileValueError):  # as the file is read (guard.confoptions)
        guard_conf.load([_write(tmp_path / "g.conf", "[guard]\npipeline = open\n")])


def test_secrets_are_options_marked_secret() -> None:
    options = {(group, opt.name): opt for group, opts in guard_conf.list_opts() for opt in opts}
    assert options["database", "connection"].secret
    assert options["guard", "fingerprint_key"].secret
    assert options["oslo_middleware", "max_request_body_size"].default == 65536
    assert {group for group, _ in guard_conf.list_opts()} == {
        "database",
        "guard",
        "api",
        "oslo_middleware",
        "healthcheck",
    }


def test_log_lines_carry_no_user_names() -> None:
    conf = guard_conf.load()
    assert conf.use_stderr is True
    assert "%(user_identity)s" not in conf.logging_context_format_string
    assert "%(request_id)s" in conf.logging_context_format_string


def test_paste_factories_share_one_configuration_per_file(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.conf", "[guard]\npipeline = trusted\n")
    b = _write(tmp_path / "b.conf", "")
    assert guard_conf.for_paste(a) is guard_conf.for_paste(a)
    assert guard_conf.for_paste(a) is not guard_conf.for_paste(b)
    assert guard_conf.for_paste(a).guard.pipeline == "trusted"
