"""``GET /consumers/{uuid}`` through guard's whole pipeline vs a bare WebOb app.

Subject: the ``trusted`` pipeline (request_id, SizeLimit, the guard
middleware with its access log and redacting filter, routing, validation,
the guarded repository with its policy decision and decision log), access
and decision logs on at INFO through a stream handler with guard's filter.
Baseline: a WebOb app on a plain ``sqlalchemy.create_engine(url)`` (no
guard code and no guard engine settings in its path) that routes by hand,
runs the same select (built once, as guard's is) on the same database and
renders the same JSON.

Both run on SQLite (a file) and on PostgreSQL (a throwaway server of
:mod:`guard.tools.pgserver`, or the URL given), each in three ways:

* over HTTP: both served by waitress in this process with the same threads,
  one client on a kept-alive connection, wall-clock requests per second
  (on a busy machine the spread of the rounds shows how much the other
  tenants moved them); goal >= 0.8x;
* in process: both WSGI apps called directly with the environ a server
  builds, rates per second of this process's CPU time (the decision log's
  writer thread included: its queue is drained inside each timed round);
  goal >= 0.6x (guard's pipeline at most 1.67x the bare app's time);
* and, once, the logging cost of one request: the access line plus the
  decision line (queued, then written by the writer thread) through a
  handler with guard's filter, in CPU microseconds; goal at most 40 us.

Every pair is measured in alternating rounds (the machine's load falls on
both sides); the ratio is of the best rates, and the table shows the spread
of the per-round ratios.

Run it with ``python -m guard.tools.bench.pipeline [--quick] [--http-only] [--sqlite-only]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import sqlalchemy
import webob
import webob.dec
from sqlalchemy.engine import Engine

from guard import deploy, middleware
from guard import log as guard_log
from guard.context import RequestContext
from guard.db import models
from guard.testing import Persona, deployment, served
from guard.tools.bench import BenchResult, paired_result, paired_rounds, rate
from guard.tools.bench.repository import RAW_SELECT
from guard.tools.pgserver import PostgresUnavailable, throwaway_postgresql

THREADS = 4
ROUNDS = 10
ROWS = 500
PROJECT = "bench-project"
PERSONA = Persona("bench-user", PROJECT, ("member", "reader"))
HEADERS = PERSONA.headers()
#: The budget of the access line and the decision line together, per request.
LOG_BUDGET_US = 40.0
_SUBJECT = "whole trusted pipeline"
_BASELINE = "bare WebOb app, plain engine, same query"
# The baseline's select, built once with a bound parameter as guard builds its own.
_BY_UUID = RAW_SELECT.where(models.Consumer.uuid == sqlalchemy.bindparam("uuid"))


class BareConsumerApp:
    """The baseline: route by hand, run the select, render JSON; nothing else."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> webob.Response:
        consumer_uuid = req.path_info.rsplit("/", 1)[-1]
        with self.engine.connect() as connection:
            row = connection.execute(_BY_UUID, {"uuid": consumer_uuid}).first()
        if row is None:
            return webob.Response(status=404)
        document = {
            "uuid": row.uuid,
            "project_id": row.project_id,
            "user_id": row.user_id,
            "consumer_type": row.consumer_type,
            "generation": row.generation,
            "created_at": row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": row.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return webob.Response(
            body=json.dumps(document).encode(),
            content_type="application/json",
            charset=None,  # type: ignore[arg-type]  # webob takes None (no charset); stubs say str
        )


def _client(base_url: str, path: str) -> tuple[Callable[[], None], HTTPConnection]:
    connection = HTTPConnection(urllib.parse.urlsplit(base_url).netloc, timeout=30)

    def get() -> None:
        connection.request("GET", path, headers=HEADERS)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"benchmark request answered {response.status}")

    return get, connection


def _measure_http(
    subject: Any,
    baseline: Any,
    path: str,
    seconds: float,
    settle: Callable[[], object],
    rounds: int,
) -> tuple[list[float], list[float]]:
    """Both apps served side by side, one kept-alive client each, in alternating rounds.

    Wall-clock requests per second, what a client sees. (This process's CPU
    time is no steadier here: on a loaded machine the thread hand-offs of
    every HTTP request inflate it several times over.)
    """
    with served(subject, THREADS) as subject_url, served(baseline, THREADS) as baseline_url:
        get_subject, subject_connection = _client(subject_url, path)
        get_baseline, baseline_connection = _client(baseline_url, path)
        try:
            get_subject()  # warm up: connections, pools, caches
            get_baseline()
            return paired_rounds(
                get_subject,
                get_baseline,
                rounds=rounds,
                min_seconds=seconds,
                settle_subject=settle,
            )
        finally:
            subject_connection.close()
            baseline_connection.close()


def _wsgi_caller(app: Any, path: str) -> Callable[[], None]:
    """One ``GET path`` through ``app`` called in process, as a WSGI server calls it."""
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in HEADERS.items()}

    def get() -> None:
        environ = webob.Request.blank(path).environ
        environ.update(headers)
        statuses: list[str] = []

        def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
            statuses.append(status)

        body = app(environ, start_response)
        try:
            b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"benchmark request answered {statuses[0]}")

    return get


def _measure_in_process(
    subject: Any,
    baseline: Any,
    path: str,
    seconds: float,
    settle: Callable[[], object],
    rounds: int,
) -> tuple[list[float], list[float]]:
    """Both apps called directly, in alternating rounds of this process's CPU time."""
    get_subject, get_baseline = _wsgi_caller(subject, path), _wsgi_caller(baseline, path)
    get_subject()  # warm up
    get_baseline()
    return paired_rounds(
        get_subject,
        get_baseline,
        rounds=rounds,
        min_seconds=seconds,
        clock=time.process_time,
        settle_subject=settle,
    )


def _seed(services: deploy.Services) -> str:
    admin = RequestContext(
        user_id="bench-admin",
        project_id="bench-ops",
        roles=["admin", "member", "reader"],
        is_admin_project=False,
        enforcer=services.enforcer,
    )
    uuids = [str(uuid.uuid4()) for _ in range(ROWS)]
    for consumer_uuid in uuids:
        services.repository.create(admin, consumer_uuid, project_id=PROJECT, user_id="bench-user")
    return uuids[len(uuids) // 2]


@contextlib.contextmanager
def _logging_like_guard_serve() -> Iterator[None]:
    """The access and decision logs on at INFO through a stream handler with guard's filter.

    A plain ``logging.StreamHandler`` to /dev/null, as ``etc/guard/logging.conf``
    makes one; oslo.log's own handler (``guard serve``'s default) adds its
    ContextFormatter and a second redaction of the formatted text, which
    are not measured here. Only this handler: the lines do not propagate to
    whatever handlers the process that runs the benchmark has.
    """
    logger = logging.getLogger("guard")
    level, propagate = logger.level, logger.propagate
    with open(os.devnull, "w") as devnull:
        handler = logging.StreamHandler(devnull)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        guard_log.install()
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _on_database(
    label: str, url: str, seconds: float, in_process: bool, rounds: int
) -> tuple[BenchResult, BenchResult | None]:
    """The HTTP (and in-process) result of both apps on the database at ``url``."""
    baseline_engine = sqlalchemy.create_engine(url)
    try:
        with deployment(url) as services:
            path = f"/consumers/{_seed(services)}"
            pipeline = deploy.build_pipeline(services, "trusted")
            bare = BareConsumerApp(baseline_engine)
            settle = services.decision_log.flush
            over_http = _measure_http(pipeline, bare, path, seconds, settle, rounds)
            direct = (
                _measure_in_process(pipeline, bare, path, seconds, settle, rounds)
                if in_process
                else None
            )
    finally:
        baseline_engine.dispose()
    http_result = paired_result(
        *over_http,
        name=f"pipeline GET /consumers/{{uuid}} over HTTP, {label}",
        subject=_SUBJECT,
        baseline=_BASELINE,
        goal=">= 0.8x (same server, threads and database)",
    )
    if direct is None:
        return http_result, None
    return http_result, paired_result(
        *direct,
        name=f"pipeline GET /consumers/{{uuid}} in process (CPU time), {label}",
        subject=_SUBJECT,
        baseline=_BASELINE,
        goal=">= 0.6x (at most 1.67x the bare app's time)",
    )


def logging_cost(seconds: float, rounds: int = ROUNDS) -> BenchResult:
    """CPU cost of one request's access line and decision line, beside the budget.

    One "request" logs the access line as the guard middleware does and
    queues the decision the policy engine reports for a GET; each timed round
    ends when the writer thread has written every queued line, so its share
    is charged. Rate = 1 / cost; the baseline is the budget's rate (25,000/s
    for 40 us), so a ratio of at least 1.0 is within the budget.
    """
    with (
        tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp,
        deployment(f"sqlite:///{Path(tmp) / 'guard.sqlite'}") as services,
    ):
        consumer = str(uuid.uuid4())
        environ = webob.Request.blank(f"/consumers/{consumer}").environ
        environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in HEADERS.items()})
        middleware.ensure_request_ids(environ)
        request_id = environ["openstack.request_id"]
        context, _ = middleware.context_from_environ(environ, services.enforcer)
        target = {
            "project_id": PROJECT,
            "user_id": "bench-user",
            "consumer_type": None,
            "uuid": consumer,
        }
        headers = [("Content-Type", "application/json"), ("Content-Length", "211")]
        body = [b"{}"]
        enforcer = services.enforcer
        snapshot = enforcer.snapshot()

        def log_one_request() -> None:
            middleware.log_access(
                environ, "200 OK", headers, body, time.perf_counter(), request_id
            )

        def decide() -> None:
            enforcer.authorize_in(
                snapshot, "guard:consumers:show", target, context, do_raise=False
            )

        def request_with_logs() -> None:
            decide()
            log_one_request()

        # The decision itself is not logging: measured without its log too,
        # in alternating rounds.
        decision_log = services.decision_log  # the concrete log (it has flush())
        bare_rates, logged_rates = [], []
        for _ in range(rounds):
            enforcer.decision_log = None
            try:
                bare_rates.append(_cpu_rate(decide, seconds))
            finally:
                enforcer.decision_log = decision_log
            logged_rates.append(_cpu_rate(request_with_logs, seconds, decision_log.flush))
    # Per-request logging cost: best logged time minus best time of the decision alone.
    bare_us = 1e6 / max(bare_rates)
    cost_us = 1e6 / max(logged_rates) - bare_us
    costs = [1e6 / logged - bare_us for logged in logged_rates]
    return BenchResult(
        name="logging per request: access line + decision line",
        subject="both lines, writer thread included (CPU)",
        baseline=f"budget {LOG_BUDGET_US:.0f} us",
        subject_per_second=1e6 / cost_us,
        baseline_per_second=1e6 / LOG_BUDGET_US,
        goal=f"ratio >= 1.0 (at most {LOG_BUDGET_US:.0f} us a request)",
        round_ratios=tuple(LOG_BUDGET_US / cost for cost in costs),
    )


def _cpu_rate(func: Callable[[], None], seconds: float, settle: Any = None) -> float:
    return rate(func, min_seconds=seconds, repeat=1, clock=time.process_time, settle=settle)


def run(
    quick: bool = False,
    *,
    in_process: bool = True,
    postgresql: bool = True,
    postgresql_url: str | None = None,
    rounds: int = ROUNDS,
) -> list[BenchResult]:
    """Measure both apps on SQLite and PostgreSQL, over HTTP and in process; and the logs.

    ``postgresql_url`` names an empty database to use; without it a
    throwaway server is started (skipped, with a note, when PostgreSQL's
    server is not installed).
    """
    seconds = 0.1 if quick else 0.4
    pairs: list[tuple[BenchResult, BenchResult | None]] = []
    with _logging_like_guard_serve():
        with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'guard.sqlite'}"
            pairs.append(_on_database("SQLite", url, seconds, in_process, rounds))
        if postgresql_url is not None:
            pairs.append(_on_database("PostgreSQL", postgresql_url, seconds, in_process, rounds))
        elif postgresql:
            try:
                with throwaway_postgresql() as url:
                    pairs.append(_on_database("PostgreSQL", url, seconds, in_process, rounds))
            except PostgresUnavailable as error:
                print(f"pipeline benchmark: PostgreSQL skipped ({error})", file=sys.stderr)
        log_line = logging_cost(seconds, rounds) if in_process else None
    results = [http for http, _ in pairs] + [direct for _, direct in pairs if direct]
    return results + ([log_line] if log_line else [])


# What guard.tools.bench.logcost measures the logs in place with.
seed = _seed
wsgi_caller = _wsgi_caller
logging_like_guard_serve = _logging_like_guard_serve


if __name__ == "__main__":
    arguments = sys.argv[1:]
    for result in run(
        quick="--quick" in arguments,
        in_process="--http-only" not in arguments,
        postgresql="--sqlite-only" not in arguments,
    ):
        print(result)
