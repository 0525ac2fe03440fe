"""Fixtures shared by the whole suite.

``postgresql_cluster`` starts one throwaway PostgreSQL server per test
process (per xdist worker); ``postgresql_url`` gives each test a fresh empty
database on it. In CI (``CI=true``) a missing PostgreSQL fails the test
instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pgcluster import PostgresCluster, PostgresUnavailable

# Every test runs under the log leak detector (autouse fixture `log_leaks`).
pytest_plugins = ["tests.fixtures.logleak"]


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def postgresql_url(postgresql_cluster: PostgresCluster) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgresql_cluster.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'guard.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgresql_url")
