"""guard.testing: one description of a caller for the demo, the load, the benchmarks and tests."""

from __future__ import annotations

from oslo_config import cfg

from guard.context import RequestContext
from guard.policy import make_enforcer
from guard.testing import Persona


def test_headers_are_a_confirmed_identity_with_the_extras() -> None:
    persona = Persona(
        "u1", "p1", ("admin", "reader"), extra_headers=(("OpenStack-System-Scope", "all"),)
    )
    assert persona.headers() == {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": "u1",
        "X-Project-Id": "p1",
        "X-Roles": "admin,reader",
        "OpenStack-System-Scope": "all",
    }


def test_a_persona_without_roles_sends_an_empty_role_list() -> None:
    assert Persona("u1", "p1", ()).headers()["X-Roles"] == ""


def test_home_projects_default_to_the_persona_s_own() -> None:
    assert Persona("u1", "p1", ("member",)).home_projects == ("p1",)
    assert Persona("u1", "p1", ("admin",), projects=("a", "b")).home_projects == ("a", "b")


def test_context_carries_the_identity_and_the_enforcer() -> None:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    enforcer = make_enforcer(conf)
    context = Persona("u1", "p1", ("member", "reader")).context(enforcer)
    assert isinstance(context, RequestContext)
    assert (context.user_id, context.project_id) == ("u1", "p1")
    assert context.roles == ["member", "reader"]
    assert context.can("guard:consumers:show", {"project_id": "p1", "user_id": "x"})
    assert not context.can(
        "guard:consumers:show", {"project_id": "p2", "user_id": "x"}, fatal=False
    )
