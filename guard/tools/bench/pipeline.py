"""Throughput of ``GET /consumers/{uuid}`` through guard's whole pipeline vs a bare WebOb app.

Subject: the ``trusted`` pipeline (oslo request_id, SizeLimit, the guard
middleware with its access log and redacting filter, routing, validation,
the guarded repository with its policy decision and decision log).
Baseline: a WebOb app with no middleware that runs the same SQLAlchemy
select on the same SQLite file and renders the same JSON. Both are served
the same way: waitress in this process on a loopback port, the same thread
count, and one client sending requests one after another on a kept-alive
connection (a bounded loop; the best of ten runs each, in alternation).
Goal: at least 0.8x.

Over HTTP, the server and the client (threads of this process, sharing the
GIL) cost more than either app, so that ratio is diluted and, on a busy
machine, noisy. With ``in_process`` (the default) a second
result calls both WSGI apps directly in this process, with the same environ
the server would build: it measures only what guard adds, and is the figure
to watch when changing the pipeline.

Run it with ``python -m guard.tools.bench.pipeline [--quick] [--http-only]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import webob
from sqlalchemy.engine import Engine

from guard import conf as guard_conf
from guard import deploy
from guard import log as guard_log
from guard.context import RequestContext
from guard.db import api as db_api
from guard.db import models
from guard.testing import Persona, served
from guard.tools.bench import BenchResult, paired_rates
from guard.tools.bench.repository import RAW_SELECT

THREADS = 4
ROUNDS = 10
ROWS = 500
PROJECT = "bench-project"
HEADERS = Persona("bench-user", PROJECT, ("member", "reader")).headers()


class BareConsumerApp:
    """The baseline: route by hand, run the select, render JSON; nothing else."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> webob.Response:
        consumer_uuid = req.path_info.rsplit("/", 1)[-1]
        with self.engine.connect() as connection:
            row = connection.execute(
                # the very select the guarded repository runs (its statement, reused)
                RAW_SELECT.where(models.Consumer.uuid == consumer_uuid)
            ).one_or_none()
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


def _measure(subject: Any, baseline: Any, path: str, seconds: float) -> tuple[float, float]:
    """Best rates of both apps, served side by side and measured in alternation.

    Alternating the runs spreads a busy machine's noise over both apps
    instead of charging it to whichever ran second.
    """
    with served(subject, THREADS) as subject_url, served(baseline, THREADS) as baseline_url:
        get_subject, subject_connection = _client(subject_url, path)
        get_baseline, baseline_connection = _client(baseline_url, path)
        try:
            get_subject()  # warm up: connections, pools, caches
            get_baseline()
            return paired_rates(get_subject, get_baseline, rounds=ROUNDS, min_seconds=seconds)
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
    subject: Any, baseline: Any, path: str, seconds: float
) -> tuple[float, float]:
    """Best rates of both apps called directly, in alternation (no server, no client)."""
    get_subject, get_baseline = _wsgi_caller(subject, path), _wsgi_caller(baseline, path)
    get_subject()  # warm up
    get_baseline()
    return paired_rates(get_subject, get_baseline, rounds=ROUNDS, min_seconds=seconds)


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
    """The access and decision logs on at INFO, as ``guard serve`` has them (to /dev/null)."""
    logger = logging.getLogger("guard")
    level = logger.level
    with open(os.devnull, "w") as devnull:
        handler = logging.StreamHandler(devnull)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        guard_log.install()
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


def run(quick: bool = False, *, in_process: bool = True) -> list[BenchResult]:
    """Measure both apps over HTTP (and, with ``in_process``, called directly)."""
    seconds = 0.1 if quick else 0.5
    with _logging_like_guard_serve(), tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'guard.sqlite'}"
        conf = guard_conf.load()
        conf.set_override("connection", url, group="database")
        services = deploy.build_services(conf, migrate=True)
        baseline_engine = db_api.create_engine(url)
        try:
            path = f"/consumers/{_seed(services)}"
            pipeline = deploy.build_pipeline(services, "trusted")
            bare = BareConsumerApp(baseline_engine)
            subject_rate, baseline_rate = _measure(pipeline, bare, path, seconds)
            direct = _measure_in_process(pipeline, bare, path, seconds) if in_process else None
        finally:
            services.close()
            baseline_engine.dispose()
    results = [
        BenchResult(
            name="pipeline GET /consumers/{uuid}",
            subject="whole trusted pipeline",
            baseline="bare WebOb app, same query",
            subject_per_second=subject_rate,
            baseline_per_second=baseline_rate,
            goal="goal >= 0.8x",
        )
    ]
    if direct is not None:
        results.append(
            BenchResult(
                name="pipeline GET /consumers/{uuid}, WSGI called in process",
                subject="whole trusted pipeline",
                baseline="bare WebOb app, same query",
                subject_per_second=direct[0],
                baseline_per_second=direct[1],
                goal="guard's own cost, without server noise; goal >= 0.8x",
            )
        )
    return results


if __name__ == "__main__":
    arguments = sys.argv[1:]
    for result in run(quick="--quick" in arguments, in_process="--http-only" not in arguments):
        print(result)
