"""A ``$`` in a secret option's value: named, never shown, no traceback.

oslo.config reads ``$name`` in a value as a reference to another option. A
database password with a ``$`` in it (``Xy$ecretTail9``) made ``guard db``
print ``no such option ecretTail9 in group [DEFAULT]`` (the password's tail,
in a deployment tool's captured output) and ``guard serve`` die with a
traceback saying the same. Real processes, real files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard

TAIL = "ecretTail9"
MESSAGE = "[database] connection: its value has a '$' that oslo.config reads as a reference"


@pytest.mark.parametrize(
    "command",
    [
        ("db", "upgrade"),
        ("db", "version"),
        ("serve", "--pipeline", "trusted", "--port", "0"),
        ("policy", "validate"),
    ],
)
def test_a_dollar_in_the_database_password_is_named_not_shown(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = tmp_path / "guard.conf"
    config.write_text(f"[database]\nconnection = mysql+pymysql://guard:Xy${TAIL}@127.0.0.1:1/g\n")
    process = guard(tmp_path, *command, "--config-file", str(config))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert MESSAGE in stderr
    assert TAIL not in stdout + stderr and "Traceback" not in stderr


def test_a_doubled_dollar_is_a_dollar(tmp_path: Path) -> None:
    config = tmp_path / "guard.conf"
    config.write_text(f"[database]\nconnection = mysql+pymysql://guard:Xy$${TAIL}@127.0.0.1:1/g\n")
    process = guard(tmp_path, "db", "upgrade", "--config-file", str(config))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1  # nothing listens on port 1: the URL was read
    assert "connection refused" in stderr and TAIL not in stdout + stderr


def test_a_dollar_in_the_keystone_password_is_named_not_shown(tmp_path: Path) -> None:
    """keystonemiddleware reads its password as the main pipeline is built:
    guard serve died with a CRITICAL line and a traceback naming its tail."""
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'g.sqlite'}\n"
        "[keystone_authtoken]\nwww_authenticate_uri = http://127.0.0.1:1/v3\n"
        "auth_url = http://127.0.0.1:1/v3\nauth_type = password\nusername = guard\n"
        f"password = Ab${TAIL}\nproject_name = service\n"
    )
    process = guard(tmp_path, "serve", "--pipeline", "main", "--port", "0",
                    "--config-file", str(config))  # fmt: skip
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert "refusing to start: [keystone_authtoken]: a value cannot be read" in stderr
    assert TAIL not in stdout + stderr and "Traceback" not in stderr
