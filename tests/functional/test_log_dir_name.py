"""``[DEFAULT] log_dir`` without ``log_file``: the log is ``guard.log`` whatever runs guard.

oslo.log names that file after the program it finds at the bottom of the
stack: ``guard.log`` for the ``guard`` script, but ``<frozen runpy>.log``
under ``python -m guard`` (as a unit file may start it), ``gunicorn.log``
under gunicorn. Real processes, a real log directory.
"""

from __future__ import annotations

from pathlib import Path

from tests.functional.processes import guard


def test_python_m_guard_logs_to_guard_log(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = tmp_path / "guard.conf"
    database = f"sqlite:///{tmp_path / 'g.sqlite'}"
    config.write_text(f"[DEFAULT]\nlog_dir = {logs}\n[database]\nconnection = {database}\n")
    # python -m guard, as the helper runs it
    process = guard(tmp_path, "db", "upgrade", "--config-file", str(config))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    assert [path.name for path in logs.iterdir()] == ["guard.log"]
    assert "Running upgrade" in (logs / "guard.log").read_text()
