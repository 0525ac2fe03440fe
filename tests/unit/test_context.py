"""RequestContext asks its enforcer, fails closed without one, and hides tokens."""

import pytest

from guard import exception
from guard.context import RequestContext


class RecordingAuthorizer:
    """A real (if tiny) authorizer: allows exactly the listed actions."""

    def __init__(self, allowed):
        self.allowed = set(allowed)
        self.calls = []

    def authorize(self, rule, target, creds, do_raise=False, **kwargs):
        self.calls.append((rule, target, creds, do_raise))
        return rule in self.allowed


def test_can_passes_action_target_and_itself():
    authorizer = RecordingAuthorizer({"guard:consumers:show"})
    ctx = RequestContext(user_id="u1", project_id="p1", roles=["reader"], enforcer=authorizer)
    target = {"project_id": "p1"}
    assert ctx.can("guard:consumers:show", target) is True
    assert authorizer.calls == [("guard:consumers:show", target, ctx, False)]


def test_denial_raises_forbidden_or_returns_false():
    ctx = RequestContext(enforcer=RecordingAuthorizer(set()))
    with pytest.raises(exception.Forbidden):
        ctx.can("guard:consumers:delete", {"project_id": "p"})
    assert ctx.can("guard:consumers:delete", {"project_id": "p"}, fatal=False) is False


def test_without_enforcer_everything_is_denied():
    ctx = RequestContext(roles=["admin"])
    assert ctx.can("guard:consumers:list", {}, fatal=False) is False
    with pytest.raises(exception.Forbidden):
        ctx.can("guard:consumers:list")


def test_tokens_are_masked_in_dicts():
    ctx = RequestContext(auth_token="gAAAAAsecret-token", service_token="svc-secret")
    assert ctx.to_dict()["auth_token"] == "***"
    logging_values = ctx.get_logging_values()
    assert logging_values["auth_token"] == "***"
    assert logging_values["service_token"] == "***"
    assert "secret" not in repr(ctx.to_dict())
    assert ctx.auth_token == "gAAAAAsecret-token"  # the context itself keeps it


def test_policy_values_carry_scope_and_roles():
    ctx = RequestContext(user_id="u", project_id="p", roles=["member"], system_scope="all")
    values = ctx.to_policy_values()
    assert values["roles"] == ["member"]
    assert values["system_scope"] == "all"
    assert values["project_id"] == "p"
