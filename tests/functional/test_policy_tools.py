"""Operator tools on real files: ``guard policy ...`` and the stock oslo.policy tools.

The oslo.policy console scripts run as subprocesses from the project's
virtualenv, against guard's entry points (``--namespace guard``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guard.cmd import main
from guard.cmd.policy import sample_text
from guard.policies import list_rules
from tests.functional.test_policy_reload import BAD_FILES, LIST, SHOW

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "etc" / "guard" / "policy.yaml"
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def config_file(tmp_path: Path, policy_file: Path) -> Path:
    conf = tmp_path / "guard.conf"
    conf.write_text(f"[oslo_policy]\npolicy_file = {policy_file}\n")
    return conf


def test_the_shipped_policy_file_is_the_current_sample():
    assert SHIPPED.read_text() == sample_text(), (
        "etc/guard/policy.yaml is stale: run `guard policy sample --output-file "
        "etc/guard/policy.yaml`"
    )
    assert all(line.startswith("#") for line in SHIPPED.read_text().splitlines() if line)


def test_validate_accepts_the_shipped_file(capsys):
    assert main(["policy", "validate", str(SHIPPED)]) == 0
    assert capsys.readouterr().out.startswith("ok: revision ")


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_validate_rejects_each_bad_file_with_line_and_rule(tmp_path, capsys, case):
    path = tmp_path / "policy.yaml"
    path.write_text(BAD_FILES[case])
    assert main(["policy", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"error: policy.yaml:2: rule '{LIST}':" in out


def test_validate_reports_every_problem_and_warns_on_unknown_names(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text(
        f'"{SHOW}": "rule:admin or"\n"{LIST}": "rule:nope"\n"a": "rule:b"\n"b": "rule:a"\n'
        '"guard:consumer:show": "@"\n'
    )
    assert main(["policy", "validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        f"error: policy.yaml:1: rule '{SHOW}': the check string does not parse "
        "(unbalanced parentheses or a missing operand)",
        f"error: policy.yaml:2: rule '{LIST}': refers to undefined rule 'nope'",
        "error: policy.yaml:3: rule 'a': is part of a cycle of rule references",
        "error: policy.yaml:4: rule 'b': is part of a cycle of rule references",
    ]
    assert lines[4] == (
        "warning: policy.yaml:5: rule 'guard:consumer:show': is not a rule guard knows or uses"
        " (did you mean 'guard:consumers:show'? that rule keeps its default)"  # line 1 fails
    )


def test_validate_passes_a_file_with_only_warnings(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text(f'"{SHOW}": "rule:admin"\n"guard:consumer:show": "@"\n')
    assert main(["policy", "validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "warning: policy.yaml:2: rule 'guard:consumer:show': is not a rule guard knows or uses"
        " (did you mean 'guard:consumers:show'?)"
    )
    assert out[1].startswith("ok: revision ")


def test_a_typo_of_a_rule_name_names_the_rule_left_at_its_default(tmp_path, capsys):
    """The operator's override of the mistyped rule is dropped: the warning says which."""
    path = tmp_path / "policy.yaml"
    path.write_text('"guard:consumers:lsit": "role:admin"\n"typo:rule": "@"\n')
    assert main(["policy", "validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "warning: policy.yaml:1: rule 'guard:consumers:lsit': is not a rule guard knows or uses"
        " (did you mean 'guard:consumers:list'? that rule keeps its default)",
        "warning: policy.yaml:2: rule 'typo:rule': is not a rule guard knows or uses",
    ]


@pytest.mark.parametrize(
    ("check", "warned"),
    [
        ("not !", True),
        ("role:admin or not (role:x and !)", True),
        ("not (not @)", True),
        ("not role:reader", False),
        ("not @", False),
        ("role:admin and not !", False),
    ],
)
def test_a_write_rule_that_allows_everyone_through_not_is_warned_about(
    tmp_path, capsys, check, warned
):
    path = tmp_path / "policy.yaml"
    path.write_text(f'"guard:consumers:delete": "{check}"\n')
    assert main(["policy", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("a write rule that allows everyone" in out) is warned, out


def test_sample_prints_the_shipped_file(capsys):
    assert main(["policy", "sample"]) == 0
    assert capsys.readouterr().out == SHIPPED.read_text()


def test_validate_rejects_a_missing_file(tmp_path, capsys):
    assert main(["policy", "validate", str(tmp_path / "deleted.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_the_guard_console_script_validates(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text(BAD_FILES["cycle"])
    assert run("guard", "policy", "validate", str(SHIPPED)).returncode == 0
    result = run("guard", "policy", "validate", str(bad))
    assert result.returncode == 1
    assert "policy.yaml:2" in result.stdout


def test_explain_shows_the_deciding_branch_and_the_failed_key(capsys):
    creds = json.dumps({"roles": ["reader"], "project_id": "p2"})
    assert main(["policy", "explain", "--rule", SHOW, "--creds", creds, "--target",
                 json.dumps({"project_id": "p1"})]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith(f"{SHOW}: DENIED by denied")
    assert "project_id:%(project_id)s: no  (the caller's 'project_id' differs)" in out
    assert "p1" not in out and "p2" not in out  # decisions are explained without values

    creds = json.dumps({"roles": ["reader"], "project_id": "p1"})
    assert main(["policy", "explain", "--rule", SHOW, "--creds", creds, "--target",
                 json.dumps({"project_id": "p1"})]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith(f"{SHOW}: ALLOWED by rule:project_reader")


def test_diff_tables_the_decisions_that_change(tmp_path, capsys):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("")
    new.write_text(f'"{SHOW}": "rule:admin"\n')
    assert main(["policy", "diff", str(old), str(new)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rule", "persona", "old", "new"]
    changes = {tuple(line.split("  ")[0:1]) + tuple(line.split()[-2:]) for line in lines[2:]}
    assert changes == {
        (SHOW, "allow", "deny"),  # project member, project reader, service
    }
    personas = sorted(" ".join(line.split()[1:-2]) for line in lines[2:])
    assert personas == ["project member", "project reader", "service"]

    assert main(["policy", "diff", str(new), str(new)]) == 0
    assert capsys.readouterr().out == "no decision changes\n"


def test_oslopolicy_sample_generator_documents_guard():
    result = run("oslopolicy-sample-generator", "--namespace", "guard")
    assert result.returncode == 0, result.stderr
    assert result.stdout == SHIPPED.read_text()


def test_oslopolicy_validator_runs_on_guard(tmp_path):
    good = run(
        "oslopolicy-validator",
        "--namespace",
        "guard",
        "--config-file",
        str(config_file(tmp_path, SHIPPED)),
    )
    assert good.returncode == 0, good.stdout + good.stderr

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text('"guard:consumers:shwo": "@"\n')
    bad = run(
        "oslopolicy-validator",
        "--namespace",
        "guard",
        "--config-file",
        str(config_file(tmp_path, unknown)),
    )
    assert bad.returncode == 1
    assert "Unknown rule found in policy file: guard:consumers:shwo" in bad.stdout


def test_oslopolicy_checker_runs_on_guards_effective_policy(tmp_path):
    effective = tmp_path / "effective.yaml"
    generated = run(
        "oslopolicy-policy-generator",
        "--namespace",
        "guard",
        "--config-file",
        str(config_file(tmp_path, SHIPPED)),
        "--output-file",
        str(effective),
    )
    assert generated.returncode == 0, generated.stderr
    access = tmp_path / "access.json"
    access.write_text(
        json.dumps(
            {
                "token": {
                    "roles": [{"name": "reader"}],
                    "user": {"id": "u1"},
                    "project": {"id": "p1"},
                }
            }
        )
    )
    checked = run("oslopolicy-checker", "--policy", str(effective), "--access", str(access))
    assert checked.returncode == 0, checked.stderr
    results = set(checked.stdout.split("\n"))
    assert {"passed: guard:consumers:show", "passed: guard:consumers:list"} <= results
    assert {"failed: guard:consumers:create", "failed: guard:consumers:delete"} <= results


def test_the_update_rule_documents_what_a_change_of_owner_needs():
    """docs/api.md's PUT rules: update on the row as stored, create on the row as it will be."""
    (update,) = [rule for rule in list_rules() if rule.name == "guard:consumers:update"]
    words = " ".join(update.description.split())
    assert "checked on the consumer as stored" in words
    assert "also needs guard:consumers:create on the consumer as it will be" in words
    assert "both" not in words


def test_sample_to_a_path_it_cannot_write_is_a_clean_error(tmp_path, capsys):
    target = tmp_path / "no-such-dir" / "policy.yaml"
    assert main(["policy", "sample", "--output-file", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "Traceback" not in err
    assert not target.exists()


@pytest.mark.parametrize(
    "text",
    ['"guard:consumers:show": "role:admin"\n', "guard:consumers:show: role:admin\n", "a: [\n"],
)
def test_sample_never_overwrites_an_operator_s_rules(tmp_path, capsys, text):
    """It wrote the defaults (commented out) over the policy file in force: a live guard
    applied them within seconds."""
    target = tmp_path / "policy.yaml"
    target.write_text(text)
    assert main(["policy", "sample", "--output-file", str(target)]) == 1
    err = capsys.readouterr().err
    assert "holds rules of its own" in err and "Traceback" not in err
    assert target.read_text() == text


@pytest.mark.parametrize("text", ["", "{}\n", '# an old sample\n#"admin": "role:admin"\n'])
def test_sample_replaces_a_file_without_rules(tmp_path, text):
    target = tmp_path / "policy.yaml"
    target.write_text(text)
    assert main(["policy", "sample", "--output-file", str(target)]) == 0
    assert target.read_text() == sample_text()


def test_explain_of_a_rule_name_with_a_typo_says_so_and_fails(capsys):
    creds = json.dumps({"roles": ["reader"], "project_id": "p1"})
    assert main(["policy", "explain", "--rule", "guard:consumers:shwo", "--creds", creds]) == 1
    captured = capsys.readouterr()
    assert "no rule named 'guard:consumers:shwo'" in captured.err
    assert f"did you mean '{SHOW}'" in captured.err


@pytest.mark.parametrize(
    "creds",
    [
        {"roles": "reader"},
        {"roles": ["reader", 1]},
        {"service_roles": "service"},
        {"roles": None},  # a traceback (oslo iterates it: TypeError)
    ],
)
def test_explain_refuses_roles_that_are_not_a_list_of_names(capsys, creds):
    """oslo.policy would iterate "reader" as the roles r, e, a, d...: named, not explained."""
    with pytest.raises(SystemExit) as stopped:
        main(["policy", "explain", "--rule", SHOW, "--creds", json.dumps(creds)])
    assert stopped.value.code == 2
    assert "must be a JSON list of role names" in capsys.readouterr().err
