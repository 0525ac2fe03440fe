"""A logging configuration oslo.log cannot apply stops the command with one clear line.

As any other refused setting: exit 2, the file named, no traceback, and
none of the file's own text (a parser's error would quote its lines, and an
operator's logging.conf may hold a syslog or collector password).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard

SECRET = "collector-Pw-7f3k"
LOGGING_CONFS = {
    "missing": None,
    "not a logging.conf": f"[handler_syslog]\npassword = {SECRET}\nthis line is not ini\n",
    "a class that is not there": (
        "[loggers]\nkeys = root\n[handlers]\nkeys = h\n[formatters]\nkeys = f\n"
        "[logger_root]\nhandlers = h\n"
        f"[handler_h]\nclass = no_such_module.Handler\nargs = ('{SECRET}',)\nformatter = f\n"
        "[formatter_f]\nformat = %(message)s\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(LOGGING_CONFS))
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["db", "upgrade"]])
def test_a_logging_conf_oslo_log_refuses_stops_the_command_cleanly(
    tmp_path: Path, kind: str, command: list[str]
) -> None:
    logging_conf = tmp_path / "logging.conf"
    if LOGGING_CONFS[kind] is not None:
        logging_conf.write_text(LOGGING_CONFS[kind])
    conf = tmp_path / "guard.conf"
    conf.write_text(
        f"[DEFAULT]\nlog_config_append = {logging_conf}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'guard.sqlite'}\n"
    )
    process = guard(tmp_path, *command, "--config-file", str(conf))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    assert f"guard {command[0]}: invalid logging configuration: {logging_conf}: " in stderr
    assert "Traceback" not in stderr
    assert SECRET not in stderr and SECRET not in stdout
    assert "guard serving" not in stdout
