"""keystoneauth's DEBUG lines of auth_token's token validation, in the ``main`` pipeline.

With a ``logging.conf`` whose root is at DEBUG (how operators chase a
keystone problem; it bypasses oslo.log's ``keystoneauth=WARN``),
keystoneauth logs each response keystone sends auth_token, body included:
the validated token names the caller (user and project names, their
domains) before the guard middleware knows the caller, so nothing scrubbed
them. A real auth_token and keystoneauth talking HTTP to a small keystone
stand-in on loopback; the checks are plain substring tests.
"""

from __future__ import annotations

import http.server
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from paste.deploy import loadapp

from guard import log as guard_log
from guard.db import migration
from tests.functional.test_paste import PASTE_INI

pytestmark = pytest.mark.usefixtures("isolated_install")

TAG = uuid.uuid4().hex[:6]
CALLER = {
    "user": ("ldap-user-" + TAG, "alice.smith." + TAG),
    "project": ("ldap-project-" + TAG, "finance.team." + TAG),
    "domain": ("corp-domain-" + TAG, "Corp.Domain." + TAG),
}
USER_TOKEN = "user-token-" + TAG
SERVICE_TOKEN = "service-token-" + TAG


def _token(
    base: str, user: tuple[str, str], project: tuple[str, str], domain: tuple[str, str]
) -> dict:
    """A keystone v3 token body (its catalog: this stand-in as the identity endpoint)."""
    domain = {"id": domain[0], "name": domain[1]}
    endpoints = [
        {"id": f"e-{kind}", "interface": kind, "region": "RegionOne", "url": f"{base}/v3"}
        for kind in ("public", "internal", "admin")
    ]
    return {
        "token": {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "user": {"id": user[0], "name": user[1], "domain": domain},
            "project": {"id": project[0], "name": project[1], "domain": domain},
            "roles": [{"id": "r-reader", "name": "reader"}, {"id": "r-member", "name": "member"}],
            "catalog": [
                {"id": "s-1", "type": "identity", "name": "keystone", "endpoints": endpoints}
            ],
        }
    }


class _Keystone(http.server.BaseHTTPRequestHandler):
    """Version discovery, the service's password login, token validation."""

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("", "/v3"):
            link = {"rel": "self", "href": f"{self._base()}/v3/"}
            media = [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ]
            version = {"id": "v3.14", "status": "stable", "links": [link], "media-types": media}
            self._send(200, {"version": version})
        elif self.path == "/v3/auth/tokens" and self.headers.get("X-Subject-Token") == USER_TOKEN:
            caller = CALLER["user"], CALLER["project"], CALLER["domain"]
            self._send(200, _token(self._base(), *caller))
        else:
            self._send(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # The service's own login (its names are the operator's, in guard.conf).
        service = _token(self._base(), ("svc-guard", "guard"), ("svc-p", "service"), ("d", "D"))
        self._send(201, service, {"X-Subject-Token": SERVICE_TOKEN})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def keystone() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Keystone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_keystoneauths_response_bodies_name_no_caller(
    tmp_path: Path, sqlite_url: str, keystone: str, log_leaks
) -> None:
    log_leaks.sensitive(*(value for pair in CALLER.values() for value in pair))
    migration.upgrade(sqlite_url)
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = {sqlite_url}\n[guard]\nfingerprint_key = k\n"
        f"[keystone_authtoken]\nwww_authenticate_uri = {keystone}/v3\nauth_url = {keystone}/v3\n"
        "auth_type = password\nusername = guard\npassword = service-password\n"
        "project_name = service\nuser_domain_id = default\nproject_domain_id = default\n"
    )
    guard_log.install("k")  # as guard serve and guard.wsgi do before they load anything
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # root at DEBUG, as a logging.conf sets it
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)  # guard's filter goes on it, as on every handler
    root.setLevel(logging.DEBUG)
    try:
        app = webtest.TestApp(
            loadapp(f"config:{PASTE_INI}", name="main", global_conf={"config_file": str(config)})
        )
        response = app.get("/consumers", headers={"X-Auth-Token": USER_TOKEN})
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    assert response.json == {"consumers": [], "next_marker": None}
    output = stream.getvalue()
    assert "RESP BODY" in output  # keystoneauth did log the validation
    for value in (*CALLER["user"], *CALLER["project"], *CALLER["domain"], USER_TOKEN):
        assert value not in output, [line for line in output.splitlines() if value in line][:2]
