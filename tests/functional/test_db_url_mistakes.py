"""Database URLs an operator mistypes: refused by name, never served on.

``sqlite://`` (or ``sqlite:///:memory:``, a URI's ``mode=memory``) names no
file: ``guard db upgrade`` migrated an in-memory database, printed
"database schema at revision None" and exited 0, and ``guard serve`` said
"guard serving" and then answered every request 503 (each pooled connection
opened a new, empty database). ``sqlite://var/guard.sqlite`` (a slash short)
was shown as ``sqlite:///guard.sqlite``. ``guard serve`` on a backend guard
does not support said only "ValueError". Real processes, real files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard

MEMORY_URLS = ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///f?mode=memory&uri=true"]
# SQLite's URI filenames (uri=true): file::memory: is in memory, an empty file: a
# temporary database deleted on close; both migrated and reported "revision None".
MEMORY_URLS += [
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file::memory:?cache=shared&uri=true",
    "sqlite:///file:?uri=1",
    "sqlite:///file://localhost?uri=true",
    "sqlite:///file:/memdb1?vfs=memdb&uri=true",  # SQLite's in-memory VFS
]


@pytest.mark.parametrize("url", MEMORY_URLS)
def test_db_upgrade_refuses_an_in_memory_database(tmp_path: Path, url: str) -> None:
    process = guard(tmp_path, "db", "upgrade", "--database", url)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stdout + stderr
    assert "in-memory SQLite database" in stderr and "sqlite:///" in stderr
    assert "revision" not in stdout


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("sqlite://", "an in-memory SQLite database"),
        ("sqlite://var/guard.sqlite", "a SQLite URL has no host part"),
        (
            "postgres://guard:s3cret-pw@127.0.0.1:1/guard",
            "unsupported database backend 'postgres'",
        ),
    ],
)
def test_serve_refuses_the_url_saying_what_is_wrong(tmp_path: Path, url: str, said: str) -> None:
    process = guard(tmp_path, "serve", "--pipeline", "trusted", "--port", "0", "--database", url)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stdout + stderr
    assert "guard serving" not in stdout
    assert f"guard serve: cannot use the database: {said}" in stderr
    assert "s3cret-pw" not in stdout + stderr


def test_a_sqlite_url_with_a_host_is_named_as_written(tmp_path: Path) -> None:
    process = guard(tmp_path, "db", "upgrade", "--database", "sqlite://var/guard.sqlite")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "guard db upgrade: sqlite://var/guard.sqlite\n" in stdout
    assert "has no host part" in stderr
    assert not list(tmp_path.rglob("*.sqlite"))
