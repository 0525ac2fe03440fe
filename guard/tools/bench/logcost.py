"""What the access line and the decision line cost a request, beside their 40 us budget.

Two ways, each in CPU microseconds per request (this process's CPU time, the
decision log's writer thread included: its queue is drained inside each timed
batch), logs on against logs off in finely alternating batches (the median of
the rounds; the spread shows the rounds):

* **in place**: ``GET /consumers/{uuid}`` through the whole ``trusted``
  pipeline on SQLite, with both logs on against the same pipeline with both
  off (``guard`` loggers at WARNING and no decision log): what the two lines
  cost where they run, among everything else a request does (measured,
  about twice their cost in a tight loop); once through a stream handler
  with guard's filter (as :mod:`guard.tools.bench.pipeline` sets it up, and
  ``etc/guard/logging.conf``), once through ``guard serve``'s default
  logging (below);
* **through oslo.log's handler**: the two lines alone, as in the pipeline
  benchmark's ``logging per request`` line, but through the handler ``guard
  serve`` sets up by default (:func:`guard.logsetup.setup`: oslo.log's stream
  handler, with guard's filter and guard's ContextFormatter, which writes
  oslo's text and redacts what the context adds), against the same request
  with the logs off; and through the two handlers it sets up when an
  operator adds ``[DEFAULT] log_file`` (the file's and stderr's).

The pipeline benchmark's ``logging per request`` line is the same two lines
through a plain stream handler, in a tight loop.

Run it with ``python -m guard.tools.bench.logcost [--quick]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import webob

from guard import conf as guard_conf
from guard import deploy, logsetup, middleware
from guard.testing import deployment
from guard.tools.bench import BenchResult, pipeline

ROUNDS = 10
_LOGGERS = ("guard", "guard.access", "guard.audit")


def _cpu_seconds(func: Callable[[], None], calls: int, settle: Any) -> float:
    """CPU seconds of ``calls`` calls, ``settle`` (the writer's drain) inside the span."""
    start = time.process_time()
    for _ in range(calls):
        func()
    settle()
    return time.process_time() - start


@contextlib.contextmanager
def _logs_off(services: deploy.Services) -> Iterator[None]:
    """Both lines off: guard's loggers at WARNING, no decision reported at all."""
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    enforcer = services.enforcer
    decision_log = enforcer.decision_log
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    enforcer.decision_log = None
    try:
        yield
    finally:
        enforcer.decision_log = decision_log
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _paired_cost(
    request: Callable[[], None],
    services: deploy.Services,
    seconds: float,
    rounds: int,
    name: str,
    subject: str,
) -> BenchResult:
    """Requests with logs on against logs off, in alternating batches.

    Each round alternates batches of each side (some 50 ms each, about as
    long as the decision log's writer waits between its batches) until both
    have run about ``seconds`` of CPU: whatever the machine does falls on
    both alike, and the round's cost is the difference of the two sides'
    mean CPU time a request. The result is the median round; the spread is
    that of the rounds.
    """
    settle = services.decision_log.flush
    batch = max(1, int(0.05 / _cpu_seconds(request, 20, settle) * 20))  # ~50 ms a batch
    costs: list[float] = []
    means: list[tuple[float, float]] = []
    for _ in range(rounds):
        on = off = 0.0
        calls = 0
        while on + off < 2 * seconds:
            with _logs_off(services):
                off += _cpu_seconds(request, batch, settle)
            on += _cpu_seconds(request, batch, settle)
            calls += batch
        means.append((on / calls * 1e6, off / calls * 1e6))
        # at least 0.1 us: on a busy machine a round's difference can come out at zero
        costs.append(max((on - off) / calls * 1e6, 0.1))
    order = sorted(range(rounds), key=costs.__getitem__)
    median = order[rounds // 2]
    cost_us = costs[median]
    on_us, off_us = means[median]
    budget = pipeline.LOG_BUDGET_US
    return BenchResult(
        name=name,
        subject=f"{subject} ({on_us:.1f} us a request with logs, {off_us:.1f} us without; "
        "median round)",
        baseline=f"budget {budget:.0f} us",
        subject_per_second=1e6 / cost_us,
        baseline_per_second=1e6 / budget,
        goal=f"ratio >= 1.0 (at most {budget:.0f} us a request)",
        round_ratios=tuple(budget / cost for cost in costs),
    )


def in_place(seconds: float, rounds: int = ROUNDS, *, through_oslo: bool = False) -> BenchResult:
    """The two lines' cost inside the whole pipeline (logs on vs off), SQLite.

    Through a plain stream handler, or ``through_oslo`` (``guard serve``'s default).
    """
    setup = _logging_like_oslo() if through_oslo else pipeline.logging_like_guard_serve()
    handler = "oslo.log's handler" if through_oslo else "a stream handler"
    with (
        setup,
        tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp,
        deployment(f"sqlite:///{Path(tmp) / 'guard.sqlite'}") as services,
    ):
        path = f"/consumers/{pipeline.seed(services)}"
        get = pipeline.wsgi_caller(deploy.build_pipeline(services, "trusted"), path)
        get()  # warm up
        return _paired_cost(
            get,
            services,
            seconds,
            rounds,
            f"logging per request in place, {handler}: GET /consumers/{{uuid}}, SQLite",
            "whole pipeline, logs on - logs off (CPU)",
        )


@contextlib.contextmanager
def _logging_like_oslo(log_file: Path | None = None) -> Iterator[None]:
    """``guard serve``'s default logging (oslo.log to stderr), with stderr on /dev/null.

    With ``log_file``, also to that file (``[DEFAULT] log_file``: two handlers).

    What oslo.log's setup changes is put back afterwards: the root logger's
    handlers, every logger's level, guard's loggers, ``sys.excepthook``.
    """
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {name: logging.getLogger(name) for name in _LOGGERS}
    states = {name: (lg.level, lg.propagate, list(lg.handlers)) for name, lg in saved.items()}
    levels = {
        lg: lg.level
        for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger)
    }
    excepthook = sys.excepthook
    conf = guard_conf.load()
    if log_file is not None:
        conf.set_override("log_file", str(log_file))
    with open(os.devnull, "w") as devnull:
        stderr, sys.stderr = sys.stderr, devnull
        try:
            logsetup.setup(conf)  # its stream handler keeps the stream it found
        finally:
            sys.stderr = stderr
        for lg in saved.values():
            lg.handlers = []
            lg.propagate = True
        logging.getLogger("guard").setLevel(logging.INFO)
        try:
            yield
        finally:
            for handler in root.handlers:
                if handler not in saved_root[1]:
                    handler.close()
            sys.excepthook = excepthook
            for lg, level in levels.items():
                lg.setLevel(level)
            root.setLevel(saved_root[0])
            root.handlers = saved_root[1]
            for name, (level, propagate, handlers) in states.items():
                lg = saved[name]
                lg.setLevel(level)
                lg.propagate = propagate
                lg.handlers = handlers


def through_oslo_log(
    seconds: float, rounds: int = ROUNDS, *, with_log_file: bool = False
) -> BenchResult:
    """The two lines alone through oslo.log's handler (``guard serve``'s default).

    ``with_log_file``: through its two handlers, a log file's and stderr's.
    """
    with (
        tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp,
        _logging_like_oslo(Path(tmp) / "guard.log" if with_log_file else None),
        deployment(f"sqlite:///{Path(tmp) / 'guard.sqlite'}") as services,
    ):
        consumer = str(uuid.uuid4())
        environ = webob.Request.blank(f"/consumers/{consumer}").environ
        environ.update(
            {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in pipeline.HEADERS.items()}
        )
        middleware.ensure_request_ids(environ)
        request_id = environ["openstack.request_id"]
        context, _ = middleware.context_from_environ(environ, services.enforcer)
        context.update_store()  # oslo.log's formatter reads the thread's context
        environ["guard.context"] = context
        target = {"project_id": pipeline.PROJECT, "user_id": "bench-user", "uuid": consumer}
        headers = [("Content-Type", "application/json"), ("Content-Length", "211")]
        snapshot = services.enforcer.snapshot()

        def request() -> None:
            services.enforcer.authorize_in(
                snapshot, "guard:consumers:show", target, context, do_raise=False
            )
            middleware.log_access(
                environ, "200 OK", headers, [b"{}"], time.perf_counter(), request_id
            )

        handlers = "two handlers (a log file's, stderr's)" if with_log_file else "stream handler"
        return _paired_cost(
            request,
            services,
            seconds,
            rounds,
            "logging per request through oslo.log's handler"
            + (", with a log file (two handlers)" if with_log_file else ""),
            f"both lines, oslo.log's {handlers} with guard's ContextFormatter (CPU)",
        )


def run(quick: bool = False, rounds: int = ROUNDS) -> list[BenchResult]:
    """Both lines' cost in place and through oslo.log's handlers; see the module docstring."""
    seconds = 0.1 if quick else 0.3
    return [
        in_place(seconds, rounds),
        in_place(seconds, rounds, through_oslo=True),
        through_oslo_log(seconds, rounds),
        through_oslo_log(seconds, rounds, with_log_file=True),
    ]


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv[1:]):
        print(result)
