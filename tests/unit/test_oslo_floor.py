"""The oldest oslo.policy pyproject allows: the differential test and oslo's suite pass on it.

The newest (the one ``make install`` picks) is what the rest of the suite
runs on. Here the floor release named in pyproject (``oslo.policy>=X``) is
installed alone (``pip install --no-deps --target`` into the virtualenv, done by
``make install``; made here only where that step was skipped)
and put first on ``PYTHONPATH`` for a subprocess that runs
tests/unit/test_policy_equivalence.py (10,000 cases and more) and
tests/unit/test_oslo_suite.py (oslo.policy's own tests of that release, with
guard's Enforcer swapped in).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FLOOR = re.search(r'"oslo\.policy>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())


def floor_overlay(version: str) -> Path:
    """A directory holding only oslo.policy ``version`` (made once, then reused)."""
    overlay = Path(sys.prefix) / "oslo-policy-floor" / version
    if not (overlay / "oslo_policy").is_dir():
        partial = overlay.with_name(f"{version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(partial),
                f"oslo.policy=={version}",
            ],
            check=True,
            timeout=300,
        )
        partial.rename(overlay)
    return overlay


def test_the_floor_release_decides_as_guard_does():
    assert FLOOR, "pyproject.toml names no oslo.policy floor"
    version = FLOOR.group(1)
    overlay = floor_overlay(version)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(overlay), str(ROOT)])}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('oslo.policy'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert Version(probe.stdout.strip()) == Version(version)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "tests/unit/test_policy_equivalence.py",
            "tests/unit/test_oslo_suite.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
