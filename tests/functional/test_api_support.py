"""Helpers shared by the API, middleware and serve tests (no tests of its own).

Personas as an authenticating proxy describes them, a check of the
contract's error format, a real guard deployment on a database URL, and a
real waitress server on a free loopback port in a thread.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import waitress

from guard import conf as guard_conf
from guard import deploy

REQUEST_ID_RE = re.compile(r"^req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
ERROR_KEYS = {"status", "title", "detail", "code", "request_id"}
CONSUMER_KEYS = {
    "uuid",
    "project_id",
    "user_id",
    "consumer_type",
    "generation",
    "created_at",
    "updated_at",
}


@dataclass(frozen=True)
class Persona:
    """A caller: identity headers as keystonemiddleware (or a proxy) sets them."""

    user_id: str
    project_id: str
    roles: str
    extra: tuple[tuple[str, str], ...] = ()

    def headers(self) -> dict[str, str]:
        return {
            "X-Identity-Status": "Confirmed",
            "X-User-Id": self.user_id,
            "X-Project-Id": self.project_id,
            "X-Roles": self.roles,
            **dict(self.extra),
        }


def unique(prefix: str) -> str:
    """A keystone-like id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Cast:
    """The callers of one test: their projects are unique to it."""

    project_a: str
    project_b: str
    admin: Persona
    member_a: Persona
    reader_a: Persona
    member_b: Persona
    stranger: Persona
    service: Persona
    roleless_a: Persona
    system_admin: Persona

    @classmethod
    def new(cls) -> Cast:
        a, b, c = unique("proj-a"), unique("proj-b"), unique("proj-c")
        return cls(
            project_a=a,
            project_b=b,
            admin=Persona(unique("admin"), unique("proj-ops"), "admin,member,reader"),
            member_a=Persona(unique("alice"), a, "member,reader"),
            reader_a=Persona(unique("ann"), a, "reader"),
            member_b=Persona(unique("bob"), b, "member,reader"),
            stranger=Persona(unique("eve"), c, "member,reader"),
            service=Persona(unique("nova"), unique("proj-svc"), "service"),
            roleless_a=Persona(unique("ned"), a, ""),
            system_admin=Persona(
                unique("root"),
                a,
                "admin,member,reader",
                (("OpenStack-System-Scope", "all"),),
            ),
        )


def body_for(persona: Persona, generation: int | None, **extra: Any) -> dict[str, Any]:
    """A PUT body owned by ``persona``'s project and user."""
    return {
        "project_id": persona.project_id,
        "user_id": persona.user_id,
        "consumer_generation": generation,
        **extra,
    }


def check_error(
    status: int, headers: Any, body: bytes, want_status: int, want_code: str
) -> dict[str, Any]:
    """Assert the contract's error format; return the error object."""
    assert status == want_status, (status, body[:300])
    assert headers["Content-Type"].split(";")[0] == "application/json"
    document = json.loads(body)
    assert set(document) == {"errors"}
    (error,) = document["errors"]
    assert set(error) == ERROR_KEYS
    assert error["status"] == want_status
    assert error["code"] == want_code
    assert isinstance(error["title"], str) and isinstance(error["detail"], str)
    assert error["request_id"] == headers["X-Openstack-Request-Id"]
    assert REQUEST_ID_RE.match(error["request_id"])
    return error


def services_for(url: str, policy_file: str | None = None) -> deploy.Services:
    """A real guard deployment (migrated database, policy engine) on ``url``."""
    conf = guard_conf.load()
    conf.set_override("connection", url, group="database")
    return deploy.build_services(conf, policy_file=policy_file, migrate=True)


@contextlib.contextmanager
def deployment(url: str, policy_file: str | None = None) -> Iterator[deploy.Services]:
    """:func:`services_for` ``url``, shut down when the block ends."""
    services = services_for(url, policy_file)
    try:
        yield services
    finally:
        services.close()


@contextlib.contextmanager
def served(app: Any, threads: int = 4) -> Iterator[str]:
    """Serve ``app`` with waitress on a free loopback port; yield its base URL."""
    server = waitress.create_server(
        app, host="127.0.0.1", port=0, threads=threads, asyncore_loop_timeout=0.05
    )
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:
            # Closing the sockets under a running select() at shutdown.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stopping.set()
        server.task_dispatcher.shutdown()  # no task pulls the trigger after close()
        server.close()
        thread.join(timeout=5)


def http(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Message, bytes]:
    """One real HTTP request; the status, headers (case-insensitive) and body."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()
