"""oslo.policy's packaged test suite passes with guard's Enforcer swapped in.

``oslo_policy.tests`` (installed with oslo.policy) runs twice in subprocesses
with the installed oslo.policy (the newest; tests/unit/test_oslo_floor.py runs
this test again on the oldest allowed): once stock, once with tests/oslo_swap.py
replacing ``oslo_policy.policy.Enforcer`` by ``guard.policy.Enforcer``. A
test may fail with the swap only when it fails stock too (the environment:
e.g. a permission test run as root) or when docs/oslo-compat.md lists it as a
deliberate difference; and every listed difference must really fail, so the
document cannot go stale.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "docs" / "oslo-compat.md"
# A row of the differences table: | `oslo_policy.tests.test_x.Class.test_y` | ...
DOCUMENTED_ROW = re.compile(r"^\|\s*`(oslo_policy\.tests\.[\w.]+)`\s*\|")


def run_suite(tmp_path: Path, name: str, *plugin: str) -> tuple[set[str], set[str], str]:
    """Run oslo.policy's tests; returns (passed, failed) test ids and the output."""
    report = tmp_path / f"{name}.xml"
    # Keep what is on PYTHONPATH already (tests/unit/test_oslo_floor.py puts an
    # older oslo.policy there).
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(ROOT)])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            *plugin,
            f"--rootdir={tmp_path}",
            f"--junitxml={report}",
            "--pyargs",
            "oslo_policy.tests",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    passed, failed = set(), set()
    for case in ET.parse(report).iter("testcase"):
        test_id = canonical_id(f"{case.get('classname')}.{case.get('name')}")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(test_id)
        elif case.find("skipped") is None:
            passed.add(test_id)
    return passed, failed, proc.stdout


def canonical_id(test_id: str) -> str:
    """``oslo_policy.tests.<module>.<Class>.<test>``, wherever oslo.policy is installed.

    pytest names a test from the path it was collected at (``test_policy.EnforcerTest``
    from site-packages, a longer dotted path from elsewhere).
    """
    return "oslo_policy.tests." + test_id.rsplit("oslo_policy.tests.", 1)[-1]


def documented_differences() -> set[str]:
    return {
        match.group(1)
        for line in COMPAT.read_text().splitlines()
        if (match := DOCUMENTED_ROW.match(line))
    }


def test_oslo_policy_suite_passes_with_guards_enforcer(tmp_path):
    stock_passed, stock_failed, _ = run_suite(tmp_path, "stock")
    passed, failed, output = run_suite(tmp_path, "guard", "-p", "tests.oslo_swap")
    built = re.search(r"guard enforcers built: (\d+)", output)
    assert built and int(built.group(1)) > 100, "the swap did not happen\n" + output[-2000:]
    assert len(passed | failed) == len(stock_passed | stock_failed) >= 300
    documented = documented_differences()
    unexpected = failed - stock_failed - documented
    assert not unexpected, f"failures with guard's Enforcer not in {COMPAT.name}: {unexpected}"
    stale = documented - failed
    assert not stale, f"{COMPAT.name} lists differences that no longer fail: {stale}"
    assert len(documented) <= 6
    print(
        f"oslo.policy suite with guard's Enforcer: {len(passed)} passed, {len(failed)} failed "
        f"({len(stock_failed)} fail stock too, {len(documented)} documented)"
    )
