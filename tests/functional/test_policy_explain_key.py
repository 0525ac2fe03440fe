"""``guard policy explain`` fingerprints the ids in a rule under ``[guard] fingerprint_key``.

The decision log labels a branch with a literal id fingerprinted under the
deployment's key; ``explain`` drew a random key instead (and said that none
was configured) though the ``--config-file`` it read set one, so an operator
could not match its tree to the log. A real ``guard`` process.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

KEY = "explain-key"
HEX_ID = "4b6e0c9f2d6a4e7f9c3b1a2d5e8f7a6b"


def test_explain_uses_the_configured_key(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f'"guard:consumers:show": "rule:admin or project_id:{HEX_ID}"\n')
    config_file = tmp_path / "guard.conf"
    config_file.write_text(f"[guard]\nfingerprint_key = {KEY}\n")
    result = subprocess.run(
        [sys.executable, "-m", "guard", "policy", "explain", "--config-file", str(config_file),
         "--policy-file", str(policy_file), "--rule", "guard:consumers:show",
         "--creds", '{"roles": ["reader"], "project_id": "p1"}',
         "--target", '{"project_id": "p1"}'],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = hmac.new(KEY.encode(), HEX_ID.encode(), hashlib.sha256).hexdigest()[:8]
    assert f"project_id:<id:{expected}>: no" in result.stdout
    assert HEX_ID not in result.stdout + result.stderr
    assert "fingerprint_key configured" not in result.stderr
