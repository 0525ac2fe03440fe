"""What a newcomer gets: the README's library example runs as written; the wheel ships
etc/guard/, every package of guard/ and the default rules of the top-level policies/.

Both run as a user would: the example in a fresh process and a fresh
directory; the wheel built by pip from a copy of the source tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ETC_FILES = {"api-paste.ini", "guard.conf.sample", "logging.conf", "policy.yaml"}


def library_example() -> str:
    text = README.read_text()
    match = re.search(r"As a library:\n\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its library example"
    return match.group(1)


def test_the_readme_library_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(library_example())
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "p2 cannot see p1's consumer" in result.stdout
    assert (tmp_path / "guard-example.sqlite").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """guard's wheel, built by pip from a copy of the source tree (the checkout stays clean)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns(".venv", ".venv-*", ".git", "tests", "*.egg-info", "build",
                                    "var", "__pycache__", "*.sqlite")  # fmt: skip
    shutil.copytree(ROOT, source, ignore=ignore)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels),
         str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = wheels.glob("guard-*.whl")
    return built


def test_the_wheel_ships_etc_guard(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = {
            name.rsplit("/", 1)[1] for name in names if re.search(r"\.data/data/etc/guard/", name)
        }
        assert shipped == ETC_FILES
        paste = next(name for name in names if name.endswith("etc/guard/api-paste.ini"))
        assert archive.read(paste) == (ROOT / "etc" / "guard" / "api-paste.ini").read_bytes()
    assert {path.name for path in (ROOT / "etc" / "guard").iterdir()} >= ETC_FILES


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


def test_the_wheel_loads_the_default_rules_from_policies(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    assert {
        "guard/py.typed",
        "guard/policies/defaults/base.yaml",
        "guard/policies/defaults/consumers.yaml",
    } <= names
    # The unpacked wheel comes first on the path, ahead of the editable install.
    probe = (
        "import guard.policies as p; "
        f"assert p.__file__.startswith({str(site)!r}), p.__file__; "
        "print(len(p.list_rules()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert int(out.stdout) == 9
