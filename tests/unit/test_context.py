"""RequestContext asks its enforcer, fails closed without one, and hides tokens."""

import os
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_context import context as oslo_context

from guard import exception
from guard.context import RequestContext, generate_request_id


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


_maybe_text = st.one_of(st.none(), st.just(""), st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(
    texts=st.fixed_dictionaries(
        {
            name: _maybe_text
            for name in (
                "user_id",
                "project_id",
                "domain_id",
                "user_domain_id",
                "project_domain_id",
                "user_name",
                "project_name",
                "domain_name",
                "user_domain_name",
                "project_domain_name",
                "auth_token",
                "service_token",
                "request_id",
                "global_request_id",
                "resource_uuid",
                "system_scope",
            )
        }
    ),
    flags=st.fixed_dictionaries(
        {name: st.booleans() for name in ("is_admin", "read_only", "show_deleted")}
    ),
    roles=st.lists(st.text(max_size=6), max_size=3),
    is_admin_project=st.booleans(),
)
def test_logging_values_are_oslos_with_tokens_masked(texts, flags, roles, is_admin_project):
    """The same keys, in the same order, with the same values as oslo.context's, tokens masked."""
    ctx = RequestContext(**texts, **flags, roles=roles, is_admin_project=is_admin_project)
    if texts["request_id"] is None:  # oslo then makes one: the same for both below
        assert ctx.request_id
    theirs = oslo_context.RequestContext.get_logging_values(ctx)  # over guard's to_dict()
    if ctx.service_token:
        theirs["service_token"] = "***"
    ours = ctx.get_logging_values()
    assert list(ours.items()) == list(theirs.items())


def test_an_identity_format_of_a_subclass_is_used_in_logging_values():
    class Bracketed(RequestContext):
        user_idt_format = "[{user}|{p_domain}]"

    values = Bracketed(user_id="u", project_domain_id="d").get_logging_values()
    assert values["user_identity"] == "[u|d]"


def test_a_subclass_with_its_own_to_dict_keeps_it_in_logging_values():
    class WithTenant(RequestContext):
        def to_dict(self):
            return {**super().to_dict(), "tenant": "t-1"}

    values = WithTenant(user_id="u", auth_token="secret", service_token="svc").get_logging_values()
    assert values["tenant"] == "t-1"
    assert values["auth_token"] == values["service_token"] == "***"


def test_policy_values_carry_scope_and_roles():
    ctx = RequestContext(user_id="u", project_id="p", roles=["member"], system_scope="all")
    values = ctx.to_policy_values()
    assert values["roles"] == ["member"]
    assert values["system_scope"] == "all"
    assert values["project_id"] == "p"


def test_policy_values_leave_out_what_the_caller_does_not_have():
    """str(None) is 'None': a caller without a project must match no project named so."""
    values = RequestContext(user_id="u", roles=["reader"]).to_policy_values()
    assert "project_id" not in values and "domain_id" not in values
    assert values["user_id"] == "u" and values["roles"] == ["reader"]
    assert None not in values.values()


# -- from_environ: oslo.context's, reading only the headers a request carries --------

_OSLO_HEADERS = sorted(
    {header for headers in oslo_context._ENVIRON_HEADERS.values() for header in headers}
    | {"HTTP_X_ROLES", "HTTP_X_ROLE", "HTTP_X_SERVICE_ROLES", "HTTP_X_IS_ADMIN_PROJECT"}
)
_OSLO_KWARGS = sorted({*oslo_context._ENVIRON_HEADERS, "roles", "is_admin_project"})
_header_values = st.sampled_from(["", "a", "B", " r1 , r2,", "true", "TRUE", "false", "x,,y"])


def _attributes(ctx: oslo_context.RequestContext) -> dict[str, object]:
    return {k: v for k, v in vars(ctx).items() if k not in {"enforcer", "request_id"}}


@settings(max_examples=300, deadline=None)
@given(
    environ=st.dictionaries(
        st.sampled_from([*_OSLO_HEADERS, "HTTP_X_OTHER", "PATH_INFO"]), _header_values
    ),
    kwargs=st.dictionaries(st.sampled_from(_OSLO_KWARGS), _header_values, max_size=3),
)
def test_from_environ_reads_what_oslo_context_reads(
    environ: dict[str, str], kwargs: dict[str, object]
) -> None:
    """Every header, its precedence (X-User-Id before X-User, ...), overrides, defaults."""
    if "roles" in kwargs:
        kwargs["roles"] = [kwargs["roles"]]
    ours = RequestContext.from_environ(environ, overwrite=False, **kwargs)
    stock = oslo_context.RequestContext.from_environ(environ, overwrite=False, **kwargs)
    assert _attributes(ours) == _attributes(stock)


def test_from_environ_takes_the_first_header_of_a_kind() -> None:
    environ = {"HTTP_X_TENANT": "t", "HTTP_X_PROJECT_ID": "p", "HTTP_X_TENANT_ID": "ti"}
    assert RequestContext.from_environ(environ).project_id == "p"
    del environ["HTTP_X_PROJECT_ID"]
    assert RequestContext.from_environ(environ).project_id == "ti"


# -- request ids ----------------------------------------------------------------------

_UUID4_REQUEST_ID = re.compile(
    r"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


def test_request_ids_are_uuid4s_and_unique() -> None:
    ids = [generate_request_id() for _ in range(5000)]  # more than one page of random bytes
    assert all(_UUID4_REQUEST_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i[4:])) == i[4:] for i in ids[:50])


def test_a_forked_child_draws_its_own_request_ids() -> None:
    generate_request_id()  # the parent has random bytes left over
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave at once
        os.write(write_end, ",".join(generate_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    child = set(os.read(read_end, 4096).decode().split(","))
    os.close(read_end)
    parent = {generate_request_id() for _ in range(3)}
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == 3 and not child & parent
