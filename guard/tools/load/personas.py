"""Who calls: the personas of a load run, as an authenticating proxy describes them."""

from __future__ import annotations

import dataclasses
import uuid as uuidlib

from guard.api.environ import identity_headers


@dataclasses.dataclass(frozen=True)
class Persona:
    """A caller, as the authenticating proxy in front of guard would describe it."""

    name: str
    user_id: str
    project_id: str
    roles: tuple[str, ...]
    #: Projects this persona creates in and picks consumers from.
    projects: tuple[str, ...]
    #: True when every consumer it receives must belong to ``project_id``.
    scoped: bool = True

    def headers(self) -> dict[str, str]:
        """The ``trusted`` pipeline's identity headers for this persona."""
        return identity_headers(self.user_id, self.project_id, self.roles)


def default_personas() -> tuple[Persona, ...]:
    """Fresh projects A and B (keystone-style hex ids) and the personas that use them.

    Ids are new for each run, so runs against one database never mix.
    """
    project_a, project_b, admin_project = (uuidlib.uuid4().hex for _ in range(3))
    return (
        Persona("admin", uuidlib.uuid4().hex, admin_project, ("admin", "member", "reader"),
                (project_a, project_b), scoped=False),
        Persona("member-a", uuidlib.uuid4().hex, project_a, ("member", "reader"), (project_a,)),
        Persona("member-b", uuidlib.uuid4().hex, project_b, ("member",), (project_b,)),
        Persona("reader-b", uuidlib.uuid4().hex, project_b, ("reader",), (project_b,)),
    )  # fmt: skip
