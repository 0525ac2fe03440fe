"""A configuration or logging file that is not a regular file never wedges a guard command.

oslo.config and oslo.log open what they are given: a FIFO named by
``--config-file``, found in a ``--config-dir`` or by the default search (or a
``[DEFAULT] log_file`` FIFO that nobody reads) blocked the start forever, a
directory ended in a traceback, and a ``--config-dir`` that is not a
directory was read as an empty one (the operator's options silently
dropped). Each is refused: one line naming the option and the path, exit 2,
nothing started. Real processes, real FIFOs and directories.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.functional.processes import guard, read_until_serving, run_guard, stop


def assert_refused(result: subprocess.CompletedProcess[str], cwd: Path, line: str) -> None:
    assert result.returncode == 2, result.stderr
    assert line in result.stderr
    assert "Traceback" not in result.stderr
    assert "guard serving" not in result.stdout
    assert not (cwd / "var").exists()  # nothing started: no database was made


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "thing.conf"
    os.mkfifo(path)
    return path


def test_config_file_that_is_a_fifo_or_a_directory(tmp_path: Path, fifo: Path) -> None:
    result = run_guard(tmp_path, "serve", "--demo", "--port", "0", "--config-file", str(fifo))
    expected = f"guard serve: invalid configuration: --config-file {fifo} is a FIFO, not a regular"
    assert_refused(result, tmp_path, expected)
    directory = tmp_path / "guard.conf"
    directory.mkdir()
    result = run_guard(tmp_path, "serve", "--demo", "--port", "0", "--config-file", "guard.conf")
    expected = "--config-file guard.conf is a directory, not a regular file"
    assert_refused(result, tmp_path, expected)
    for command in (["policy", "validate"], ["db", "version"], ["db", "upgrade"]):
        result = run_guard(tmp_path, *command, "--config-file", str(fifo))
        assert_refused(result, tmp_path, f"--config-file {fifo} is a FIFO, not a regular file")


def test_config_dir_holding_a_fifo_or_not_a_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "guard.conf.d"
    conf_dir.mkdir()
    (conf_dir / "10-base.conf").write_text("[guard]\npipeline = trusted\n")
    os.mkfifo(conf_dir / "20-site.conf")
    result = run_guard(tmp_path, "serve", "--demo", "--port", "0", "--config-dir", str(conf_dir))
    expected = (
        f"--config-dir {conf_dir} holds {conf_dir / '20-site.conf'}, which is a FIFO, "
        "not a regular file"
    )
    assert_refused(result, tmp_path, expected)
    # A --config-dir that is a file (or a FIFO) was read as an empty directory.
    a_file = tmp_path / "site.conf"
    a_file.write_text("[oslo_policy]\npolicy_file = strict.yaml\n")
    result = run_guard(tmp_path, "serve", "--demo", "--port", "0", "--config-dir", str(a_file))
    assert_refused(result, tmp_path, f"--config-dir {a_file} is a regular file, not a directory")


def test_a_fifo_found_by_the_default_search(tmp_path: Path) -> None:
    (tmp_path / ".guard").mkdir()
    os.mkfifo(tmp_path / ".guard" / "guard.conf")
    result = run_guard(tmp_path, "policy", "validate")
    found = tmp_path / ".guard" / "guard.conf"
    assert_refused(result, tmp_path, f"the configuration file {found} is a FIFO, not a regular")


@pytest.mark.parametrize("kind", ["a FIFO", "a directory", "a character device"])
def test_log_config_append_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "logging.conf"
    if kind == "a FIFO":
        os.mkfifo(target)
    elif kind == "a directory":
        target.mkdir()
    else:
        target = Path("/dev/zero")
    conf = tmp_path / "guard.conf"
    conf.write_text(f"[DEFAULT]\nlog_config_append = {target}\n")
    for command in (["serve", "--demo", "--port", "0"], ["db", "upgrade", "--demo"]):
        result = run_guard(tmp_path, *command, "--config-file", str(conf))
        expected = (
            f"guard {command[0]}: invalid logging configuration: "
            f"[DEFAULT] log_config_append = {target} is {kind}, not a regular file"
        )
        assert_refused(result, tmp_path, expected)


def test_log_file_fifo_without_a_reader_is_refused_with_one_it_serves(tmp_path: Path) -> None:
    log_fifo = tmp_path / "guard.log"
    os.mkfifo(log_fifo)
    conf = tmp_path / "guard.conf"
    conf.write_text(f"[DEFAULT]\nlog_file = {log_fifo}\n")
    result = run_guard(tmp_path, "serve", "--demo", "--port", "0", "--config-file", str(conf))
    expected = f"[DEFAULT] log_file {log_fifo} is a FIFO that no process reads"
    assert_refused(result, tmp_path, expected)
    # A log shipper reading the FIFO is a deployment guard keeps serving.
    reader = os.open(log_fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        process = guard(tmp_path, "serve", "--demo", "--port", "0", "--config-file", str(conf))
        lines = read_until_serving(process)
        assert lines and lines[-1].startswith("guard serving "), process.stderr
        stop(process)
        assert os.read(reader, 1 << 16)  # guard's log lines came through the FIFO
    finally:
        os.close(reader)
