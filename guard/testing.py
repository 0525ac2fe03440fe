"""Helpers to drive a real guard from tests and tools (as oslo.policy ships ``fixture.py``).

:class:`Persona` is a caller as an authenticating proxy describes it;
:func:`deployment` builds a real guard (migrated database, policy engine) on a
database URL; :func:`served` serves a WSGI app with waitress on a free
loopback port in a thread; :func:`http` makes one real HTTP request. The demo,
``guard load``, the benchmarks and the test suite all use them, so a caller
is described one way everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from email.message import Message
from typing import Any

import waitress

from guard import conf as guard_conf
from guard import deploy
from guard.api.environ import identity_headers
from guard.context import Authorizer, RequestContext


@dataclasses.dataclass(frozen=True)
class Persona:
    """A caller: its identity as keystonemiddleware (or a trusted proxy) hands it on."""

    user_id: str
    project_id: str
    roles: tuple[str, ...]
    #: What a person calls it in a report or a printed line.
    name: str = ""
    #: Projects it acts on (creates in, picks consumers from); default its own.
    projects: tuple[str, ...] = ()
    #: True when every consumer it receives must belong to ``project_id``.
    scoped: bool = True
    #: Further headers sent with the identity (e.g. ``OpenStack-System-Scope``).
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def home_projects(self) -> tuple[str, ...]:
        """:attr:`projects`, or the persona's own project when none are given."""
        return self.projects or (self.project_id,)

    def headers(self) -> dict[str, str]:
        """The identity headers the ``trusted`` pipeline (and auth_token) hands on."""
        return {
            **identity_headers(self.user_id, self.project_id, self.roles),
            **dict(self.extra_headers),
        }

    def context(self, enforcer: Authorizer) -> RequestContext:
        """This caller's request context, as the guard middleware would build it."""
        return RequestContext(
            user_id=self.user_id,
            project_id=self.project_id,
            roles=list(self.roles),
            is_admin_project=False,
            enforcer=enforcer,
        )


def services_for(url: str, policy_file: str | None = None) -> deploy.Services:
    """A real guard deployment (migrated database, policy engine) on database ``url``."""
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
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http:// and https:// URLs")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url, data=body, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()
