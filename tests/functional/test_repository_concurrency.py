"""Concurrent writers: no lost update on the servers, no lock failure on any database.

PostgreSQL and MariaDB: 8 processes (separate interpreters, engines and pools, as
gunicorn workers would be) each update the same consumer 100 times, retrying
on ``ConcurrentUpdate``; the final generation must equal the number of
successful updates. Every database: 8 threads of one process write at once;
Placement answered 222 of 330 such writes on SQLite with "database is locked",
guard must answer all of them.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid as uuidlib

import pytest
from oslo_config import cfg

from guard import exception
from guard.context import RequestContext
from guard.db import api, migration
from guard.policy import make_enforcer
from guard.repository import ConsumerRepository

WORKERS = 8
UPDATES_EACH = 100


def _repository(url: str) -> tuple[ConsumerRepository, RequestContext]:
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    enforcer = make_enforcer(conf)
    ctx = RequestContext(
        user_id="writer", project_id="p", roles=["member", "reader"], enforcer=enforcer
    )
    return ConsumerRepository(api.create_engine(url), enforcer), ctx


def update_until_done(url: str, consumer: str, updates: int) -> tuple[int, int]:
    """Make ``updates`` successful updates of ``consumer``; (successes, conflicts)."""
    repo, ctx = _repository(url)
    successes = conflicts = streak = 0
    while successes < updates:
        generation = repo.get(ctx, consumer).generation
        try:
            repo.update(ctx, consumer, generation=generation)
        except exception.ConcurrentUpdate:
            conflicts += 1
            streak += 1
            # Jittered exponential backoff, as a well-behaved client retries.
            time.sleep(random.uniform(0, 0.001 * 2 ** min(streak, 6)))
            continue
        successes += 1
        streak = 0
    return successes, conflicts


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_eight_processes_lose_no_update(database_url: str):
    migration.upgrade(database_url)
    repo, ctx = _repository(database_url)
    consumer = str(uuidlib.uuid4())
    repo.create(ctx, consumer, project_id="p", user_id="writer")
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(WORKERS) as pool:
        results = pool.starmap(
            update_until_done, [(database_url, consumer, UPDATES_EACH)] * WORKERS
        )
    successes = sum(s for s, _ in results)
    assert successes == WORKERS * UPDATES_EACH
    assert repo.get(ctx, consumer).generation == successes
    # The workers did race: a no-op lock would show no conflict at all.
    assert sum(c for _, c in results) > 0


def test_eight_writer_threads_never_fail_on_the_lock(database_url: str):
    migration.upgrade(database_url)
    repo, ctx = _repository(database_url)
    shared = str(uuidlib.uuid4())
    repo.create(ctx, shared, project_id="p", user_id="writer")
    failures: list[BaseException] = []
    shared_updates = [0] * WORKERS
    barrier = threading.Barrier(WORKERS)

    def writer(index: int) -> None:
        barrier.wait()
        try:
            for step in range(15):
                own = repo.create(
                    ctx, str(uuidlib.uuid4()), project_id="p", user_id=f"w{index}-{step}"
                )
                repo.update(ctx, own.uuid, generation=0, consumer_type="BUSY")
                if step % 3 == 0:
                    repo.delete(ctx, own.uuid, generation=1)
                while True:
                    current = repo.get(ctx, shared).generation
                    try:
                        repo.update(ctx, shared, generation=current)
                    except exception.ConcurrentUpdate:
                        continue
                    shared_updates[index] += 1
                    break
        except BaseException as error:  # collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert repo.get(ctx, shared).generation == sum(shared_updates) == WORKERS * 15
    visible = repo.list(ctx, project_id="p", limit=1000).consumers
    assert len(visible) == 1 + WORKERS * 10
