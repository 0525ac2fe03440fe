"""``guard policy explain`` decides ``null`` credentials as the service does.

The service leaves a credential the caller lacks out of the policy values
(``RequestContext.to_policy_values()``: an unscoped token's ``project_id`` is
None), so ``project_id:%(project_id)s`` is false for it. oslo.policy, given the
plain dict ``--creds`` parses to, compares ``str(None)``, and explain said
ALLOWED for a reader without a project on a consumer of a project named
``None``: an answer the service never gives. explain now leaves ``null``
values out too, and says so on stderr.

Checked against the service's own path (a ``RequestContext`` deciding with the
enforcer ``make_enforcer`` builds), not against explain's code: once on a
real ``guard`` process, and over generated credentials and targets in process.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from guard.cmd import main
from guard.context import RequestContext
from guard.policy import make_enforcer
from tests.functional.processes import run_guard

SHOW = "guard:consumers:show"
RULES = ["guard:consumers:show", "guard:consumers:create", "guard:consumers:delete"]
# An operator file with a check on user_id too (the defaults check project_id only).
OWNER_FILE = '"guard:consumers:delete": "rule:admin or (role:member and user_id:%(user_id)s)"\n'
NOTE = (
    'note: "project_id" is null: left out of the credentials, as the service leaves out '
    "a value the caller does not have\n"
)


def _service_allows(policy_file: Path, rule: str, creds: dict, target: dict) -> bool:
    """What the service decides: a RequestContext on make_enforcer's enforcer."""
    conf = cfg.ConfigOpts()
    conf([], project="guard", default_config_files=[], default_config_dirs=[])
    enforcer = make_enforcer(conf, str(policy_file))
    context = RequestContext(
        user_id=creds.get("user_id"),
        project_id=creds.get("project_id"),
        roles=creds.get("roles", []),
        enforcer=enforcer,
    )
    return context.can(rule, dict(target), fatal=False)


def _explained(stdout: str, rule: str) -> bool:
    first = stdout.splitlines()[0]
    assert first.startswith(f"{rule}: ALLOWED") or first.startswith(f"{rule}: DENIED"), first
    return first.startswith(f"{rule}: ALLOWED")


def test_a_reader_without_a_project_is_denied_a_project_named_none(tmp_path):
    creds = {"roles": ["reader"], "project_id": None}
    target = {"project_id": "None"}
    result = run_guard(tmp_path, "policy", "explain", "--rule", SHOW,
                       "--creds", json.dumps(creds), "--target", json.dumps(target))  # fmt: skip
    assert result.returncode == 0, result.stderr
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("{}\n")
    assert _explained(result.stdout, SHOW) is _service_allows(policy_file, SHOW, creds, target)
    assert not _explained(result.stdout, SHOW)
    assert "project_id:%(project_id)s: no  (the caller's credentials have no 'project_id')" in (
        result.stdout
    )
    assert result.stderr == NOTE


_IDS = st.sampled_from([None, "p1", "None"])
_ROLES = st.lists(st.sampled_from(["reader", "member", "admin"]), unique=True)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rule=st.sampled_from(RULES),
    project=_IDS,
    user=st.sampled_from([None, "u1", "None"]),
    roles=_ROLES,
    target_project=st.sampled_from(["p1", "None"]),
    target_user=st.sampled_from(["u1", "None"]),
)
def test_explain_answers_as_the_service_decides(
    tmp_path, rule, project, user, roles, target_project, target_user
):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(OWNER_FILE)
    creds = {"roles": roles, "project_id": project, "user_id": user}
    target = {"project_id": target_project, "user_id": target_user}
    stdout, stderr = io.StringIO(), io.StringIO()
    args = ["--creds", json.dumps(creds), "--target", json.dumps(target)]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(
            ["policy", "explain", "--rule", rule, *args, "--policy-file", str(policy_file)]
        )
    assert status == 0, stderr.getvalue()
    assert _explained(stdout.getvalue(), rule) is _service_allows(policy_file, rule, creds, target)
    nulls = [key for key in ("project_id", "user_id") if creds[key] is None]
    assert [line.split('"')[1] for line in stderr.getvalue().splitlines()] == nulls
