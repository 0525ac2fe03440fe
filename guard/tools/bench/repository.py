"""Benchmark: the guarded repository beside raw SQLAlchemy and naive filtering.

* ``get``: a guarded ``ConsumerRepository.get`` (validation, one read,
  one policy decision on the row's owners) against a raw SQLAlchemy Core
  select of the same row with its owners on a plain
  ``sqlalchemy.create_engine`` of the same file (what an unguarded service
  runs). Goal: at least 0.8x the raw rate (at most 1.25x its time).
* ``list``: one 50-row page as a project member at 10k, 100k and 1M
  consumers across 1,000 projects, filtered in SQL, beside the naive way
  (load the rows, ask the policy row by row in Python, sort, slice). Goal:
  the 1M page within 1.5x of the 10k page's time.

Runs on a SQLite file in a temporary directory (the embedded default).
``python -m guard.tools.bench.repository [--quick]``; quick stops at 100k rows.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy
from oslo_config import cfg

from guard.context import RequestContext
from guard.db import api, migration, models
from guard.db.consumers import SELECT_CONSUMER
from guard.policy import make_enforcer
from guard.repository import LIST, ConsumerRepository
from guard.tools.bench import BenchResult, paired_rates, rate

PROJECTS = 1000
USERS = 1000
PAGE = 50
# The member's own project gets this many rows more than the others, so that
# its first page is a full 50 rows even at 10k consumers (10 per project).
MEMBER_EXTRA_ROWS = 100
SEED_BATCH = 20_000
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


# What an unguarded service would run: a consumer with its owners' ids, as a
# Core statement built once (the fastest raw SQLAlchemy way). It is the
# repository's own statement, not a copy: the baseline must stay "the same
# row by the same query", and a hand-written twin could drift from it.
_consumers = models.Consumer.__table__
_projects = models.Project.__table__
RAW_SELECT = SELECT_CONSUMER


def _enforcer() -> Any:
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    return make_enforcer(conf)


class Dataset:
    """A SQLite file of consumers, grown in place from one size to the next."""

    def __init__(self, directory: Path) -> None:
        url = f"sqlite:///{directory / 'bench.sqlite'}"
        migration.upgrade(url)
        self.engine = api.create_engine(url)
        self.rows = 0
        self.random = random.Random(42)  # the same data on every run
        with self.engine.begin() as conn:
            conn.execute(
                sqlalchemy.insert(models.Project),
                [{"external_id": f"project-{i:04d}"} for i in range(PROJECTS)],
            )
            conn.execute(
                sqlalchemy.insert(models.User),
                [{"external_id": f"user-{i:04d}"} for i in range(USERS)],
            )
        self.member_project = "project-0007"
        with self.engine.connect() as conn:
            member_key = conn.execute(
                sqlalchemy.select(models.Project.id).where(
                    models.Project.external_id == self.member_project
                )
            ).scalar_one()
        self._insert(MEMBER_EXTRA_ROWS, project_key=member_key)

    def grow_to(self, total: int) -> None:
        """Add uniformly spread consumers until ``total`` (plus the member's extra rows)."""
        while self.rows < total:
            self._insert(min(SEED_BATCH, total - self.rows))
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

    def _insert(self, count: int, project_key: int | None = None) -> None:
        # One executemany per batch: a bulk Core insert, no ORM objects.
        now = sqlalchemy.func.now()
        draw = self.random.randrange
        rows = [
            {
                "uuid": str(uuidlib.UUID(int=self.random.getrandbits(128), version=4)),
                "project_id": project_key or draw(1, PROJECTS + 1),
                "user_id": draw(1, USERS + 1),
                "generation": 0,
            }
            for _ in range(count)
        ]
        with self.engine.begin() as conn:
            conn.execute(
                sqlalchemy.insert(models.Consumer).values(created_at=now, updated_at=now), rows
            )
        if project_key is None:
            self.rows += count

    def some_member_uuid(self) -> str:
        with self.engine.connect() as conn:
            return conn.execute(
                sqlalchemy.select(_consumers.c.uuid)
                .join(_projects, _projects.c.id == _consumers.c.project_id)
                .where(_projects.c.external_id == self.member_project)
                .limit(1)
            ).scalar_one()


def bench_get(
    dataset: Dataset, repo: ConsumerRepository, ctx: RequestContext
) -> list[BenchResult]:
    """Guarded get vs a raw Core select of the same row with its owners.

    The goal compares against the select on a plain ``sqlalchemy.create_engine``
    of the same file, with no guard code or settings in its path. A second,
    informational line runs the same select on guard's own engine (its
    connect-time settings: WAL, foreign keys, cache and map sizes).
    """
    consumer = dataset.some_member_uuid()
    raw_query = RAW_SELECT.where(_consumers.c.uuid == consumer)
    plain_engine = sqlalchemy.create_engine(dataset.engine.url)

    def raw_on(engine: sqlalchemy.Engine) -> Callable[[], object]:
        def raw() -> object:
            with engine.connect() as conn:
                return conn.execute(raw_query).one()

        return raw

    def guarded() -> object:
        return repo.get(ctx, consumer)

    try:
        guarded_rate, plain_rate = paired_rates(guarded, raw_on(plain_engine))
        _, same_engine_rate = paired_rates(guarded, raw_on(dataset.engine), rounds=4)
    finally:
        plain_engine.dispose()
    return [
        BenchResult(
            name="get one consumer",
            subject="guarded repository.get",
            baseline="raw Core select, plain engine (no guard settings)",
            subject_per_second=guarded_rate,
            baseline_per_second=plain_rate,
            goal=">= 0.8x (at most 1.25x the time)",
        ),
        BenchResult(
            name="get one consumer",
            subject="guarded repository.get",
            baseline="raw SQLAlchemy Core select, guard's engine",
            subject_per_second=guarded_rate,
            baseline_per_second=same_engine_rate,
            goal="for information",
        ),
    ]


def naive_page(dataset: Dataset, enforcer: Any, ctx: RequestContext) -> list[Any]:
    """What services do today: load every row, decide in Python, sort, slice."""
    with dataset.engine.connect() as conn:
        rows = conn.execute(RAW_SELECT).all()
    allowed = [
        row
        for row in rows
        if enforcer.enforce(
            LIST,
            {
                "project_id": row.project_id,
                "user_id": row.user_id,
                "consumer_type": row.consumer_type,
                "uuid": row.uuid,
            },
            ctx,
        )
    ]
    return sorted(allowed, key=lambda row: row.uuid)[:PAGE]


def bench_list(
    dataset: Dataset, repo: ConsumerRepository, enforcer: Any, ctx: RequestContext
) -> tuple[BenchResult, float]:
    """One 50-row page filtered in SQL vs the naive page; also returns the SQL page rate."""
    page = repo.list(ctx, limit=PAGE)
    expected = naive_page(dataset, enforcer, ctx)
    if [c.uuid for c in page.consumers] != [row.uuid for row in expected]:
        raise AssertionError("the SQL-filtered page differs from the naive page")
    guarded_rate = rate(lambda: repo.list(ctx, limit=PAGE))
    # The naive way takes seconds at 1M rows: one timed run is enough there.
    naive_rate = rate(lambda: naive_page(dataset, enforcer, ctx), min_seconds=0.0, repeat=1)
    result = BenchResult(
        name=f"50-row list page, {dataset.rows:,} consumers / {PROJECTS:,} projects",
        subject="guarded list (rule compiled to SQL, keyset page)",
        baseline="load rows + enforce() per row in Python",
        subject_per_second=guarded_rate,
        baseline_per_second=naive_rate,
    )
    return result, guarded_rate


def run(quick: bool = False) -> list[BenchResult]:
    """Run the repository benchmarks (``quick``: 10k and 100k rows only)."""
    directory = Path(tempfile.mkdtemp(prefix="guard-bench-repo-"))
    try:
        dataset = Dataset(directory)
        enforcer = _enforcer()
        repo = ConsumerRepository(dataset.engine, enforcer)
        ctx = RequestContext(
            user_id="bench-user",
            project_id=dataset.member_project,
            roles=["member", "reader"],
            enforcer=enforcer,
        )
        results: list[BenchResult] = []
        page_rates: dict[int, float] = {}
        for size in QUICK_SIZES if quick else FULL_SIZES:
            dataset.grow_to(size)
            if not results:
                results.extend(bench_get(dataset, repo, ctx))
            result, page_rates[size] = bench_list(dataset, repo, enforcer, ctx)
            results.append(result)
        smallest, largest = min(page_rates), max(page_rates)
        results.append(
            BenchResult(
                name="list page scaling",
                subject=f"page at {largest:,} consumers",
                baseline=f"page at {smallest:,} consumers",
                subject_per_second=page_rates[largest],
                baseline_per_second=page_rates[smallest],
                goal=">= 0.67x (the largest page within 1.5x of the smallest's time)"
                if largest == 1_000_000
                else "",
            )
        )
        dataset.engine.dispose()
        return results
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for result in run(quick=args.quick):
        print(result)
    print(f"({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
