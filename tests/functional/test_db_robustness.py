"""The database layer under load and faults: pool bounds, concurrent upgrades, lost commits.

All on the real PostgreSQL cluster (and real SQLite files): connections are
counted by the server, upgrades are concurrent ``guard db upgrade``
processes, and dropped connections are cut by a real TCP proxy between
guard and the server.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine, make_url

from guard import conf as guard_conf
from guard import deploy, exception
from guard.db import api, migration
from tests.conftest import new_database

CONCURRENT_UPGRADES = 4


# -- 1. pool sizing ------------------------------------------------------------------


def _services(url: str, **database: object) -> deploy.Services:
    conf = guard_conf.load()
    conf.set_override("connection", url, group="database")
    for name, value in database.items():
        conf.set_override(name, value, group="database")
    return deploy.build_services(conf, migrate=True)


def _connections_to(admin: Engine, url: str) -> int:
    database = make_url(url).database
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = :database AND pid <> pg_backend_pid()"
        if admin.dialect.name == "postgresql"
        else "SELECT count(*) FROM information_schema.processlist "
        "WHERE db = :database AND id <> CONNECTION_ID()"
    )
    with admin.connect() as conn:
        return conn.execute(sqlalchemy.text(query), {"database": database}).scalar_one()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_the_pool_options_bound_a_workers_server_connections(database_url: str):
    services = _services(database_url, max_pool_size=2, max_overflow=0, pool_timeout=0.5)
    admin = sqlalchemy.create_engine(database_url)
    try:
        with services.engine.connect() as first, services.engine.connect() as second:
            first.exec_driver_sql("SELECT 1")
            second.exec_driver_sql("SELECT 1")
            # The pool is exhausted: the next request waits pool_timeout, then is a 503.
            with pytest.raises(exception.Unavailable):
                api.run_in_transaction(
                    services.engine, lambda conn: conn.exec_driver_sql("SELECT 1"), write=False
                )
            assert _connections_to(admin, database_url) == 2
        # Returned connections serve the next request.
        assert services.repository.ping() is None
    finally:
        services.close()
        admin.dispose()


def test_the_pool_defaults_and_sqlite_keeps_its_own_pool(postgresql_url: str, sqlite_url: str):
    services = _services(postgresql_url)
    try:
        assert services.engine.pool.size() == 5
        assert deploy.pool_options(services.conf, postgresql_url) == {
            "pool_size": 5,
            "max_overflow": 0,
            "pool_timeout": 30.0,
        }
    finally:
        services.close()
    assert deploy.pool_options(services.conf, sqlite_url) == {}
    embedded = _services(sqlite_url, max_pool_size=1)
    try:
        assert embedded.repository.ping() is None
    finally:
        embedded.decision_log.close()
        embedded.engine.dispose()


# -- 2. concurrent upgrades ----------------------------------------------------------


# Each process upgrades every database URL it reads, as soon as it reads it,
# and answers with one line: the processes race on each fresh database as the
# units of several hosts starting at once do (warm after the first round, so
# their upgrades start within a few milliseconds of each other).
UPGRADE_ON_CUE = """
import sys
from guard.db import migration
for line in sys.stdin:
    try:
        migration.upgrade(line.strip())
    except Exception as error:
        print("failed", type(error).__name__, getattr(error, "orig", ""), flush=True)
    else:
        print("ok", flush=True)
"""
UPGRADE_ROUNDS = 4


@pytest.fixture
def fresh_databases(request: pytest.FixtureRequest, backend: str) -> list[str]:
    """Empty databases, one per round of concurrent upgrades (on each backend)."""
    return [new_database(request, backend) for _ in range(UPGRADE_ROUNDS)]


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(fresh_databases: list[str]):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_ON_CUE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(CONCURRENT_UPGRADES)
    ]
    try:
        for url in fresh_databases:
            for process in processes:
                process.stdin.write(url + "\n")
                process.stdin.flush()
            answers = [process.stdout.readline().strip() for process in processes]
            assert answers == ["ok"] * CONCURRENT_UPGRADES
            assert migration.current(url) == migration.head()
            migration.upgrade(url)  # and still idempotent afterwards
            assert migration.current(url) == migration.head()
    finally:
        for process in processes:
            process.communicate(timeout=60)  # closes stdin: the process ends


# -- 3. dropped connections ----------------------------------------------------------


class CuttingProxy:
    """A TCP proxy to a database server that, on cue, drops one client connection.

    ``cut_at(marker, forward=True)`` relays the client's message holding
    ``marker``, waits for the server's answer and drops the connection
    without relaying it: the server did the work, the client never learns.
    With ``forward=False`` the message is dropped with the connection.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._forward = False
        self.cut = threading.Event()
        self.server_answered = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_at(self, marker: bytes, *, forward: bool) -> None:
        with self._lock:
            self._marker, self._forward = marker, forward

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            dropping = threading.Event()
            threading.Thread(
                target=self._client_to_server, args=(client, upstream, dropping), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(upstream, client, dropping), daemon=True
            ).start()

    def _client_to_server(
        self, client: socket.socket, upstream: socket.socket, dropping: threading.Event
    ) -> None:
        while data := _recv(client):
            with self._lock:
                hit = self._marker is not None and self._marker in data
                forward = self._forward
                if hit:
                    self._marker = None
            if hit and not forward:
                self.cut.set()  # before the drop, which the client may see at once
                _drop(client, upstream)
                return
            if hit:
                dropping.set()
            upstream.sendall(data)
        _drop(client, upstream)

    def _server_to_client(
        self, upstream: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        while data := _recv(upstream):
            if dropping.is_set():
                self.server_answered.set()
                self.cut.set()
                _drop(client, upstream)
                return
            client.sendall(data)
        _drop(client, upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _drop(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):  # already closed by the other side
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


#: The servers whose dropped connections are tested (SQLite has no connection to drop).
SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"])


@pytest.fixture
def proxy(database_url: str) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(make_url(database_url).port)
    yield cutting
    cutting.close()


@pytest.fixture
def counter(database_url: str) -> Iterator[Engine]:
    """A one-row table of a count, read and set around the proxy (an admin engine)."""
    admin = sqlalchemy.create_engine(database_url)
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (id integer PRIMARY KEY, n integer NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (1, 0)")
    yield admin
    admin.dispose()


def _proxied_engine(database_url: str, proxy: CuttingProxy) -> Engine:
    proxied = make_url(database_url).set(port=proxy.port)
    engine = api.create_engine(proxied.render_as_string(hide_password=False))
    # Connect (and let the dialect run its first-connect queries) before any cut.
    api.run_in_transaction(engine, lambda conn: conn.exec_driver_sql("SELECT 1"), write=False)
    return engine


def _bump(conn: sqlalchemy.Connection) -> None:
    conn.exec_driver_sql("UPDATE counter SET n = n + 1 /* guard_bump */ WHERE id = 1")


def _count(admin: Engine) -> int:
    with admin.connect() as conn:
        return conn.exec_driver_sql("SELECT n FROM counter WHERE id = 1").scalar_one()


@SERVERS
@pytest.mark.parametrize(
    ("marker", "forward", "committed"),
    [
        # The server commits; the acknowledgement is lost with the connection.
        (b"COMMIT", True, 1),
        # The connection drops mid-transaction; the server rolls it back.
        (b"guard_bump", False, 0),
    ],
    ids=["during-commit", "before-commit"],
)
def test_a_write_whose_connection_drops_is_unavailable_not_retried(
    database_url: str,
    proxy: CuttingProxy,
    counter: Engine,
    marker: bytes,
    forward: bool,
    committed: int,
):
    engine = _proxied_engine(database_url, proxy)
    try:
        proxy.cut_at(marker, forward=forward)
        # Its outcome is unknown to guard: a retry would apply it twice, or answer
        # 404/409 for what succeeded. 503 is the truthful answer.
        with pytest.raises(exception.Unavailable):
            api.run_in_transaction(engine, _bump, write=True)
        assert proxy.cut.is_set()
        if forward:
            assert proxy.server_answered.wait(10)
        assert _count(counter) == committed
        # The pool recovers: the next write succeeds, once.
        api.run_in_transaction(engine, _bump, write=True)
        assert _count(counter) == committed + 1
    finally:
        engine.dispose()


@SERVERS
def test_a_read_whose_connection_drops_is_retried(database_url: str, proxy: CuttingProxy):
    engine = _proxied_engine(database_url, proxy)
    try:
        proxy.cut_at(b"guard_probe", forward=False)
        answer = api.run_in_transaction(
            engine,
            lambda conn: conn.exec_driver_sql("SELECT 42 AS guard_probe").scalar(),
            write=False,
        )
        assert proxy.cut.is_set()
        assert answer == 42
    finally:
        engine.dispose()
