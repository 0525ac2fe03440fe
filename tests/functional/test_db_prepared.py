"""The guarded get's read on the pooled DBAPI connection (guard.db.prepared), on every database.

It must answer exactly what the ``Connection`` path answers (generated rows,
hypothesis), run as a single read runs (no BEGIN on SQLite, AUTOCOMMIT on
PostgreSQL, READ COMMITTED and nothing left open on MariaDB), retry after a
dropped connection or a lock without reusing the dead connection, and map
every other fault to ``Unavailable`` naming nothing, leaving the pooled
connection fit for the next caller's writes. Real servers, real faults.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import tempfile
import uuid as uuidlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine, make_url

from guard import exception
from guard.db import api, migration, prepared
from guard.db import consumers as db
from tests.functional.test_db_robustness import CuttingProxy

SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"])


@pytest.fixture(scope="module")
def engine(module_database_url: str) -> Iterator[Engine]:
    migration.upgrade(module_database_url)
    eng = api.create_engine(module_database_url)
    yield eng
    eng.dispose()


def by_connection(engine: Engine, uuid: str) -> db.Consumer | None:
    """The same read through a ``Connection`` (the path every other read takes)."""
    return db.transact(
        engine, lambda conn: db.find(conn, uuid), write=False, single_statement=True
    )


def store(engine: Engine, consumer: db.Consumer) -> None:
    assert db.transact(engine, lambda conn: db.insert(conn, consumer), write=True)


# Any text a backend stores in its id columns (PostgreSQL refuses NUL); at most
# 60 characters, so 4-byte characters stay within MariaDB's VARBINARY(255).
TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=60,
)
MOMENT = st.datetimes(
    min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31)
).map(lambda moment: moment.replace(microsecond=0))
CONSUMERS = st.builds(
    db.Consumer,
    uuid=st.just(""),  # a fresh uuid4 per example: rows stay in the module's database
    project_id=TEXT,
    user_id=TEXT,
    consumer_type=st.none() | TEXT,
    generation=st.integers(min_value=0, max_value=2**63 - 1),
    created_at=MOMENT,
    updated_at=MOMENT,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(consumer=CONSUMERS, missing=st.uuids().map(str))
def test_the_prepared_read_answers_what_a_connection_answers(
    engine: Engine, consumer: db.Consumer, missing: str
):
    assert not prepared.needs_connection(engine)  # the prepared path is the one tested
    consumer = dataclasses.replace(consumer, uuid=str(uuidlib.uuid4()))
    store(engine, consumer)
    found = db.find_one(engine, consumer.uuid)
    assert found == by_connection(engine, consumer.uuid) == consumer
    assert found is not None
    assert [type(value) for value in vars(found).values()] == [
        type(value) for value in vars(consumer).values()
    ]
    assert db.find_one(engine, missing) is None
    assert by_connection(engine, missing) is None


def test_listeners_see_the_read_through_a_connection(engine: Engine):
    """An engine with connection event listeners (tracing) takes the Connection path."""
    consumer = next_consumer()
    store(engine, consumer)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        assert prepared.needs_connection(engine)
        assert db.find_one(engine, consumer.uuid) == consumer
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)
    assert [s for s in statements if "FROM consumers" in s] == [
        db._PREPARED_BY_UUID.statement.compile(dialect=engine.dialect).string
    ]
    assert not prepared.needs_connection(engine)  # removed: the prepared path again

    def on_error(context: Any) -> None:
        """A dialect-level listener: it too must see a failing read."""

    sqlalchemy.event.listen(engine, "handle_error", on_error)
    try:
        assert prepared.needs_connection(engine)
    finally:
        sqlalchemy.event.remove(engine, "handle_error", on_error)
    assert not prepared.needs_connection(engine)


def test_the_statement_log_sees_the_read_through_a_connection(
    engine: Engine, caplog: pytest.LogCaptureFixture
):
    """SQLAlchemy's statement log (echo, or its logger at INFO) is written by a Connection."""
    consumer = next_consumer()
    store(engine, consumer)
    assert not prepared.needs_connection(engine)
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        assert prepared.needs_connection(engine)
        assert db.find_one(engine, consumer.uuid) == consumer
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any("LEFT OUTER JOIN consumer_types" in message for message in logged)
    assert not prepared.needs_connection(engine)


def test_a_read_of_a_statement_with_a_fixed_value_is_refused(engine: Engine):
    fixed = prepared.PreparedRead(
        sqlalchemy.select(db.CONSUMERS.c.id).where(db.CONSUMERS.c.id == 1)
    )
    with pytest.raises(ValueError, match="a prepared read takes every value"):
        fixed.first(engine, {})
    assert pooled_connection_works(engine)


def next_consumer(project: str = "p1") -> db.Consumer:
    moment = db.now()
    return db.Consumer(str(uuidlib.uuid4()), project, "u1", None, 0, moment, moment)


def pooled_connection_works(engine: Engine) -> bool:
    return (
        api.run_in_transaction(
            engine, lambda c: c.exec_driver_sql("SELECT 1").scalar(), write=False
        )
        == 1
    )


# -- how a single read runs on each database ------------------------------------------


def test_sqlite_reads_without_begin(sqlite_url: str):
    migration.upgrade(sqlite_url)
    engine = api.create_engine(sqlite_url)
    sent: list[str] = []
    sqlalchemy.event.listen(
        engine,
        "connect",
        lambda dbapi_connection, _record: dbapi_connection.set_trace_callback(sent.append),
    )
    try:
        consumer = next_consumer()
        store(engine, consumer)
        sent.clear()
        assert db.find_one(engine, consumer.uuid) == consumer
        assert [s.split()[0] for s in sent] == ["SELECT"]  # no BEGIN, no ROLLBACK
        with engine.connect() as conn:
            assert not conn.connection.dbapi_connection.in_transaction
    finally:
        engine.dispose()


def test_postgresql_reads_in_autocommit_and_leaves_the_connection_transactional(
    postgresql_url: str,
):
    migration.upgrade(postgresql_url)
    engine = api.create_engine(postgresql_url, pool_size=1, max_overflow=0)
    trace_fd, trace_path = tempfile.mkstemp(prefix="guard-libpq-trace-")
    try:
        consumer = next_consumer()
        store(engine, consumer)
        # libpq's own trace of what goes over the pool's one connection: a
        # BEGIN would be in it. (Untracing flushes it.)
        with engine.connect() as conn:
            conn.connection.dbapi_connection.pgconn.trace(trace_fd)
        assert db.find_one(engine, consumer.uuid) == consumer
        with engine.connect() as conn:
            dbapi_connection = conn.connection.dbapi_connection
            dbapi_connection.pgconn.untrace()
            assert dbapi_connection.autocommit is False  # the pool's setting again
        wire = Path(trace_path).read_text()
        assert "FROM consumers JOIN projects" in wire
        assert "BEGIN" not in wire
        assert_writes_still_roll_back(engine)
    finally:
        engine.dispose()
        os.close(trace_fd)
        os.unlink(trace_path)


def test_mariadb_reads_read_committed_and_leaves_nothing_open(mariadb_url: str):
    migration.upgrade(mariadb_url)
    engine = api.create_engine(mariadb_url, pool_size=1, max_overflow=0)
    try:
        consumer = next_consumer()
        store(engine, consumer)
        assert db.find_one(engine, consumer.uuid) == consumer
        raw = engine.raw_connection()  # the one pooled connection the read used
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT @@in_transaction, @@tx_isolation, @@autocommit")
            assert cursor.fetchone() == (0, "READ-COMMITTED", 0)
            cursor.close()
        finally:
            raw.close()
        assert_writes_still_roll_back(engine)
    finally:
        engine.dispose()


def assert_writes_still_roll_back(engine: Engine) -> None:
    """The pooled connection is transactional again: a failed write leaves nothing."""
    consumer = next_consumer(project=f"rolled-back-{uuidlib.uuid4().hex}")

    def insert_then_fail(conn: sqlalchemy.Connection) -> None:
        db.insert(conn, consumer)
        raise exception.Conflict()

    with pytest.raises(exception.Conflict):
        db.transact(engine, insert_then_fail, write=True)
    assert db.find_one(engine, consumer.uuid) is None
    with engine.connect() as conn:
        owners = conn.execute(
            sqlalchemy.select(db.PROJECTS.c.id).where(
                db.PROJECTS.c.external_id == consumer.project_id
            )
        ).all()
    assert owners == []


# -- faults ---------------------------------------------------------------------------


class PoolWatch:
    """The DBAPI connections the pool hands out and the ones it invalidates, in order."""

    def __init__(self, engine: Engine) -> None:
        self.checkouts: list[Any] = []
        self.invalidated: list[Any] = []
        self.on_checkout: Any = None
        sqlalchemy.event.listen(engine, "checkout", self._checkout)
        sqlalchemy.event.listen(engine, "invalidate", self._invalidate)

    def _checkout(self, dbapi_connection: Any, *_args: Any) -> None:
        self.checkouts.append(dbapi_connection)
        if self.on_checkout is not None:
            self.on_checkout(len(self.checkouts))

    def _invalidate(self, dbapi_connection: Any, *_args: Any) -> None:
        self.invalidated.append(dbapi_connection)


@SERVERS
def test_a_dropped_connection_during_the_read_is_retried_on_a_new_one(database_url: str):
    migration.upgrade(database_url)
    proxy = CuttingProxy(make_url(database_url).port)
    proxied = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
    engine = api.create_engine(proxied)
    try:
        consumer = next_consumer()
        store(engine, consumer)
        assert db.find_one(engine, consumer.uuid) == consumer
        watch = PoolWatch(engine)
        # The server never sees the SELECT: the connection drops under it.
        proxy.cut_at(b"LEFT OUTER JOIN consumer_types", forward=False)
        assert db.find_one(engine, consumer.uuid) == consumer
        assert proxy.cut.is_set()
        assert len(watch.invalidated) == 1
        dead = watch.invalidated[0]
        assert watch.checkouts[0] is dead
        assert len(watch.checkouts) == 2 and watch.checkouts[1] is not dead
        for _ in range(3):  # the pool never hands the dead connection out again
            assert db.find_one(engine, consumer.uuid) == consumer
        assert all(checked_out is not dead for checked_out in watch.checkouts[1:])
    finally:
        engine.dispose()
        proxy.close()


@SERVERS
def test_a_read_blocked_by_a_lock_is_retried_until_the_lock_goes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL's lock_timeout, MariaDB's lock_wait_timeout: another session locked the table."""
    migration.upgrade(database_url)
    monkeypatch.setattr(api, "POSTGRESQL_LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(api, "MYSQL_LOCK_TIMEOUT_S", 1)
    engine = api.create_engine(database_url)
    holder_engine = sqlalchemy.create_engine(database_url)
    try:
        consumer = next_consumer()
        store(engine, consumer)
        holder = holder_engine.connect()
        if engine.dialect.name == "postgresql":
            holder.exec_driver_sql("LOCK TABLE consumers IN ACCESS EXCLUSIVE MODE")
            release = holder.rollback
        else:
            holder.exec_driver_sql("LOCK TABLES consumers WRITE")
            release = lambda: holder.exec_driver_sql("UNLOCK TABLES")  # noqa: E731
        watch = PoolWatch(engine)
        watch.on_checkout = lambda attempt: release() if attempt == 2 else None
        try:
            assert db.find_one(engine, consumer.uuid) == consumer
        finally:
            holder.close()
        assert len(watch.checkouts) == 2  # the first attempt timed out on the lock
        assert watch.invalidated == []  # a lock is no reason to drop a connection
    finally:
        engine.dispose()
        holder_engine.dispose()


def test_another_fault_is_unavailable_naming_nothing_and_the_connection_stays_fit(
    database_url: str, caplog: pytest.LogCaptureFixture
):
    """A read of a database not yet migrated: not retried, logged by kind, connection reusable."""
    one_connection = (
        {} if database_url.startswith("sqlite") else {"pool_size": 1, "max_overflow": 0}
    )
    engine = api.create_engine(database_url, **one_connection)
    watch = PoolWatch(engine)
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(exception.Unavailable) as fault:
            db.find_one(engine, str(uuidlib.uuid4()))
        assert fault.value.detail == exception.Unavailable.default_detail
        assert len(watch.checkouts) == 1 and watch.invalidated == []
        logged = " ".join(record.getMessage() for record in caplog.records)
        assert "database error" in logged
        url = make_url(database_url)
        for secret in ("SELECT", "consumers", url.host or "127.0.0.1", url.username or "guard"):
            assert secret not in logged
        migration.upgrade(database_url)
        assert_writes_still_roll_back(engine)
    finally:
        engine.dispose()


def test_an_exhausted_pool_is_unavailable_and_the_pool_recovers(database_url: str):
    migration.upgrade(database_url)
    engine = api.create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    try:
        consumer = next_consumer()
        store(engine, consumer)
        with engine.connect() as held:  # the pool's only connection
            held.exec_driver_sql("SELECT 1")
            with pytest.raises(exception.Unavailable):
                db.find_one(engine, consumer.uuid)
        assert db.find_one(engine, consumer.uuid) == consumer
    finally:
        engine.dispose()


def test_concurrent_reads_share_a_small_pool_and_return_every_connection(database_url: str):
    """Eight threads reading through a pool of two: every read answers, none is leaked."""
    migration.upgrade(database_url)
    engine = api.create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=20)
    try:
        consumer = next_consumer()
        store(engine, consumer)
        missing = str(uuidlib.uuid4())

        def reads(_: int) -> list[db.Consumer | None]:
            return [db.find_one(engine, u) for u in (consumer.uuid, missing) * 25]

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = [answer for batch in pool.map(reads, range(8)) for answer in batch]
        assert answers == [consumer, None] * 25 * 8
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()
