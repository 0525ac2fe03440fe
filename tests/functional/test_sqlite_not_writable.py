"""A SQLite database its service user cannot write: the start is refused, saying why.

SQLite opens a file it may not write read-only, without a word. ``guard
serve`` (and gunicorn on ``guard.wsgi``) as a user who could read but not
write the file started, said ``ok`` on its healthcheck and answered every
write 503; one whose user could not create the ``-wal``/``-shm`` files in the
directory refused with "database error (OperationalError)". Now both, and
``guard db upgrade``, refuse to start naming the file or directory and the
user.

The processes run as an unprivileged user (``nobody``) when the suite runs
as root, through ``setpriv``: their real and effective ids are that user's,
with one capability kept, CAP_DAC_READ_SEARCH, so that they can read and run
the interpreter under root's home directory (mode 700) where this machine's
Python lives. That capability grants reading and directory search only:
every write is checked against ``nobody``, as for any service user. Run as
another user, the tests use that user and the file modes alone.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.test_production import GUNICORN, free_port, migrate, stop

SERVICE_UID = 65534 if os.geteuid() == 0 else os.geteuid()
RUN_TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="running as root needs setpriv (util-linux) to run guard as another user",
)


def as_service_user(command: list[str]) -> list[str]:
    """``command`` run as the unprivileged service user (see the module doc)."""
    if os.geteuid() != 0:
        return command
    return [
        "setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *command,
    ]  # fmt: skip


def give(path: Path, mode: int) -> None:
    """``path`` owned by the service user, with ``mode``."""
    if os.geteuid() == 0:
        os.chown(path, SERVICE_UID, -1)
    path.chmod(mode)


def file_read_only(folder: Path) -> None:
    give(folder, 0o755)
    give(folder / "guard.sqlite", 0o444)


def folder_read_only(folder: Path) -> None:
    give(folder / "guard.sqlite", 0o644)
    give(folder, 0o555)


def side_files_of_another_user(folder: Path) -> None:
    """A root process killed with the database open left its -wal and -shm behind."""
    if os.geteuid() != 0:
        pytest.skip("needs a process of another user to leave the side files")
    connection = sqlite3.connect(folder / "guard.sqlite")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("SELECT count(*) FROM consumers").fetchall()
    side_files = [Path(f"{folder / 'guard.sqlite'}{s}") for s in ("-wal", "-shm")]
    for side in side_files:  # what a killed process leaves: copies, as it left them
        shutil.copy(side, f"{side}.left")
    connection.close()  # which removes them
    for side in side_files:
        os.replace(f"{side}.left", side)
        side.chmod(0o644)  # root's, as the killed process made them
    give(folder, 0o755)
    give(folder / "guard.sqlite", 0o644)


#: name -> (how the database is made unwritable, what the refusal says)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "file read-only": (file_read_only, "guard.sqlite is read-only for"),
    "directory read-only": (folder_read_only, "of the SQLite file is not writable by"),
    "side files of another user": (side_files_of_another_user, "guard.sqlite-wal (SQLite's wal"),
}


@pytest.fixture
def database(tmp_path: Path) -> tuple[Path, str]:
    """A migrated SQLite file in a folder of its own, and its URL."""
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'guard.sqlite'}"
    migrate(url)
    return folder, url


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None):
    """Run ``command`` as the service user to its end; a process still serving fails the test."""
    process = subprocess.Popen(
        as_service_user(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(process)  # type: ignore[arg-type]
        output, _ = process.communicate()
        pytest.fail(f"still running after {RUN_TIMEOUT} s (it started?):\n{output[-3000:]}")
    return process.returncode, output


def working_dir(tmp_path: Path) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    give(cwd, 0o755)
    return cwd


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_guard_serve_refuses_to_start(tmp_path: Path, database, case) -> None:
    folder, url = database
    make_unwritable, says = case
    make_unwritable(folder)
    before = (folder / "guard.sqlite").read_bytes()
    returncode, output = run(
        [sys.executable, "-m", "guard", "serve", "--database", url, "--port", str(free_port()),
         "--pipeline", "trusted"],
        working_dir(tmp_path),
    )  # fmt: skip
    assert returncode == 1, output
    assert "guard serve: cannot use the database: " in output
    assert says in output and "(uid " in output, output
    assert "Traceback" not in output
    assert (folder / "guard.sqlite").read_bytes() == before  # nothing changed


def test_guard_db_upgrade_says_why(tmp_path: Path, database) -> None:
    folder, url = database
    file_read_only(folder)
    returncode, output = run(
        [sys.executable, "-m", "guard", "db", "upgrade", "--database", url],
        working_dir(tmp_path),
    )
    assert returncode == 1, output
    assert "guard db upgrade: the SQLite file " in output
    assert "guard.sqlite is read-only for" in output, output


def test_a_gunicorn_worker_refuses_to_boot(tmp_path: Path, database) -> None:
    folder, url = database
    file_read_only(folder)
    config_file = tmp_path / "guard.conf"
    config_file.write_text(f"[database]\nconnection = {url}\n[guard]\nfingerprint_key = k\n")
    config_file.chmod(0o644)
    returncode, output = run(
        [str(GUNICORN), "-c", "python:guard.gunicorn_conf", "--workers", "1",
         "--bind", f"127.0.0.1:{free_port()}", "guard.wsgi:application"],
        working_dir(tmp_path),
        env={"GUARD_CONFIG_FILE": str(config_file), "GUARD_PIPELINE": "trusted"},
    )  # fmt: skip
    assert returncode == 3, output  # gunicorn's "Worker failed to boot"
    assert "guard.sqlite is read-only for" in output, output[-3000:]


def test_a_writable_database_still_serves(tmp_path: Path, database) -> None:
    """The check refuses only what cannot be written: the service user's own file starts."""
    folder, url = database
    give(folder, 0o755)
    give(folder / "guard.sqlite", 0o644)
    returncode, output = run(
        [sys.executable, "-m", "guard", "db", "upgrade", "--database", url],
        working_dir(tmp_path),
    )
    assert returncode == 0, output
    assert "database schema at revision" in output
