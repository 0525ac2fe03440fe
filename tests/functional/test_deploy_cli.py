"""guard deployed as an operator deploys Placement: oslo.config's CLI, oslo.log's files.

Real ``guard`` processes, each with its own ``HOME`` (oslo.config's default
search looks in ``~/.guard/`` and ``~/``), on real SQLite files.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.testing import Persona
from tests.fixtures.pgcluster import free_port
from tests.functional.processes import guard, serving_url, stop

UUID_RE = re.compile(r"(?<!req-)\b[0-9a-f]{8}-?(?:[0-9a-f]{4}-?){3}[0-9a-f]{12}\b", re.IGNORECASE)
GLOBAL_ID = "req-0123abcd-0000-4000-8000-00000000beef"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = guard(home, *args)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def member(project: str) -> dict[str, str]:
    persona = Persona("cli-user", project, ("member", "reader"))
    return {**persona.headers(), "X-Openstack-Request-Id": GLOBAL_ID}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def write_conf(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``guard serve --config-dir DIR``: [DEFAULT] log_file, only the file (use_stderr off)."""
    log_file = tmp_path / "logs" / "guard.log"
    log_file.parent.mkdir()
    conf_dir = tmp_path / "guard.conf.d"
    write_conf(
        conf_dir / "10-guard.conf",
        f"[DEFAULT]\nlog_file = {log_file}\nuse_stderr = false\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'guard.sqlite'}\n"
        "[guard]\npipeline = trusted\nfingerprint_key = cli-test-key\n",
    )
    write_conf(conf_dir / "20-port.conf", f"[api]\nbind_port = {free_port()}\n")
    process = guard(home, "serve", "--config-dir", str(conf_dir))
    try:
        url = serving_url(process)
        yield process, url, log_file
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_version_prints_the_version(home: Path) -> None:
    result = run(home, "--version")
    assert result.returncode == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", result.stdout)


def test_serve_reads_a_config_dir_and_logs_to_the_log_file(served) -> None:
    process, url, log_file = served
    consumer = str(uuid.uuid4())
    assert get(f"{url}/consumers/{consumer}", member("cli-project")) == 404
    assert get(f"{url}/consumers?project_id=cli-project&limit=5", member("cli-project")) == 200
    stderr = stop(process)
    assert process.returncode == 0
    assert " guard.access " not in stderr  # use_stderr = false: the file only
    log = log_file.read_text()
    access = [line for line in log.splitlines() if " guard.access " in line]
    assert len(access) == 2, log
    assert " GET /consumers/<id:" in access[0] and " 404 " in access[0]
    assert "project_id=<id:" in access[1] and "limit=5" in access[1]
    assert all(GLOBAL_ID in line for line in access)  # the caller's global request id
    assert consumer not in log and consumer.replace("-", "") not in log
    assert not UUID_RE.findall(log)  # ids as <id:…> fingerprints only (request ids stay)
    assert "cli-project" not in log and "cli-user" not in log


def test_default_search_finds_home_guard_conf(home: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "searched.log"
    write_conf(
        home / ".guard" / "guard.conf",
        f"[DEFAULT]\nlog_file = {log_file}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'searched.sqlite'}\n"
        f"[guard]\npipeline = trusted\n[api]\nbind_port = {free_port()}\n",
    )
    process = guard(home, "serve")
    url = serving_url(process)
    assert get(f"{url}/", {}) == 200
    stop(process)
    assert (tmp_path / "searched.sqlite").exists()  # ~/.guard/guard.conf's database
    access = [line for line in log_file.read_text().splitlines() if " guard.access " in line]
    assert len(access) == 1 and "] GET / 200 " in access[0]


def test_one_guard_conf_for_every_command(home: Path, tmp_path: Path) -> None:
    database = tmp_path / "one.sqlite"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"guard:consumers:show": "rule:admin"\n')
    conf = write_conf(
        tmp_path / "etc" / "guard.conf",
        f"[database]\nconnection = sqlite:///{database}\n"
        f"[oslo_policy]\npolicy_file = {policy_file}\n",
    )
    # before or after the sub-command, as OpenStack's commands take it
    upgrade = run(home, "--config-file", str(conf), "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert database.exists()
    assert not (home / "var").exists()  # not the default SQLite file
    explain = run(
        home, "policy", "explain", "--config-file", str(conf), "--rule", "guard:consumers:show",
        "--creds", '{"roles": ["reader"], "project_id": "p1"}', "--target", '{"project_id": "p1"}',
    )  # fmt: skip
    assert explain.returncode == 0, explain.stderr
    assert "DENIED" in explain.stdout  # the operator's rule from guard.conf's policy_file
    missing = run(home, "serve", "--config-file", str(tmp_path / "nowhere.conf"))
    assert missing.returncode == 2 and "nowhere.conf" in missing.stderr


def test_debug_and_log_dir_from_the_config_file(home: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "var-log-guard"
    log_dir.mkdir()
    log_file = log_dir / "debug.log"
    conf = write_conf(
        tmp_path / "guard.conf",
        f"[DEFAULT]\ndebug = true\nlog_dir = {log_dir}\nlog_file = debug.log\n"
        "use_stderr = false\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'debug.sqlite'}\n"
        f"[guard]\npipeline = trusted\n[api]\nbind_port = {free_port()}\n",
    )
    process = guard(home, "serve", "--config-file", str(conf))
    url = serving_url(process)
    assert get(f"{url}/healthcheck") == 200
    stop(process)
    assert " DEBUG " in log_file.read_text()


def test_log_config_append_is_used(home: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "appended.log"
    logging_conf = write_conf(
        tmp_path / "logging.conf",
        "[loggers]\nkeys = root\n[handlers]\nkeys = file\n[formatters]\nkeys = plain\n"
        "[logger_root]\nlevel = INFO\nhandlers = file\n"
        f"[handler_file]\nclass = FileHandler\nargs = ({str(log_file)!r},)\nformatter = plain\n"
        "[formatter_plain]\nformat = APPENDED %(name)s %(message)s\n",
    )
    conf = write_conf(
        tmp_path / "guard.conf",
        f"[DEFAULT]\nlog_config_append = {logging_conf}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'appended.sqlite'}\n"
        f"[guard]\npipeline = trusted\n[api]\nbind_port = {free_port()}\n",
    )
    process = guard(home, "serve", "--config-file", str(conf))
    url = serving_url(process)
    consumer = str(uuid.uuid4())
    assert get(f"{url}/consumers/{consumer}", member("p")) == 404
    stop(process)
    log = log_file.read_text()
    assert "APPENDED guard.access GET /consumers/<id:" in log
    assert GLOBAL_ID in log  # in the access line's message, whatever the format
    assert consumer not in log
