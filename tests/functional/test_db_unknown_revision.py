"""A database at a schema revision guard does not know: a clear refusal, nothing changed.

An operator rolls a host back to an older guard after a newer one migrated
the shared database (or points guard at another application's alembic
database). ``guard db upgrade`` answered "CommandError" and ``guard serve``
died with alembic's traceback; ``guard db version`` advised ``guard db
upgrade``, which cannot help. Real processes on a real SQLite file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.functional.processes import guard

UNKNOWN = "9f1b2c3d4e5f"
TIMEOUT = 120


def _run(home: Path, *args: str) -> tuple[int, str, str]:
    process = guard(home, *args)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout, stderr


def _revision(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def test_every_command_names_the_unknown_revision_and_changes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "guard.sqlite"
    url = f"sqlite:///{database}"
    assert _run(tmp_path, "db", "upgrade", "--database", url)[0] == 0
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (UNKNOWN,))
    expected = f"revision '{UNKNOWN}', which this guard does not know"

    status, _, stderr = _run(tmp_path, "db", "upgrade", "--database", url)
    assert status == 1
    assert expected in stderr and "Traceback" not in stderr, stderr
    assert _revision(database) == [UNKNOWN]

    status, _, stderr = _run(tmp_path, "db", "version", "--database", url)
    assert status == 1
    assert expected in stderr and "run guard db upgrade" not in stderr, stderr

    status, _, stderr = _run(
        tmp_path, "serve", "--database", url, "--pipeline", "trusted", "--port", "0"
    )
    assert status == 1
    assert f"guard serve: cannot use the database: the database holds alembic {expected}" in (
        stderr
    )
    assert "Traceback" not in stderr, stderr
    assert _revision(database) == [UNKNOWN]


def test_an_unknown_target_revision_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    status, _, stderr = _run(tmp_path, "db", "upgrade", "--database", url, "--revision", "bogus")
    assert status == 1
    assert "cannot migrate to 'bogus'" in stderr, stderr
