"""Throughput of ``GET /consumers/{uuid}`` through guard's whole pipeline vs a bare WebOb app.

Subject: the ``trusted`` pipeline (oslo request_id, SizeLimit, the guard
middleware with its access log and redacting filter, routing, validation,
the guarded repository with its policy decision and decision log).
Baseline: a WebOb app with no middleware that runs the same SQLAlchemy
select on the same SQLite file and renders the same JSON. Both are served
the same way: waitress in this process on a loopback port, the same thread
count, and one client sending requests one after another on a kept-alive
connection (a bounded loop, best of three runs). Goal: at least 0.8x.

Run it with ``python -m guard.bench.pipeline [--quick]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import waitress
import webob
from sqlalchemy import select
from sqlalchemy.engine import Engine

from guard import conf as guard_conf
from guard import deploy
from guard import log as guard_log
from guard.bench import BenchResult, rate
from guard.context import RequestContext
from guard.db import api as db_api
from guard.db import models

THREADS = 4
ROWS = 500
PROJECT = "bench-project"
HEADERS = {
    "X-Identity-Status": "Confirmed",
    "X-User-Id": "bench-user",
    "X-Project-Id": PROJECT,
    "X-Roles": "member,reader",
}

# The same select the guarded repository runs for one consumer with its owners.
CONSUMER_WITH_OWNERS = (
    select(
        models.Consumer.uuid,
        models.Project.external_id.label("project_id"),
        models.User.external_id.label("user_id"),
        models.ConsumerType.name.label("consumer_type"),
        models.Consumer.generation,
        models.Consumer.created_at,
        models.Consumer.updated_at,
    )
    .select_from(models.Consumer)
    .join(models.Project, models.Project.id == models.Consumer.project_id)
    .join(models.User, models.User.id == models.Consumer.user_id)
    .outerjoin(models.ConsumerType, models.ConsumerType.id == models.Consumer.consumer_type_id)
)


class BareConsumerApp:
    """The baseline: route by hand, run the select, render JSON; nothing else."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> webob.Response:
        consumer_uuid = req.path_info.rsplit("/", 1)[-1]
        with self.engine.connect() as connection:
            row = connection.execute(
                CONSUMER_WITH_OWNERS.where(models.Consumer.uuid == consumer_uuid)
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
            body=json.dumps(document).encode(), content_type="application/json", charset=None
        )


@contextlib.contextmanager
def _served(app: Any) -> Iterator[int]:
    server = waitress.create_server(
        app, host="127.0.0.1", port=0, threads=THREADS, asyncore_loop_timeout=0.05
    )
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:
            if not stopping.is_set():  # sockets closed under select() at shutdown
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        stopping.set()
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=5)


def _client(port: int, path: str) -> tuple[Callable[[], None], HTTPConnection]:
    connection = HTTPConnection("127.0.0.1", port, timeout=30)

    def get() -> None:
        connection.request("GET", path, headers=HEADERS)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"benchmark request answered {response.status}")

    return get, connection


def _measure(app: Any, path: str, seconds: float) -> float:
    with _served(app) as port:
        get, connection = _client(port, path)
        try:
            get()  # warm up: connection, pools, caches
            return rate(get, min_seconds=seconds, repeat=3)
        finally:
            connection.close()


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


def _log_like_guard_serve() -> logging.Handler:
    """The access and decision logs on at INFO, as ``guard serve`` has them (to /dev/null)."""
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (closed below)
    logging.getLogger("guard").addHandler(handler)
    logging.getLogger("guard").setLevel(logging.INFO)
    guard_log.install(b"bench-fingerprint-key")
    return handler


def run(quick: bool = False) -> list[BenchResult]:
    """Measure both apps on one SQLite file; one result."""
    seconds = 0.3 if quick else 1.5
    handler = _log_like_guard_serve()
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as directory:
        url = f"sqlite:///{Path(directory) / 'guard.sqlite'}"
        conf = guard_conf.load()
        conf.set_override("connection", url, group="database")
        services = deploy.build_services(conf, migrate=True)
        baseline_engine = db_api.create_engine(url)
        try:
            path = f"/consumers/{_seed(services)}"
            pipeline = deploy.build_pipeline(services, "trusted")
            subject_rate = _measure(pipeline, path, seconds)
            baseline_rate = _measure(BareConsumerApp(baseline_engine), path, seconds)
        finally:
            services.decision_log.close()
            services.engine.dispose()
            baseline_engine.dispose()
            logging.getLogger("guard").removeHandler(handler)
            handler.close()
    return [
        BenchResult(
            name="pipeline GET /consumers/{uuid}",
            subject="whole trusted pipeline",
            baseline="bare WebOb app, same query",
            subject_per_second=subject_rate,
            baseline_per_second=baseline_rate,
            goal="goal >= 0.8x",
        )
    ]


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv[1:]):
        print(result)
