"""Fixtures shared by the whole suite.

One throwaway server of each kind per test process (per xdist worker):
``postgresql_cluster`` and ``mariadb_server``, each started on first use and
stopped at the end. ``postgresql_url``, ``mariadb_url`` and ``sqlite_url``
give a test a fresh, empty database of that kind.

The suites that must hold on every database take ``database_url`` (one
fresh database per test) or ``module_database_url`` (one per module and
backend); both run once per entry of :data:`BACKENDS`. A test that needs
several databases of one kind takes ``backend`` and calls
:func:`new_database`. In CI (``CI=true``) a missing server fails the test;
elsewhere it skips it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from keystonemiddleware import fixture as ksm_fixture

from tests.fixtures.mariadb import MariaDBServer, MariaDBUnavailable
from tests.fixtures.pgcluster import PostgresCluster, PostgresUnavailable

# Every test runs under the log leak detector (autouse fixture `log_leaks`).
pytest_plugins = ["tests.fixtures.logleak"]

# A suite started in the background by a script (``make test &``, a CI runner's
# shell) has SIGINT ignored, and an ignored signal stays ignored across exec:
# every ``guard serve`` the tests stop with SIGINT, as an operator's Ctrl-C
# would, then ran on until its test's timeout killed it. A handled signal is
# reset to the default at exec, so the servers the tests start get Python's
# own KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The databases guard supports, each tested against a real server.
BACKENDS = ("sqlite", "postgresql", "mariadb")


@pytest.fixture(autouse=True)
def _no_lasting_log_install(isolated_install: None) -> None:
    """Undo, after every test, whatever guard.log.install() did during it.

    Building a pipeline in process (paste, the WSGI entry point, the filter)
    installs guard's filter process-wide, as a server must; left in place it
    would redact what later tests on the same worker inspect.
    """


def _missing(what: str, error: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI: {error}")
    pytest.skip(str(error))


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except PostgresUnavailable as exc:
        _missing("PostgreSQL", exc)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    try:
        server = MariaDBServer()
    except MariaDBUnavailable as exc:
        _missing("MariaDB", exc)
    try:
        yield server
    finally:
        server.close()


def new_database(request: pytest.FixtureRequest, backend: str) -> str:
    """The URL of a new, empty database of ``backend`` (a name of :data:`BACKENDS`)."""
    if backend == "sqlite":
        directory = request.getfixturevalue("tmp_path_factory").mktemp("sqlite")
        return f"sqlite:///{directory / 'guard.sqlite'}"
    if backend == "postgresql":
        return request.getfixturevalue("postgresql_cluster").create_database()
    if backend == "mariadb":
        return request.getfixturevalue("mariadb_server").create_database()
    raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture
def postgresql_url(postgresql_cluster: PostgresCluster) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgresql_cluster.create_database()


@pytest.fixture
def mariadb_url(mariadb_server: MariaDBServer) -> str:
    """A fresh, empty MariaDB database for one test."""
    return mariadb_server.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'guard.sqlite'}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once per backend."""
    return request.param


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A fresh, empty database; each test that takes this runs once per backend."""
    return new_database(request, backend)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest) -> str:
    """Once per backend, for a module's shared database."""
    return request.param


@pytest.fixture(scope="module")
def module_database_url(request: pytest.FixtureRequest, module_backend: str) -> str:
    """A fresh, empty database shared by one module's tests, once per backend."""
    return new_database(request, module_backend)


@pytest.fixture
def tokens() -> Iterator[ksm_fixture.AuthTokenFixture]:
    """keystonemiddleware's stand-in for keystone: the tokens ``add_token_data`` makes valid.

    The real ``auth_token`` validates tokens against it in process.
    """
    fixture = ksm_fixture.AuthTokenFixture()
    fixture.setUp()
    try:
        yield fixture
    finally:
        fixture.cleanUp()
