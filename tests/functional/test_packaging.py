"""What a newcomer gets: the README's library example runs as written; the wheel ships etc/guard/.

Both run as a user would: the example in a fresh process and a fresh
directory; the wheel built by pip from a copy of the source tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_the_wheel_ships_etc_guard(tmp_path: Path) -> None:
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns(".venv", ".git", "tests", "*.egg-info", "build", "var",
                                    "__pycache__", "*.sqlite")  # fmt: skip
    shutil.copytree(ROOT, source, ignore=ignore)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels),
         str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = wheels.glob("guard-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = {
            name.rsplit("/", 1)[1] for name in names if re.search(r"\.data/data/etc/guard/", name)
        }
        assert shipped == ETC_FILES
        paste = next(name for name in names if name.endswith("etc/guard/api-paste.ini"))
        assert archive.read(paste) == (ROOT / "etc" / "guard" / "api-paste.ini").read_bytes()
    assert {path.name for path in (ROOT / "etc" / "guard").iterdir()} >= ETC_FILES
