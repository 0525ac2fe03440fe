"""``guard serve --demo``: a few projects, users and consumers, and curl lines to try.

The demo writes through the guarded repository as the demo administrator (no
back door to the rows), and resets its own consumers at every start so the
printed lines answer as printed. The lines send the identity headers the
``trusted`` pipeline expects from an authenticating proxy.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from dataclasses import dataclass, field

from guard import exception
from guard.context import Authorizer
from guard.repository import ConsumerRepository
from guard.testing import Persona

ADMIN = Persona("demo-admin", "demo-ops", ("admin", "member", "reader"), name="admin")
ALICE = Persona(
    "demo-alice", "demo-project-a", ("member", "reader"), name="member of demo-project-a"
)
BOB = Persona("demo-bob", "demo-project-b", ("member", "reader"), name="member of demo-project-b")
STRANGER = Persona(
    "demo-eve", "demo-project-c", ("member", "reader"), name="stranger (member of demo-project-c)"
)

# (uuid, owner) of the seeded consumers: fixed, so the lines can name them.
SEEDED = (
    ("7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1a01", ALICE, "INSTANCE"),
    ("7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1a02", ALICE, None),
    ("7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1b01", BOB, "MIGRATION"),
)
#: The consumer the member creates in the printed lines (absent after seeding).
NEW_UUID = "7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1a03"


@dataclass(frozen=True)
class DemoCall:
    """One request to try, and the status it answers after seeding."""

    comment: str
    persona: Persona
    method: str
    path: str
    expect: int
    body: dict[str, object] | None = field(default=None)

    def curl(self, base_url: str) -> str:
        """The call as one curl line that prints the body, then the status."""
        words = ["curl", "-s", "-w", r"\n%{http_code}\n"]
        if self.method != "GET":
            words += ["-X", self.method]
        for name, value in self.persona.headers().items():
            words += ["-H", f"{name}: {value}"]
        if self.body is not None:
            words += ["-H", "Content-Type: application/json", "-d", json.dumps(self.body)]
        words.append(base_url + self.path)
        return shlex.join(words)


def calls() -> list[DemoCall]:
    """The printed lines, in the order they are meant to be run."""
    a1, _, _ = SEEDED[0]
    b1, _, _ = SEEDED[2]
    return [
        DemoCall("the admin lists every consumer", ADMIN, "GET", "/consumers", 200),
        DemoCall("a member lists what her project owns", ALICE, "GET", "/consumers", 200),
        DemoCall("a member reads her project's consumer", ALICE, "GET", f"/consumers/{a1}", 200),
        DemoCall(
            "a member creates a consumer in her project",
            ALICE,
            "PUT",
            f"/consumers/{NEW_UUID}",
            201,
            {
                "project_id": ALICE.project_id,
                "user_id": ALICE.user_id,
                "consumer_generation": None,
            },
        ),
        DemoCall(
            "a member may not create one in another project",
            ALICE,
            "PUT",
            "/consumers/7d3c1a52-5c1e-4b7e-9a51-2f0d8e6b1a04",
            403,
            {"project_id": BOB.project_id, "user_id": ALICE.user_id, "consumer_generation": None},
        ),
        DemoCall("another project's consumer is not found", ALICE, "GET", f"/consumers/{b1}", 404),
        DemoCall("a stranger cannot see it either", STRANGER, "GET", f"/consumers/{a1}", 404),
        DemoCall("a stranger's list is empty", STRANGER, "GET", "/consumers", 200),
        DemoCall(
            "the admin deletes it, naming its generation",
            ADMIN,
            "DELETE",
            f"/consumers/{b1}?consumer_generation=0",
            204,
        ),
    ]


def seed(repository: ConsumerRepository, enforcer: Authorizer) -> None:
    """Reset the demo's consumers: the seeded ones as listed, the created one absent."""
    admin = ADMIN.context(enforcer)
    for uuid in (*(row[0] for row in SEEDED), NEW_UUID):
        with contextlib.suppress(exception.NotFound):
            repository.delete(admin, uuid)
    for uuid, owner, consumer_type in SEEDED:
        repository.create(
            admin,
            uuid,
            project_id=owner.project_id,
            user_id=owner.user_id,
            consumer_type=consumer_type,
        )


def instructions(base_url: str) -> str:
    """The text ``guard serve --demo`` prints: who is who, and the curl lines."""
    lines = [
        "Demo data: projects demo-project-a (alice), demo-project-b (bob), demo-project-c "
        "(eve, a stranger to both); consumers "
        + ", ".join(f"{uuid} ({owner.project_id})" for uuid, owner, _ in SEEDED)
        + ".",
        "Each line prints the response body, then its status:",
        "",
    ]
    for call in calls():
        lines.append(f"# {call.comment} ({call.persona.name}): expect {call.expect}")
        lines.append(call.curl(base_url))
    return "\n".join(lines)
