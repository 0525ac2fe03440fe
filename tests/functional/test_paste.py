"""``etc/guard/api-paste.ini`` loaded exactly as its comment says.

``paste.deploy.loadapp("config:.../api-paste.ini", name="main",
global_conf={"config_file": ".../guard.conf"})``: keystonemiddleware reads
guard.conf's ``[keystone_authtoken]`` (its ``AuthTokenFixture`` stands in for
keystone), anonymous callers get guard's 401, the filter keys fingerprints
with guard.conf's ``[guard] fingerprint_key``, and loading never migrates.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy
import webtest
from keystonemiddleware import fixture as ksm_fixture
from paste.deploy import loadapp

from guard.db import migration
from guard.testing import Persona

# The guard filter's factory installs guard's redacting filter process-wide:
# undone after each test (the suite's isolated_install fixture).
pytestmark = pytest.mark.usefixtures("isolated_install")

PASTE_INI = Path(__file__).resolve().parents[2] / "etc" / "guard" / "api-paste.ini"
FINGERPRINT_KEY = "paste-test-key"


def write_guard_conf(tmp_path: Path, database: str, keystone: bool = True) -> Path:
    config = tmp_path / "guard.conf"
    text = f"[database]\nconnection = {database}\n[guard]\nfingerprint_key = {FINGERPRINT_KEY}\n"
    if keystone:
        text += "[keystone_authtoken]\nwww_authenticate_uri = https://keystone.example/identity\n"
    config.write_text(text)
    return config


def load(name: str, config: Path) -> webtest.TestApp:
    app = loadapp(f"config:{PASTE_INI}", name=name, global_conf={"config_file": str(config)})
    return webtest.TestApp(app)


def tables(database: str) -> set[str]:
    engine = sqlalchemy.create_engine(database)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def expected_fingerprint(value: str) -> str:
    """What [guard] fingerprint_key makes of a uuid (HMAC-SHA256 of the dash-less lowercase)."""
    digest = hmac.new(
        FINGERPRINT_KEY.encode(), value.replace("-", "").lower().encode(), hashlib.sha256
    )
    return f"<id:{digest.hexdigest()[:8]}>"


def test_main_answers_anonymous_callers_401_json(tmp_path: Path, sqlite_url: str) -> None:
    migration.upgrade(sqlite_url)
    app = load("main", write_guard_conf(tmp_path, sqlite_url))
    response = app.get("/consumers", status=401)
    assert response.content_type == "application/json"
    (error,) = response.json["errors"]
    assert error["code"] == "guard.unauthorized"
    assert error["request_id"] == response.headers["X-Openstack-Request-Id"]
    forged = {"X-Identity-Status": "Confirmed", "X-User-Id": "u", "X-Roles": "admin"}
    assert app.get("/consumers", headers=forged, status=401).json["errors"][0]["status"] == 401
    assert app.get("/", status=200).json  # the version document needs no token


def test_main_serves_a_valid_token(
    tmp_path: Path, sqlite_url: str, tokens: ksm_fixture.AuthTokenFixture
) -> None:
    migration.upgrade(sqlite_url)
    token = uuid.uuid4().hex
    tokens.add_token_data(
        token_id=token,
        user_id=uuid.uuid4().hex,
        project_id=uuid.uuid4().hex,
        role_list=["member", "reader"],
        user_domain_id="default",
        project_domain_id="default",
    )
    app = load("main", write_guard_conf(tmp_path, sqlite_url))
    response = app.get("/consumers", headers={"X-Auth-Token": token})
    assert response.json == {"consumers": [], "next_marker": None}
    app.get("/consumers", headers={"X-Auth-Token": "not-a-token"}, status=401)


def test_main_without_keystone_settings_refuses_to_load(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="www_authenticate_uri"):
        load("main", write_guard_conf(tmp_path, sqlite_url, keystone=False))


@pytest.mark.parametrize("name", ["main", "trusted"])
def test_loading_never_migrates(tmp_path: Path, sqlite_url: str, name: str) -> None:
    app = load(name, write_guard_conf(tmp_path, sqlite_url))
    app.get("/", status=200)
    health = app.get("/healthcheck", status=503)
    assert health.json["errors"][0]["code"] == "guard.unavailable"
    assert "alembic_version" not in tables(sqlite_url)
    assert "consumers" not in tables(sqlite_url)


def test_the_filter_keys_fingerprints_with_guard_conf(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    migration.upgrade(sqlite_url)
    app = load("trusted", write_guard_conf(tmp_path, sqlite_url))
    consumer = str(uuid.uuid4())
    member = Persona("u", "p", ("reader",)).headers()
    with caplog.at_level(logging.INFO, logger="guard.access"):
        app.get(f"/consumers/{consumer}", headers=member, status=404)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "guard.access"]
    assert f"/consumers/{expected_fingerprint(consumer)} 404" in line
