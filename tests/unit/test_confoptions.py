"""guard.confoptions: an option or section guard would ignore is refused, named, never shown.

oslo.config ignores every line of a file that names no registered option:
``[oslo_policy] policy_flie`` (a typo) started guard on the default rules.
Real files, read by ``guard.conf.load`` as every command and worker reads them.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from oslo_log import _options as oslo_log_options
from oslo_policy import opts as oslo_policy_opts

from guard import conf as guard_conf
from guard import confoptions

SECRET = "s3cretValue9"


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "guard.conf"
    path.write_text(text)
    guard_conf.load([str(path)])


@pytest.mark.parametrize(
    ("text", "named", "hint"),
    [
        ("[oslo_policy]\npolicy_flie = strict.yaml\n", "[oslo_policy] policy_flie", "policy_file"),
        ("[DEFAULT]\nlog_fiel = /var/log/g.log\n", "[DEFAULT] log_fiel", "log_file"),
        ("[DEFAULT]\nDebug = true\n", "[DEFAULT] Debug", "debug"),
        ("[DEFAULT]\nlog-file = /var/log/g.log\n", "[DEFAULT] log-file", "log_file"),
        ("[database]\nmax_pool_szie = 3\n", "[database] max_pool_szie", "max_pool_size"),
        ("[Database]\npassword = x\n", "[Database] password", ""),
        ("[guard]\nfingerprint_kye = k\n", "[guard] fingerprint_kye", "fingerprint_key"),
        ("[api]\nbind_prot = 9\n", "[api] bind_prot", "bind_port"),
        ("[healthcheck]\ndisable_by_file = /x\n", "[healthcheck] disable_by_file", ""),
        ("[oslo_middleware]\nmax_request_body = 9\n", "[oslo_middleware] max_request_body", ""),
        ("[default]\ndebug = true\n", "section [default]", "[DEFAULT]"),
        ("[api]\nauth_strategy = noauth2\n", "[api] auth_strategy", "[guard] pipeline"),
        ("[DEFAULT]\nconnection = sqlite://\n", "[DEFAULT] connection", "in [database]"),
        ("[DEFAULT]\npolicy_file = p.yaml\n", "[DEFAULT] policy_file", "in [oslo_policy]"),
        ("[guard]\ndebug = true\n", "[guard] debug", "in [DEFAULT]"),
        (
            "[oslo_middleware]\ndisable_by_file_path = /x\n",
            "[oslo_middleware] disable_by_file_path",
            "in [healthcheck]",
        ),
        ("[oslo_polciy]\npolicy_file = p.yaml\n", "section [oslo_polciy]", "[oslo_policy]"),
        ("[databse]\nconnection = sqlite://\n", "section [databse]", "[database]"),
        ("[keystone_authtokn]\nauth_url = x\n", "section [keystone_authtokn]", ""),
        (
            "[keystone_authtoken]\nwww_authenticate_url = http://k/v3\n",
            "[keystone_authtoken] www_authenticate_url",
            "www_authenticate_uri",
        ),
        (
            "[keystone_authtoken]\nmemcached_server = m:11211\n",
            "[keystone_authtoken] memcached_server",
            "memcached_servers",
        ),
        (
            "[keystone_authtoken]\nauth_type = password\nuser_domain_nmae = Default\n",
            "[keystone_authtoken] user_domain_nmae",
            "user_domain_name",
        ),
    ],
)
def test_an_option_guard_would_ignore_is_refused_by_name(
    tmp_path: Path, text: str, named: str, hint: str
) -> None:
    with pytest.raises(confoptions.UnknownOptionError) as raised:
        _load(tmp_path, text.replace(" = ", f" = {SECRET}", 1))
    message = str(raised.value)
    assert named in message and str(tmp_path / "guard.conf") in message
    assert hint in message
    assert SECRET not in message  # a value may be a password


@pytest.mark.parametrize(
    "name", ["connection_recycle_time", "slave_connection", "min_pool_size", "max_retries"]
)
def test_an_oslo_db_option_is_named_as_oslo_db_s_not_as_a_typo(tmp_path: Path, name: str) -> None:
    """Not 'did you mean connection?': the operator would write a second connection line."""
    with pytest.raises(confoptions.UnknownOptionError) as raised:
        _load(tmp_path, f"[database]\nconnection = sqlite://\n{name} = 10\n")
    message = str(raised.value)
    assert f"[database] {name} is not an option guard reads: it is oslo.db's" in message
    assert "did you mean" not in message and "remove it" in message
    assert "connection, max_overflow, max_pool_size, pool_timeout" in message


def test_what_guard_reads_loads(tmp_path: Path) -> None:
    _load(
        tmp_path,
        "[DEFAULT]\ndebug = true\nlogfile = /tmp/x.log\nuse_json = false\n"
        "[Database]\nconnection = sqlite:////srv/g.sqlite\nmax_pool_size = 7\n"
        "[oslo_policy]\npolicy_file = p.yaml\nenforce_new_defaults = true\nenforce_scope = true\n"
        "[guard]\npipeline = trusted\n[api]\nthreads = 4\n"
        "[oslo_middleware]\nmax_request_body_size = 65536\nenable_proxy_headers_parsing = true\n"
        "[healthcheck]\ndisable_by_file_path = /x\n"
        "[keystone_authtoken]\nauth_type = password\nusername = guard\npassword = pw\n"
        "www_authenticate_uri = http://k/v3\nmemcache_servers = m:11211\n"  # a deprecated name
        "[cors]\nallowed_origin = x\n",  # another program's section
    )


def test_a_config_dir_file_is_checked(tmp_path: Path) -> None:
    first = tmp_path / "guard.conf"
    first.write_text("[database]\nconnection = sqlite:////srv/g.sqlite\n")
    extra = tmp_path / "guard.conf.d"
    extra.mkdir()
    (extra / "20-policy.conf").write_text("[oslo_policy]\npolicy-file = p.yaml\n")
    with pytest.raises(confoptions.UnknownOptionError, match=r"20-policy\.conf: .*policy-file"):
        guard_conf.load([str(first)], config_dirs=[str(extra)])


def _read_by_oslo_config(path: Path) -> dict[tuple[str, str], str] | str:
    """Every option's value as oslo.config alone reads ``path`` (guard's check not run)."""
    conf = cfg.ConfigOpts()
    guard_conf.register_opts(conf)
    for group, opts in oslo_policy_opts.list_opts():
        conf.register_opts(opts, group=group)
    try:
        conf(["--config-file", str(path)], default_config_files=[], default_config_dirs=[])
    except SystemExit:  # a command-line option's file value, read and found invalid
        return "refused"
    values: dict[tuple[str, str], str] = {}

    def read(where: Any, name: str) -> Any:
        try:
            return where[name]
        except (cfg.Error, ValueError) as error:  # read, and found invalid
            return type(error).__name__

    groups = [name for name in conf if isinstance(read(conf, name), cfg.ConfigOpts.GroupAttr)]
    for group in [None, *groups]:
        where = conf[group] if group else conf
        for name in where:
            value = read(where, name)
            if not isinstance(value, cfg.ConfigOpts.GroupAttr):
                values[(group or "DEFAULT", name)] = repr(value)
    return values


#: Real option names (where typos come from), each section's.
_REAL = sorted(
    {
        (group or "DEFAULT", opt.dest)
        for group, opts in oslo_log_options.list_opts()
        for opt in opts
    }
    | {(group, opt.dest) for group, opts in guard_conf.list_opts() for opt in opts}
    | {(group, opt.dest) for group, opts in oslo_policy_opts.list_opts() for opt in opts}
    | {("DEFAULT", name) for name in ("config_file", "config_dir", "config_source")}
)


@st.composite
def _lines(draw: st.DrawFn) -> tuple[str, str]:
    section, name = draw(st.sampled_from(_REAL))
    how = draw(st.sampled_from(["as is", "upper", "dash", "drop", "swap", "random"]))
    if how == "upper":
        name = name.capitalize()
    elif how == "dash":
        name = name.replace("_", "-")
    elif how == "drop" and len(name) > 1:
        at = draw(st.integers(0, len(name) - 1))
        name = name[:at] + name[at + 1 :]
    elif how == "swap" and len(name) > 1:
        at = draw(st.integers(0, len(name) - 2))
        name = name[:at] + name[at + 1] + name[at] + name[at + 2 :]
    elif how == "random":
        name = draw(st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=30))
    if draw(st.booleans()):
        section = draw(st.sampled_from(confoptions.CHECKED))
    return section, name


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line=_lines())
def test_a_line_is_refused_exactly_when_oslo_config_would_drop_it(
    tmp_path: Path, line: tuple[str, str]
) -> None:
    """The oracle is oslo.config alone: a line it reads changes some option's value."""
    section, name = line
    path = tmp_path / "guard.conf"
    path.write_text("")
    before = _read_by_oslo_config(path)
    path.write_text(f"[{section}]\n{name} = 7\n")
    dropped = _read_by_oslo_config(path) == before
    if (section, name) in (
        ("oslo_policy", "enforce_scope"),  # oslo.policy < 6's (scope is enforced without it)
        ("oslo_middleware", "enable_proxy_headers_parsing"),  # nothing for guard to change
    ):
        dropped = False  # tolerated
    if dropped:
        with pytest.raises(confoptions.UnknownOptionError, match=f"\\] {re.escape(name)} is not"):
            guard_conf.load([str(path)])
    else:
        try:
            guard_conf.load([str(path)])
        except (SystemExit, cfg.Error) as error:  # refused for its value, never as unknown
            assert not isinstance(error, confoptions.UnknownOptionError), error


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[database]\nmax_pool_size = 0\n", "max_pool_size"),  # SQLite never asked for it
        ("[database]\npool_timeout = abc\n", "pool_timeout"),
        ("[api]\nthreads = 0\n", "threads"),  # was 'cannot listen on 127.0.0.1:8778'
        ("[oslo_middleware]\nmax_request_body_size = -1\n", "max_request_body_size = -1"),
        ("[oslo_middleware]\nmax_request_body_size = 0\n", "max_request_body_size = 0"),
    ],
)
def test_a_value_guard_cannot_take_stops_the_load(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(cfg.Error, match=named):
        _load(tmp_path, text)


def test_the_smallest_body_limit_loads(tmp_path: Path) -> None:
    _load(tmp_path, "[oslo_middleware]\nmax_request_body_size = 1\n")


def test_an_auth_plugin_keystoneauth_does_not_have_is_refused(tmp_path: Path) -> None:
    """keystonemiddleware loads the plugin on the first request: a traceback, then."""
    with pytest.raises(confoptions.UnknownOptionError) as raised:
        _load(tmp_path, "[keystone_authtoken]\nauth_type = pasword\n")
    assert (
        "auth_type = pasword is not an auth plugin keystoneauth has (did you mean password?)"
        in (str(raised.value))
    )


def test_the_plugin_may_be_named_in_another_file(tmp_path: Path) -> None:
    """Its options are checked against every plugin's: api-paste.ini may name the plugin."""
    _load(tmp_path, "[keystone_authtoken]\napplication_credential_secret = s\nusername = u\n")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[oslo_policy]\npolicy_file = strict.yaml\npolicy_file = old.yaml\n", "policy_file"),
        (
            "[database]\nconnection = sqlite:///a\n\n[database]\nconnection = sqlite:///b\n",
            "connection",
        ),
        ("[DEFAULT]\ndebug = true\ndebug = false\n", "debug"),
    ],
)
def test_an_option_set_twice_in_a_file_is_refused(tmp_path: Path, text: str, named: str) -> None:
    """oslo.config reads the last line: an operator who edited the first changed nothing."""
    with pytest.raises(confoptions.UnknownOptionError, match=f"{named} is set 2 times"):
        _load(tmp_path, text)


def test_an_option_set_twice_to_the_same_value_loads(tmp_path: Path) -> None:
    """Nothing an operator edited is lost: the line appended again (a deployment tool run
    twice, a fragment pasted twice) is harmless, and refusing the start over it is not."""
    _load(tmp_path, "[DEFAULT]\ndebug = true\ndebug = true\n[oslo_policy]\npolicy_file = a.yaml\n")
    _load(tmp_path, "[oslo_policy]\npolicy_file = a.yaml\n\n[oslo_policy]\npolicy_file = a.yaml\n")


def test_a_multi_valued_option_may_repeat_and_a_later_file_may_override(tmp_path: Path) -> None:
    _load(tmp_path, "[oslo_policy]\npolicy_dirs = a.d\npolicy_dirs = b.d\n")
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("[oslo_policy]\npolicy_file = a.yaml\n")
    second.write_text("[oslo_policy]\npolicy_file = b.yaml\n")
    guard_conf.load([str(first), str(second)])


SAMPLE = Path(__file__).resolve().parents[2] / "etc" / "guard" / "guard.conf.sample"


def _sample_lines() -> list[tuple[str, str]]:
    """(section, 'name = value') of every option line of the shipped sample, uncommented."""
    section, lines = "", []
    for line in SAMPLE.read_text().splitlines():
        if re.fullmatch(r"\[[^]]+\]", line):
            section = line
        elif re.fullmatch(r"#[a-z0-9_]+ = .*", line) and "<None>" not in line:
            lines.append((section, line[1:]))
    return lines


def test_every_line_of_the_sample_uncommented_alone_loads(tmp_path: Path) -> None:
    """An operator uncomments a line of guard.conf.sample: its default never stops the start."""
    lines = _sample_lines()
    assert len(lines) > 50  # the sample's options, read
    refused = []
    for section, line in lines:
        try:
            _load(tmp_path, f"{section}\n{line}\n")
        except cfg.Error as error:
            refused.append(f"{section} {line}: {error}")
    assert refused == []


def test_fatal_deprecations_true_is_refused_as_guard_does_not_honour_it(tmp_path: Path) -> None:
    with pytest.raises(confoptions.UnknownOptionError, match="fatal_deprecations = true"):
        _load(tmp_path, "[DEFAULT]\nfatal_deprecations = true\n")


def test_listing_auth_plugins_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """A plugin whose module cannot load (a SAML one without lxml) is no ERROR line on
    every command of a guard.conf with [keystone_authtoken]."""
    confoptions.keystone_names.cache_clear()
    with caplog.at_level("DEBUG"):
        _, plugins = confoptions.keystone_names()
    assert "password" in plugins and "v3password" in plugins
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
