"""A typo in an option's name stops every guard command, instead of being dropped.

oslo.config ignores a line that names no option it knows: with
``[oslo_policy] policy_flie = strict.yaml`` guard serve started and served
on the default rules, so a member read a consumer the operator's file kept
to admins. Real processes, real files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard

MESSAGE = "[oslo_policy] policy_flie is not an option guard reads (did you mean policy_file?)"


@pytest.mark.parametrize(
    "command",
    [
        ("serve", "--pipeline", "trusted", "--port", "0"),
        ("db", "upgrade"),
        ("policy", "validate"),
    ],
)
def test_a_mistyped_option_stops_the_command(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "strict.yaml").write_text('"guard:consumers:show": "role:admin"\n')
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'g.sqlite'}\n"
        f"[oslo_policy]\npolicy_flie = {tmp_path / 'strict.yaml'}\n"
    )
    process = guard(tmp_path, *command, "--config-file", str(config))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert MESSAGE in stderr and str(config) in stderr
    assert "guard serving" not in stdout and "Traceback" not in stderr
    assert not (tmp_path / "g.sqlite").exists()  # nothing done


def test_a_section_written_in_lower_case_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'g.sqlite'}\n[default]\ndebug = true\n"
    )
    process = guard(
        tmp_path, "serve", "--pipeline", "trusted", "--port", "0", "--config-file", str(config)
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert "section [default] is not read; oslo.config's is [DEFAULT]" in stderr


def test_a_value_no_request_reads_on_sqlite_stops_the_start(tmp_path: Path) -> None:
    """max_pool_size is read only for a database server: 0 started guard serve on SQLite."""
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'g.sqlite'}\nmax_pool_size = 0\n"
    )
    process = guard(
        tmp_path, "serve", "--pipeline", "trusted", "--port", "0", "--config-file", str(config)
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert "max_pool_size" in stderr and "greater than or equal to 1" in stderr


def test_an_auth_plugin_typo_stops_the_main_pipeline_without_a_traceback(tmp_path: Path) -> None:
    """keystonemiddleware looked the plugin up as guard serve built the pipeline: it died
    with a CRITICAL 'Unhandled error' and NoMatchingPlugin's traceback."""
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = sqlite:///{tmp_path / 'g.sqlite'}\n[keystone_authtoken]\n"
        "www_authenticate_uri = http://127.0.0.1:1/v3\nauth_url = http://127.0.0.1:1/v3\n"
        "auth_type = pasword\nusername = guard\npassword = pw\nproject_name = service\n"
    )
    process = guard(
        tmp_path, "serve", "--pipeline", "main", "--port", "0", "--config-file", str(config)
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert "auth_type = pasword is not an auth plugin keystoneauth has" in stderr
    assert "Traceback" not in stderr and "guard serving" not in stdout
