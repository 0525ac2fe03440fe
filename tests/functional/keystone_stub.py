"""A real HTTP listener standing in for keystone, for the ``main`` pipeline's tests.

keystonemiddleware's auth_token talks to it over loopback as it talks to
keystone: it authenticates the service (``POST /v3/auth/tokens``, password),
discovers the identity API and validates each caller's token
(``GET /v3/auth/tokens`` with ``X-Subject-Token``). The bodies are
keystoneauth1's own fixtures of keystone's documents. :attr:`KeystoneStub.mode`
turns it into a keystone in trouble: ``"error"`` answers every request 500,
``"hang"`` never answers (until the stub stops). :func:`refusing_port` is an
address where nothing accepts a connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from keystoneauth1 import fixture as ksa_fixture

SERVICE_PASSWORD = "stub-service-password"


class KeystoneStub:
    """A keystone on ``127.0.0.1``: the tokens :meth:`add_token` made are valid."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.tokens: dict[str, dict[str, Any]] = {}
        self._release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep the test's output quiet
                pass

            def do_GET(self) -> None:
                stub.answer(self, "GET")

            def do_POST(self) -> None:
                stub.answer(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add_token(self, user_id: str, project_id: str, roles: list[str]) -> str:
        """A new valid token of ``user_id`` in ``project_id`` with ``roles``."""
        token = ksa_fixture.V3Token(
            user_id=user_id,
            project_id=project_id,
            user_domain_id="default",
            project_domain_id="default",
        )
        for role in roles:
            token.add_role(name=role)
        token_id = uuid.uuid4().hex
        self.tokens[token_id] = token
        return token_id

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request as keystone would, or as the :attr:`mode` in trouble does."""
        if self.mode == "hang":
            self._release.wait()
            return
        if self.mode == "error":
            self._send(handler, 500, {"error": {"code": 500, "title": "Internal Server Error"}})
            return
        path = handler.path.split("?")[0].rstrip("/")
        if method == "POST" and path == "/v3/auth/tokens":
            handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
            service = ksa_fixture.V3Token(user_id="stub-service", project_id="stub-service")
            service.add_service("identity").add_standard_endpoints(
                public=f"{self.url}/v3", admin=f"{self.url}/v3", internal=f"{self.url}/v3"
            )
            self._send(handler, 201, service, {"X-Subject-Token": uuid.uuid4().hex})
        elif method == "GET" and path == "/v3/auth/tokens":
            token = self.tokens.get(handler.headers.get("X-Subject-Token", ""))
            if token is None:
                self._send(handler, 404, {"error": {"code": 404, "title": "Not Found"}})
            else:
                self._send(handler, 200, token)
        elif method == "GET" and path == "/v3":
            self._send(handler, 200, {"version": ksa_fixture.V3Discovery(f"{self.url}/v3/")})
        elif method == "GET" and path == "":
            discovery = ksa_fixture.DiscoveryList(href=f"{self.url}/", v2=False)
            self._send(handler, 300, discovery)
        else:
            self._send(handler, 404, {"error": {"code": 404, "title": "Not Found"}})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        document: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(document).encode()
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def authtoken_options(self, auth_url: str | None = None) -> str:
        """guard.conf's ``[keystone_authtoken]`` for a service that validates against the stub."""
        return (
            "[keystone_authtoken]\n"
            f"www_authenticate_uri = {self.url}/v3\n"
            "auth_type = password\n"
            f"auth_url = {auth_url or self.url}/v3\n"
            "username = guard\n"
            f"password = {SERVICE_PASSWORD}\n"
            "project_name = service\n"
            "user_domain_id = default\n"
            "project_domain_id = default\n"
            # A keystone that hangs is given up on after 3 s, without retries:
            # long enough that the stub, answering from a thread of a busy test
            # process, is never mistaken for a hung keystone.
            "http_connect_timeout = 3\n"
            "http_request_max_retries = 0\n"
            "service_token_roles_required = true\n"
        )

    def stop(self) -> None:
        """Release hung requests and close the listener."""
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def keystone_stub() -> Iterator[KeystoneStub]:
    """A running :class:`KeystoneStub`, stopped afterwards."""
    stub = KeystoneStub()
    try:
        yield stub
    finally:
        stub.stop()


@contextlib.contextmanager
def refusing_port() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where connections are refused: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
