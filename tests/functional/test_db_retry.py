"""The retry paths of ``run_in_transaction``, provoked for real on each database.

Deadlocks and serialization failures (two transactions that really cross),
lock timeouts and SQLite's busy timeout (a blocker that really holds the
lock) are retried, and a retried write is applied exactly once; when the
lock is never released the retries end, within their bound, in
``Unavailable``; a statement timeout is ``Unavailable`` at once (running it
again would only time out again). The engines' timeouts are shortened for
these tests through guard's own constants, so what is exercised is the
setting the engine applies, not a statement of the test.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import Connection, Engine

from guard import exception
from guard.db import api, migration, models

PROJECTS = models.Project.__table__


@pytest.fixture
def engine(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A migrated database whose engine has short lock, busy and statement timeouts."""
    migration.upgrade(database_url)
    monkeypatch.setattr(api, "SQLITE_BUSY_TIMEOUT", 0.2)
    monkeypatch.setattr(api, "POSTGRESQL_LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(api, "MYSQL_LOCK_TIMEOUT_S", 1)
    engine = api.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.insert(PROJECTS), [{"external_id": "p1"}, {"external_id": "p2"}])
    yield engine
    engine.dispose()


def rename(conn: Connection, old: str, new: str) -> None:
    changed = conn.execute(
        sqlalchemy.update(PROJECTS).where(PROJECTS.c.external_id == old).values(external_id=new)
    ).rowcount
    assert changed == 1


def names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sqlalchemy.select(PROJECTS.c.external_id)).scalars())


class Checkouts:
    """Counts the engine's connection checkouts: one per attempt of ``run_in_transaction``.

    (Counted on the pool: an attempt that fails at BEGIN never runs its work.)
    """

    def __init__(self, engine: Engine, on_checkout: Callable[[int], None] | None = None) -> None:
        self.count = 0
        self.on_checkout = on_checkout
        sqlalchemy.event.listen(engine, "checkout", self._checked_out)

    def _checked_out(self, *_args: object) -> None:
        self.count += 1
        if self.on_checkout is not None:
            self.on_checkout(self.count)


class Attempts:
    """Counts the attempts of one unit of work."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, work: Callable[[Connection], object]) -> Callable[[Connection], object]:
        def counted(conn: Connection) -> object:
            self.count += 1
            return work(conn)

        return counted


def run_both(first: Callable[[], object], second: Callable[[], object]) -> list[BaseException]:
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as error:  # asserted by the caller
            failures.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_deadlock_is_retried_and_both_writes_apply_once(engine: Engine):
    """Two transactions lock p1 and p2 in opposite orders: the server kills one; it runs again."""
    both_hold_one = threading.Barrier(2, timeout=20)
    first_attempts, second_attempts = Attempts(), Attempts()

    def crossing(attempts: Attempts, mine: str, theirs: str) -> Callable[[Connection], None]:
        def work(conn: Connection) -> None:
            if conn.dialect.name == "postgresql":
                # Longer than deadlock_timeout (1 s): the deadlock detector decides.
                conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            # Lock my row, wait until the other holds its row, then take theirs.
            conn.execute(
                sqlalchemy.select(PROJECTS.c.id)
                .where(PROJECTS.c.external_id == mine)
                .with_for_update()
            ).one()
            if attempts.count == 1:
                both_hold_one.wait()
            conn.execute(
                sqlalchemy.select(PROJECTS.c.id)
                .where(PROJECTS.c.external_id.in_([theirs, f"{theirs}-renamed"]))
                .with_for_update()
            ).one()
            rename(conn, mine, f"{mine}-renamed")

        return attempts(work)

    failures = run_both(
        lambda: api.run_in_transaction(engine, crossing(first_attempts, "p1", "p2"), write=True),
        lambda: api.run_in_transaction(engine, crossing(second_attempts, "p2", "p1"), write=True),
    )
    assert failures == []
    assert names(engine) == {"p1-renamed", "p2-renamed"}
    # Exactly one of the two was chosen as the deadlock's victim and ran again.
    assert sorted([first_attempts.count, second_attempts.count]) == [1, 2]


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_serialization_failure_is_retried_and_no_update_is_lost(engine: Engine):
    """Two SERIALIZABLE read-modify-writes of one row cross: one fails, runs again, and sees the
    other's write (PostgreSQL: serialization failure; InnoDB: the deadlock it reports instead)."""
    both_read = threading.Barrier(2, timeout=20)
    attempts = [Attempts(), Attempts()]

    def append(counter: Attempts, suffix: str) -> Callable[[Connection], None]:
        def work(conn: Connection) -> None:
            # First statement of the transaction on both servers.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            current = conn.execute(
                sqlalchemy.select(PROJECTS.c.external_id).where(PROJECTS.c.id == 1)
            ).scalar_one()
            if counter.count == 1:
                both_read.wait()
            conn.execute(
                sqlalchemy.update(PROJECTS)
                .where(PROJECTS.c.id == 1)
                .values(external_id=current + suffix)
            )

        return counter(work)

    failures = run_both(
        lambda: api.run_in_transaction(engine, append(attempts[0], "+a"), write=True),
        lambda: api.run_in_transaction(engine, append(attempts[1], "+b"), write=True),
    )
    assert failures == []
    assert names(engine) & {"p1+a+b", "p1+b+a"}  # both writes, one after the other
    assert sorted(counter.count for counter in attempts) == [1, 2]


class Blocker:
    """Another connection holding the write lock on project p1 (SQLite: on the database)."""

    def __init__(self, engine: Engine) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(engine.url.database, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
            return
        self.engine = sqlalchemy.create_engine(engine.url)
        self.conn = self.engine.connect()
        self.conn.execute(
            sqlalchemy.update(PROJECTS)
            .where(PROJECTS.c.external_id == "p1")
            .values(external_id="p1")
        )

    def release(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.release()
        self.conn.close()
        if not self.sqlite:
            self.engine.dispose()


def test_a_lock_held_past_the_timeout_is_retried_until_it_is_released(engine: Engine):
    """SQLite's busy timeout, PostgreSQL's lock_timeout, InnoDB's lock wait timeout."""
    blocker = Blocker(engine)

    def release_on_the_second_attempt(attempt: int) -> None:
        if attempt == 2:  # the first attempt timed out on the lock
            blocker.release()

    attempts = Checkouts(engine, release_on_the_second_attempt)
    try:
        api.run_in_transaction(engine, lambda c: rename(c, "p1", "p1-mine"), write=True)
    finally:
        blocker.close()
    assert attempts.count == 2
    assert names(engine) == {"p1-mine", "p2"}


def test_retries_end_in_unavailable_when_the_lock_is_never_released(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(api, "MAX_ATTEMPTS", 3)
    blocker = Blocker(engine)
    attempts = Checkouts(engine)
    try:
        with pytest.raises(exception.Unavailable):
            api.run_in_transaction(engine, lambda c: rename(c, "p1", "p1-mine"), write=True)
    finally:
        blocker.close()
    assert attempts.count == 3
    assert names(engine) == {"p1", "p2"}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_statement_timeout_is_unavailable_and_not_retried(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(api, "POSTGRESQL_STATEMENT_TIMEOUT_MS", 300)
    monkeypatch.setattr(api, "MYSQL_STATEMENT_TIMEOUT_S", 0.3)
    engine = api.create_engine(database_url)
    slow = "SELECT pg_sleep(5)" if engine.dialect.name == "postgresql" else "SELECT SLEEP(5)"
    attempts = Checkouts(engine)
    started = time.monotonic()
    try:
        with pytest.raises(exception.Unavailable):
            api.run_in_transaction(engine, lambda c: c.exec_driver_sql(slow).all(), write=False)
    finally:
        engine.dispose()
    assert attempts.count == 1
    assert time.monotonic() - started < 4  # generous: the statement alone would take 5 s
