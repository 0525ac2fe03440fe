"""A path or URL named empty on the command line is refused, not read as "not given".

``guard serve --policy-file "$POLICY"`` with the variable unset started on
guard's default rules (which may allow more than the operator's file), and
``--database "$DB"`` on an empty ``./var/guard.sqlite`` it made and
migrated; ``guard policy validate ""`` checked the configured file instead.
Real processes, each in a fresh working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("serve", "--pipeline", "trusted", "--port", "0", "--policy-file", ""), "--policy-file"),
        (("serve", "--pipeline", "trusted", "--port", "0", "--database", ""), "--database"),
        (("db", "upgrade", "--database", ""), "--database"),
        (("db", "upgrade", "--demo", "--revision", ""), "--revision"),
        (("policy", "validate", ""), "file"),
        (("policy", "explain", "--rule", "admin", "--creds", "{}", "--policy-file", ""),
         "--policy-file"),
        (("policy", "diff", "", "policy.yaml"), "old"),
    ],
)  # fmt: skip
def test_an_empty_name_is_refused(tmp_path: Path, args: tuple[str, ...], option: str) -> None:
    process = guard(tmp_path, *args)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stdout + stderr
    assert f"argument {option}: is empty" in stderr
    assert "guard serving" not in stdout
    assert not (tmp_path / "var").exists()
