"""The wheel ships every package of guard/ and the top-level default rules."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _declared_packages() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return set(tomllib.load(fh)["tool"]["setuptools"]["packages"])


def test_every_package_of_guard_is_declared() -> None:
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "guard").rglob("__init__.py")
    }
    assert found - _declared_packages() == set()
    assert "guard.policies.defaults" in _declared_packages()


def test_there_is_one_copy_of_the_default_rules() -> None:
    assert sorted(p.name for p in (ROOT / "policies").glob("*.yaml")) == [
        "base.yaml",
        "consumers.yaml",
    ]
    assert not list((ROOT / "guard").rglob("*.yaml"))


@pytest.mark.slow
def test_a_built_wheel_loads_the_defaults(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("guard-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {
        "guard/py.typed",
        "guard/policies/defaults/base.yaml",
        "guard/policies/defaults/consumers.yaml",
    } <= names
    # The unpacked wheel comes first on the path, ahead of the editable install.
    site = str(tmp_path / "site")
    probe = (
        "import guard.policies as p; "
        f"assert p.__file__.startswith({site!r}), p.__file__; "
        "print(len(p.list_rules()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PYTHONPATH": site, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert int(out.stdout) == 9
