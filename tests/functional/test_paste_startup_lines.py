"""What is logged while PasteDeploy builds guard's pipeline is redacted, under the configured key.

PasteDeploy builds the app (its policy enforcer, the schema check) before any
filter of the pipeline, and the ``guard`` filter's factory put the redacting
filter on the service's handlers only then. A policy warning naming a rule
whose key holds a keystone id reached the service's log raw, and an id
fingerprinted meanwhile drew a random key (with its notice: "No [guard]
fingerprint_key configured") though the file configured one. A real
``paste.deploy.loadapp`` of ``etc/guard/api-paste.ini`` in its own process,
with a service's own plain handler, as the file's comment says to load it.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import pytest

from guard.db import migration

ROOT = Path(__file__).resolve().parents[2]
KEY = "paste-startup-key"
HEX_ID = "4b6e0c9f2d6a4e7f9c3b1a2d5e8f7a6b"  # a keystone project id, in a rule's key
LOAD = """
import logging, sys
from paste.deploy import loadapp
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
loadapp("config:" + sys.argv[1], name=sys.argv[2], global_conf={"config_file": sys.argv[3]})
"""


def expected_fingerprint(value: str) -> str:
    """``<id:...>`` as docs describe it: HMAC-SHA256 under the key, its first 8 hex digits."""
    return "<id:" + hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:8] + ">"


@pytest.mark.parametrize("pipeline", ["trusted", "main"])
def test_lines_logged_while_the_app_is_built_are_redacted(tmp_path: Path, pipeline: str) -> None:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    migration.upgrade(database)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f'"typo:{HEX_ID}": "rule:admin"\n')
    config_file = tmp_path / "guard.conf"
    config_file.write_text(
        f"[database]\nconnection = {database}\n"
        f"[oslo_policy]\npolicy_file = {policy_file}\n"
        f"[guard]\nfingerprint_key = {KEY}\n"
        "[keystone_authtoken]\nwww_authenticate_uri = http://127.0.0.1:5000/v3\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(ROOT / "etc/guard/api-paste.ini"), pipeline,
         str(config_file)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    # The warning was logged while the app was built, before the filter's factory ran.
    assert f"rule 'typo:{expected_fingerprint(HEX_ID)}': is not a rule guard knows" in log
    assert HEX_ID not in log
    assert "fingerprint_key configured" not in log  # no random key was ever drawn
