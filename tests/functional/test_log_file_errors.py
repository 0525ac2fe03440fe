"""``[DEFAULT] log_file`` or ``log_dir`` that cannot be opened: the start stops naming it.

oslo.log raises the OSError of the file it cannot open; guard said only
"the [DEFAULT] logging options: FileNotFoundError while applying it",
leaving the operator to guess which option and which path. Real processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard


@pytest.mark.parametrize(
    ("options", "named", "reason"),
    [
        (
            "log_file = {tmp}/no-such-dir/guard.log",
            "log_file = {tmp}/no-such-dir/guard.log",
            "No such file",
        ),
        ("log_file = {tmp}", "log_file = {tmp}", "Is a directory"),
        ("log_dir = {tmp}/guard.conf", "log_dir = {tmp}/guard.conf", "Not a directory"),
    ],
)
def test_a_log_file_that_cannot_be_opened_is_named(
    tmp_path: Path, options: str, named: str, reason: str
) -> None:
    conf = tmp_path / "guard.conf"
    conf.write_text(
        f"[DEFAULT]\n{options.format(tmp=tmp_path)}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'guard.sqlite'}\n"
    )
    process = guard(tmp_path, "serve", "--port", "0", "--config-file", str(conf))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    expected = (
        f"guard serve: invalid logging configuration: [DEFAULT] {named.format(tmp=tmp_path)}: "
    )
    assert expected in stderr and reason in stderr, stderr
    assert "Traceback" not in stderr and "guard serving" not in stdout
