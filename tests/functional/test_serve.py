"""``guard serve`` as a user runs it: a subprocess, its printed curl lines, its logs.

The curl lines ``--demo`` prints are parsed and sent with urllib (not curl,
which a test machine may lack); each must answer the status printed above
it. Also: an invalid policy file refuses the start naming rule and line, the
flags override the configuration file, the sample configuration is current.
"""

from __future__ import annotations

import itertools
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guard import conf as guard_conf
from guard import deploy
from guard.cmd import build_parser
from guard.cmd import serve as serve_cmd
from guard.testing import deployment, http
from guard.tools import demo
from tests.fixtures.pgcluster import free_port
from tests.functional.processes import STARTUP_TIMEOUT, guard_serve, read_until_serving
from tests.functional.support import REQUEST_ID_RE

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc" / "guard" / "guard.conf.sample"
SAMPLE_NAMESPACES = ["guard", "oslo.log", "oslo.policy", "keystonemiddleware.auth_token"]


def parse_curl(line: str) -> tuple[str, str, dict[str, str], bytes | None]:
    """Method, URL, headers and body of one printed curl line."""
    words = shlex.split(line)
    assert words[:4] == ["curl", "-s", "-w", r"\n%{http_code}\n"]
    method, headers, body, url = "GET", {}, None, ""
    position = 4
    while position < len(words):
        word = words[position]
        if word == "-X":
            method = words[position + 1]
            position += 2
        elif word == "-H":
            name, _, value = words[position + 1].partition(": ")
            headers[name] = value
            position += 2
        elif word == "-d":
            body = words[position + 1].encode()
            position += 2
        else:
            url = word
            position += 1
    return method, url, headers, body


def test_demo_lines_answer_as_printed(tmp_path: Path) -> None:
    process = guard_serve(tmp_path, "--demo", "--port", "0")
    try:
        lines = read_until_serving(process)
        calls = [
            (int(comment.rsplit("expect ", 1)[1]), curl)
            for comment, curl in itertools.pairwise(lines)
            if comment.startswith("# ") and curl.startswith("curl ")
        ]
        assert len(calls) == len(demo.calls())
        personas = set()
        for expected, curl in calls:
            method, url, headers, body = parse_curl(curl)
            assert url.startswith("http://127.0.0.1:")
            personas.add(headers["X-User-Id"])
            status, response_headers, _ = http(method, url, headers, body)
            assert status == expected, curl
            assert REQUEST_ID_RE.match(response_headers["X-Openstack-Request-Id"])
        assert {"demo-admin", "demo-alice", "demo-eve"} <= personas
        assert (tmp_path / "var" / "guard.sqlite").exists()
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    access = [line for line in stderr.splitlines() if " guard.access " in line]
    assert len(access) == len(calls)
    for line in stderr.splitlines():
        for uuid, _, _ in demo.SEEDED:
            assert uuid not in line and uuid.replace("-", "") not in line
        assert "demo-alice" not in line and "demo-project-a" not in line


def test_demo_never_seeds_a_configured_database(tmp_path: Path) -> None:
    """--demo resets its rows in the embedded file, not in the database a config names."""
    operators = tmp_path / "operators.sqlite"
    config_file = tmp_path / "guard.conf"
    config_file.write_text(f"[database]\nconnection = sqlite:///{operators}\n")
    process = guard_serve(tmp_path, "--config-file", str(config_file), "--demo", "--port", "0")
    try:
        read_until_serving(process)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert (tmp_path / "var" / "guard.sqlite").exists()
    assert not operators.exists()


def test_invalid_policy_file_refuses_to_start(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('# operator rules\n"guard:consumers:list": "rule:admin or"\n')
    process = guard_serve(tmp_path, "--port", "0", "--policy-file", str(policy_file))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "guard serving" not in stdout
    assert "guard:consumers:list" in stderr
    assert "policy.yaml:2" in stderr
    assert "rule:admin or" not in stderr  # names rule and line, not the text


@pytest.mark.parametrize(
    ("database", "said"),
    [
        ("sqlite:///{tmp}/no-such-dir/guard.sqlite", "cannot open the SQLite file"),
        ("postgresql+psycopg://guard:Pw-Never-Shown@127.0.0.1:{port}/guard", "connection refused"),
    ],
)
def test_an_unusable_database_refuses_to_start_saying_why(
    tmp_path: Path, database: str, said: str
) -> None:
    url = database.format(tmp=tmp_path, port=free_port())
    process = guard_serve(tmp_path, "--port", "0", "--pipeline", "trusted", "--database", url)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "guard serving" not in stdout
    assert f"guard serve: cannot use the database: {said}" in stderr
    assert "Pw-Never-Shown" not in stderr and "Traceback" not in stderr


def test_flags_override_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "guard.conf"
    config.write_text(
        "[guard]\npipeline = main\n[api]\nbind_host = 127.0.0.2\nbind_port = 9000\nthreads = 3\n"
        "[database]\nconnection = sqlite:///from-file.sqlite\n"
    )
    parser = build_parser("serve")
    args = parser.parse_args(
        [
            "serve",
            "--config-file",
            str(config),
            "--port",
            "9100",
            "--pipeline",
            "trusted",
            "--database",
            "sqlite:///flag.sqlite",
        ]
    )
    conf = guard_conf.load(args.config_file)
    assert conf.guard.pipeline == "main" and conf.api.bind_port == 9000
    serve_cmd._apply_flags(conf, args)
    assert conf.guard.pipeline == "trusted"
    assert conf.api.bind_port == 9100
    assert conf.database.connection == "sqlite:///flag.sqlite"
    assert conf.api.bind_host == "127.0.0.2" and conf.api.threads == 3  # not overridden


@pytest.mark.parametrize(
    ("pipeline", "host", "warns"),
    [
        ("trusted", "127.0.0.1", False),
        ("trusted", "::1", False),
        ("trusted", "localhost", False),
        ("trusted", "0.0.0.0", True),
        ("trusted", "192.0.2.10", True),
        ("trusted", "guard.example", True),
        ("main", "0.0.0.0", False),
    ],
)
def test_trusted_pipeline_off_loopback_warns(pipeline: str, host: str, warns: bool) -> None:
    warning = serve_cmd.bind_warning(pipeline, host)
    assert (warning is not None) == warns
    if warning:
        assert host in warning and "trusted" in warning


def test_sample_configuration_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "guard.conf.sample"
    args = [arg for ns in SAMPLE_NAMESPACES for arg in ("--namespace", ns)]
    # In its own process, as operators run it: the generator applies guard's
    # oslo.log defaults (oslo.config.opts.defaults) process-wide.
    subprocess.run(
        [str(Path(sys.executable).with_name("oslo-config-generator")), *args,
         "--output-file", str(fresh)],
        check=True, timeout=120,
    )  # fmt: skip
    assert fresh.read_text() == SAMPLE.read_text(), (
        "etc/guard/guard.conf.sample is stale; regenerate it with: oslo-config-generator "
        + " ".join(args)
        + " --output-file etc/guard/guard.conf.sample"
    )
    assert "#max_request_body_size = 65536" in fresh.read_text()


def test_main_pipeline_without_keystone_settings_refuses_to_start(tmp_path: Path) -> None:
    process = guard_serve(tmp_path, "--port", "0", "--pipeline", "main")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "guard serving" not in stdout
    assert "www_authenticate_uri" in stderr


def test_main_pipeline_needs_the_keystone_settings(sqlite_url: str) -> None:
    with deployment(sqlite_url) as services:
        with pytest.raises(deploy.PipelineError, match="www_authenticate_uri"):
            deploy.build_pipeline(services, "main")
        services.conf.set_override(
            "www_authenticate_uri", "https://keystone.example/identity", "keystone_authtoken"
        )
        assert deploy.build_pipeline(services, "main") is not None
        with pytest.raises(deploy.PipelineError, match="unknown pipeline"):
            deploy.build_pipeline(services, "open")


def test_demo_needs_the_trusted_pipeline(tmp_path: Path) -> None:
    process = guard_serve(tmp_path, "--port", "0", "--pipeline", "main", "--demo")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "trusted" in stderr


def test_workers_serve_the_demo_with_gunicorn(tmp_path: Path) -> None:
    process = guard_serve(
        tmp_path, "--demo", "--workers", "2", "--port", str(free_port()), "--log-level", "WARNING"
    )
    try:
        lines = read_until_serving(process)
        assert "2 gunicorn workers" in lines[-1]
        first_comment, first_curl = next(
            (comment, curl)
            for comment, curl in itertools.pairwise(lines)
            if comment.startswith("# ") and curl.startswith("curl ")
        )
        method, url, headers, body = parse_curl(first_curl)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:  # the workers boot after the line is printed
            try:
                status, _, _ = http(method, url, headers, body)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == int(first_comment.rsplit("expect ", 1)[1])
        statuses = {http("GET", url.rsplit("/", 1)[0] + "/healthcheck")[0] for _ in range(6)}
        assert statuses == {200}
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    # The workers honour --log-level: no INFO access lines at WARNING.
    assert " guard.access " not in stderr


def test_workers_need_a_fixed_port(tmp_path: Path) -> None:
    process = guard_serve(tmp_path, "--workers", "2", "--port", "0", "--pipeline", "trusted")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "--port" in stderr


def test_ctrl_c_right_after_serving_is_a_clean_stop(tmp_path: Path) -> None:
    """SIGINT the instant "guard serving" is read: exit 0, no traceback, every time."""
    for attempt in range(3):
        process = guard_serve(
            tmp_path,
            "--pipeline",
            "trusted",
            "--port",
            "0",
            "--database",
            f"sqlite:///{attempt}.db",
        )
        try:
            read_until_serving(process)
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr[-2000:]
        assert "Traceback" not in stderr
