"""The stock oslopolicy tools on ``--namespace guard``, as on any service.

Each tool runs as a real process twice on the same files: on
``--namespace guard`` (guard's entry points, guard's Enforcer) and on
``--namespace refsvc``, a reference service made here in a temporary
directory that registers guard's very defaults on a stock
``oslo_policy.policy.Enforcer``. Exit codes, stdout and stderr must be equal,
bad files included, and no exception ever escapes (the only tracebacks are
the ones oslo.policy's parser logs about a check string, on any service).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional.test_policy_reload import BAD_FILES, SHOW

BIN = Path(sys.executable).parent
REFERENCE = """
from oslo_config import cfg
from oslo_policy import policy

from guard.policies import list_rules
from guard.policy import _set_guard_defaults


def get_enforcer():
    enforcer = policy.Enforcer(cfg.CONF)
    _set_guard_defaults(cfg.CONF)
    enforcer.register_defaults(list_rules())
    return enforcer
"""
ENTRY_POINTS = """
[oslo.policy.policies]
refsvc = guard.policies:list_rules

[oslo.policy.enforcer]
refsvc = refsvc:get_enforcer
"""

FILES = {
    "good": f'"{SHOW}": "rule:admin"\n',
    "redundant": f'"{SHOW}": "rule:admin or rule:service or rule:project_reader"\n',
    "unknown rule name": '"guard:consumers:shwo": "@"\n',
    "false value": f'"{SHOW}": false\n',
    "empty": "",
    "empty mapping": "{}\n",
    **BAD_FILES,
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which the reference service's entry points exist."""
    site = tmp_path_factory.mktemp("refsvc")
    (site / "refsvc.py").write_text(REFERENCE)
    dist = site / "refsvc-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: refsvc\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    root = Path(__file__).resolve().parents[2]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root)])}


def escaped(output: str) -> bool:
    """Whether an exception escaped (a traceback oslo.policy's parser did not log)."""
    logged = output.count("ERROR:oslo_policy._parser:Failed to understand rule")
    return output.count("Traceback (most recent call last)") > logged


def tool(
    env: dict[str, str], cwd: Path, *args: str, crash_ok: bool = False
) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )
    # The only tracebacks guard's tools print are those oslo.policy's parser logs
    # for a check string it cannot parse (on any service alike).
    assert crash_ok or not escaped(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def both(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run on guard and on the reference; assert equal results; return guard's.

    Where stock oslo.policy dies with a traceback (a file it cannot load at
    all), guard's tool exits 1 too, with ``error:`` lines naming line and rule.
    """
    results = []
    for namespace in ("guard", "refsvc"):
        cwd = tmp_path / namespace
        cwd.mkdir(exist_ok=True)
        argv = [a.replace("{ns}", namespace) for a in args]
        code, out, err = tool(env, cwd, *argv, crash_ok=namespace == "refsvc")
        results.append((code, out.replace(str(cwd), "<cwd>"), err.replace(str(cwd), "<cwd>")))
    guard, reference = results
    if escaped(reference[1] + reference[2]):
        assert guard[0] == reference[0] == 1
        assert guard[2].startswith("error: policy.yaml:"), guard
    else:
        assert guard == reference
    return guard


def config(tmp_path: Path, text: str) -> Path:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(text)
    conf = tmp_path / "guard.conf"
    conf.write_text(f"[oslo_policy]\npolicy_file = {policy_file}\n")
    return conf


@pytest.mark.parametrize("case", sorted(FILES))
def test_validator_and_list_redundant_as_on_any_service(env, tmp_path, case):
    conf = str(config(tmp_path, FILES[case]))
    code, out, _ = both(
        env, tmp_path, "oslopolicy-validator", "--namespace", "{ns}", "--config-file", conf
    )
    valid = ("good", "redundant", "empty", "empty mapping", "false value")
    assert code == (0 if case in valid else 1), out
    if case in ("good", "empty", "yaml error", "undefined rule"):
        both(
            env,
            tmp_path,
            "oslopolicy-list-redundant",
            "--namespace",
            "{ns}",
            "--config-file",
            conf,
        )


def test_validator_reports_a_missing_file_as_on_any_service(env, tmp_path):
    conf = tmp_path / "guard.conf"
    conf.write_text(f"[oslo_policy]\npolicy_file = {tmp_path / 'nowhere.yaml'}\n")
    both(env, tmp_path, "oslopolicy-validator", "--namespace", "{ns}", "--config-file", str(conf))


def test_list_redundant_names_the_redundant_rule(env, tmp_path):
    conf = str(config(tmp_path, FILES["redundant"]))
    code, out, err = both(
        env, tmp_path, "oslopolicy-list-redundant", "--namespace", "{ns}", "--config-file", conf
    )
    assert code == 0 and SHOW in out + err


@pytest.mark.parametrize("case", ["good", "redundant", "cycle", "undefined rule"])
def test_policy_generator_and_checker_as_on_any_service(env, tmp_path, case):
    conf = str(config(tmp_path, FILES[case]))
    effective = "effective-{ns}.yaml"
    code, _, _ = both(
        env,
        tmp_path,
        "oslopolicy-policy-generator",
        "--namespace",
        "{ns}",
        "--config-file",
        conf,
        "--output-file",
        effective,
    )
    assert code == 0
    access = tmp_path / "access.json"
    token = {"roles": [{"name": "reader"}], "user": {"id": "u1"}, "project": {"id": "p1"}}
    access.write_text(json.dumps({"token": token}))
    code, out, _ = both(
        env, tmp_path, "oslopolicy-checker", "--policy", effective, "--access", str(access)
    )
    assert code == 0 and f"{SHOW}" in out


def test_sample_generator_as_on_any_service(env, tmp_path):
    code, out, _ = both(env, tmp_path, "oslopolicy-sample-generator", "--namespace", "{ns}")
    assert code == 0 and SHOW in out


@pytest.mark.parametrize("case", ["good", "undefined rule"])
def test_convert_json_to_yaml_as_on_any_service(env, tmp_path, case):
    import yaml

    rules = yaml.safe_load(FILES[case])
    json_file = tmp_path / "policy.json"
    json_file.write_text(json.dumps(rules))
    conf = str(config(tmp_path, FILES["good"]))
    code, _, _ = both(
        env,
        tmp_path,
        "oslopolicy-convert-json-to-yaml",
        "--namespace",
        "{ns}",
        "--config-file",
        conf,
        "--policy-file",
        str(json_file),
        "--output-file",
        "converted.yaml",
    )
    assert code == 0
    converted = tmp_path / "guard" / "converted.yaml"
    assert converted.read_text() == (tmp_path / "refsvc" / "converted.yaml").read_text()
    # The converted file loads as the policy file of a validator run, as oslo's own test does.
    code, out, _ = both(
        env,
        tmp_path,
        "oslopolicy-validator",
        "--namespace",
        "{ns}",
        "--config-file",
        str(config(tmp_path / "guard", converted.read_text())),
    )
    assert code == (0 if case == "good" else 1), out
