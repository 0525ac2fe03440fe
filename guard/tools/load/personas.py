"""Who calls: the personas of a load run, as an authenticating proxy describes them."""

from __future__ import annotations

import uuid as uuidlib

from guard.testing import Persona


def default_personas() -> tuple[Persona, ...]:
    """Fresh projects A and B (keystone-style hex ids) and the personas that use them.

    Ids are new for each run, so runs against one database never mix.
    """
    project_a, project_b, admin_project = (uuidlib.uuid4().hex for _ in range(3))
    return (
        Persona(uuidlib.uuid4().hex, admin_project, ("admin", "member", "reader"), name="admin",
                projects=(project_a, project_b), scoped=False),
        Persona(uuidlib.uuid4().hex, project_a, ("member", "reader"), name="member-a"),
        Persona(uuidlib.uuid4().hex, project_b, ("member",), name="member-b"),
        Persona(uuidlib.uuid4().hex, project_b, ("reader",), name="reader-b"),
    )  # fmt: skip
