"""The null device and an anonymous pipe are still configuration files guard reads.

Refusing what is not a regular file (a named FIFO waits at its opening for a
writer that may never come) also refused two habits that never waited:
``--config-file /dev/null`` (read no configuration at all, whatever
/etc/guard/guard.conf says), a ``*.conf`` of a ``--config-dir`` linked to
/dev/null (switched off), and ``--config-file <(...)`` or ``/dev/stdin``
fed by a pipe (a configuration rendered with its secrets, never written to
disk). oslo.config read each before; they are read again, while a named
FIFO and the other devices stay refused. Real processes, real pipes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.functional.processes import run_guard


def a_pipe_holding(text: str) -> int:
    """The read end of an anonymous pipe that holds ``text`` and has no writer left."""
    read_end, write_end = os.pipe()
    os.write(write_end, text.encode())  # far under a pipe's buffer: never blocks
    os.close(write_end)
    return read_end


def test_dev_null_reads_no_configuration(tmp_path: Path) -> None:
    # What the default search finds names a policy file that does not exist.
    (tmp_path / ".guard").mkdir()
    (tmp_path / ".guard" / "guard.conf").write_text("[oslo_policy]\npolicy_file = gone.yaml\n")
    searched = run_guard(tmp_path, "policy", "validate")
    assert searched.returncode == 1, searched.stderr
    result = run_guard(tmp_path, "--config-file", os.devnull, "policy", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok:")


def test_a_config_dir_member_linked_to_dev_null_is_switched_off(tmp_path: Path) -> None:
    conf_dir = tmp_path / "guard.conf.d"
    conf_dir.mkdir()
    database = tmp_path / "from-the-dir.sqlite"
    (conf_dir / "10-base.conf").write_text(f"[database]\nconnection = sqlite:///{database}\n")
    (conf_dir / "20-off.conf").symlink_to(os.devnull)
    result = run_guard(tmp_path, "--config-dir", str(conf_dir), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert database.is_file()


def test_a_pipe_is_read_as_the_configuration(tmp_path: Path) -> None:
    database = tmp_path / "from-the-pipe.sqlite"
    text = f"[database]\nconnection = sqlite:///{database}\n"
    read_end = a_pipe_holding(text)  # what a shell's <(...) hands over
    try:
        result = run_guard(
            tmp_path, "--config-file", f"/dev/fd/{read_end}", "db", "upgrade", pass_fds=(read_end,)
        )
    finally:
        os.close(read_end)
    assert result.returncode == 0, result.stderr
    assert database.is_file()
    # /dev/stdin fed by a pipe: `render-conf | guard --config-file /dev/stdin db version`.
    read_end = a_pipe_holding(text)
    try:
        result = run_guard(
            tmp_path, "--config-file", "/dev/stdin", "db", "version", stdin=read_end
        )
    finally:
        os.close(read_end)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_named_fifo_and_other_devices_stay_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "guard.conf"
    os.mkfifo(fifo)
    for path, kind in ((str(fifo), "a FIFO"), ("/dev/zero", "a character device")):
        result = run_guard(tmp_path, "--config-file", path, "policy", "validate")
        assert result.returncode == 2, result.stderr
        assert f"--config-file {path} is {kind}, not a regular file" in result.stderr


def test_a_pipe_is_refused_where_each_worker_reads_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """guard.wsgi and paste read their configuration again in each worker (and in each
    worker gunicorn starts later): the next reader of a pipe finds it empty, and the
    operator's policy file and options would be silently gone. Only a command, which
    reads it once, takes a pipe."""
    from guard import conf as guard_conf
    from guard import conffiles, wsgi

    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    text = f"[database]\nconnection = {database}\n"
    read_end = a_pipe_holding(text)
    path = f"/dev/fd/{read_end}"
    try:
        with pytest.raises(conffiles.NotARegularFileError, match=f"{path} is a FIFO"):
            guard_conf.load([path])  # a library or paste's factories
        monkeypatch.setenv(wsgi.CONFIG_FILE_ENV, path)
        monkeypatch.setenv("HOME", str(tmp_path))
        with pytest.raises(conffiles.NotARegularFileError, match=f"{path} is a FIFO"):
            wsgi.build_from_environment()
        conf = guard_conf.load([path], pipes=True)  # what a guard command reads
        assert conf.database.connection == database
    finally:
        os.close(read_end)
