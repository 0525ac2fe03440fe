"""Helpers shared by the API, middleware and serve tests (no tests of its own).

The cast of callers one test uses (personas from :mod:`guard.testing`, with
projects unique to the test), PUT bodies, and a check of the contract's error
format. Deployments, servers and requests are :mod:`guard.testing`'s.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from guard.testing import Persona

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
            admin=Persona(unique("admin"), unique("proj-ops"), ("admin", "member", "reader")),
            member_a=Persona(unique("alice"), a, ("member", "reader")),
            reader_a=Persona(unique("ann"), a, ("reader",)),
            member_b=Persona(unique("bob"), b, ("member", "reader")),
            stranger=Persona(unique("eve"), c, ("member", "reader")),
            service=Persona(unique("nova"), unique("proj-svc"), ("service",)),
            roleless_a=Persona(unique("ned"), a, ()),
            system_admin=Persona(
                unique("root"),
                a,
                ("admin", "member", "reader"),
                extra_headers=(("OpenStack-System-Scope", "all"),),
            ),
        )

    def sensitive_values(self) -> list[str]:
        """Every id of the cast: none may reach a log line raw (ids of no uuid shape)."""
        personas = (
            self.admin,
            self.member_a,
            self.reader_a,
            self.member_b,
            self.stranger,
            self.service,
            self.roleless_a,
            self.system_admin,
        )
        return sorted({v for p in personas for v in (p.user_id, p.project_id)})


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
