"""``[guard] fingerprint_key`` left blank, or quoted whitespace, is no key: a random one is drawn.

A blank value (the sample's ``#fingerprint_key = <None>`` uncommented, a
template whose variable was unset) keyed the HMAC with the empty key, which
anyone can compute: whoever reads the logs could match a fingerprint to a
project or user name, or to a consumer uuid they know, by trying it. So did a
quoted whitespace-only value (``fingerprint_key = "   "``: oslo.config keeps
what the quotes hold), a key as public as the empty one. A real ``guard
serve``, a real request, its access line.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.request
from pathlib import Path

import pytest

from tests.functional.processes import guard, serving_url, stop

CONSUMER = "0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77"


@pytest.mark.parametrize(
    ("written", "key"),
    [("", b""), ('"   "', b"   "), ("'\t '", b"\t "), ('" "', b" ")],
    ids=["blank", "quoted-spaces", "quoted-tab", "quoted-space"],
)
def test_a_blank_key_is_no_key(tmp_path: Path, written: str, key: bytes) -> None:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = {database}\n[guard]\npipeline = trusted\n"
        f"fingerprint_key = {written}\n"
    )
    process = guard(tmp_path, "serve", "--config-file", str(config), "--port", "0")
    url = serving_url(process)
    request = urllib.request.Request(f"{url}/consumers/{CONSUMER}")
    try:
        urllib.request.urlopen(request, timeout=30)  # 401, anonymous: its access line is enough
    except urllib.error.HTTPError as error:
        assert error.code == 401
    stderr = stop(process)
    # docs: HMAC-SHA256 of the id lowercased without its dashes, its first 8 hex digits
    normal = CONSUMER.replace("-", "").encode()
    public = hmac.new(key, normal, hashlib.sha256).hexdigest()[:8]
    assert "GET /consumers/<id:" in stderr
    assert f"<id:{public}>" not in stderr
    assert "No [guard] fingerprint_key configured" in stderr
