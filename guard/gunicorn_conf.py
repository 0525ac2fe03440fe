"""gunicorn settings for guard: ``gunicorn -c python:guard.gunicorn_conf guard.wsgi:application``.

Command-line flags override these (``--workers 4 --bind 127.0.0.1:8778``);
so do the ``GUARD_*`` environment variables read below. ``guard serve
--workers N`` applies the same settings (:class:`guard.cmd.serve.GunicornServer`,
with a ``worker_exit`` of its own). This module imports nothing of guard at
import time. Why each choice:

* ``gthread`` workers: a database-bound app waits on the network, so a few
  threads per process overlap those waits, and unlike ``sync`` workers they
  keep HTTP/1.1 connections alive. Each thread holds at most one pooled
  connection, so with ``GUARD_THREADS`` at or below the pool size (SQLAlchemy's
  default 5) a request never waits for a connection; a host needs
  ``workers x (pool_size + max_overflow)`` below PostgreSQL's
  ``max_connections``.
* no ``--preload``: each worker builds its engine after the fork (and
  :class:`guard.wsgi.ForkSafeApplication` rebuilds in a worker that
  inherited one anyway, so workers never share a connection).
* no control socket: guard does not use it, and every gunicorn on a host
  would otherwise claim the same default path.
* no gunicorn access log: its lines carry raw consumer uuids in the path;
  guard's own access log (logger ``guard.access``) is redacted.
* ``timeout`` above the database's statement (30 s) plus connect (10 s)
  timeouts, so a query that hits them ends as a 503 before gunicorn would
  kill the worker.
* a worker sent SIGHUP or SIGUSR2 itself (:func:`post_worker_init`) writes
  its queued decisions and goes on serving, as ``guard serve`` does.
* a request gunicorn cannot parse (bad request line or header, limits) gets
  the contract's JSON error with a request id, not gunicorn's HTML page that
  quoted the request back (:mod:`guard.gunicorn_errors`, installed by
  :func:`post_worker_init` whatever the worker class).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

bind = [os.environ.get("GUARD_BIND", "127.0.0.1:8778")]
workers = int(os.environ.get("GUARD_WORKERS", str(2 * (os.cpu_count() or 1) + 1)))
worker_class = "gthread"
threads = int(os.environ.get("GUARD_THREADS", "4"))
preload_app = False
keepalive = 5
timeout = 60
graceful_timeout = 30
accesslog = None
errorlog = "-"
loglevel = "info"
proc_name = "guard"
control_socket_disable = True

_SETTINGS = (
    "bind", "workers", "worker_class", "threads", "preload_app", "keepalive", "timeout",
    "graceful_timeout", "accesslog", "errorlog", "loglevel", "proc_name",
    "control_socket_disable", "worker_exit", "post_worker_init",
)  # fmt: skip

#: Signals gunicorn's master acts on (SIGHUP: reload the workers; SIGUSR2: a
#: new binary) that a worker leaves to Python's default: ending at once.
WORKER_KEEPS_SERVING_ON = (signal.SIGHUP, signal.SIGUSR2)


def worker_exit(server: Any, worker: Any) -> None:
    """On the worker's way out: write its queued decisions, close its connections.

    The worker served ``guard.wsgi:application``; imported here, at exit, so
    that reading these settings builds nothing.
    """
    from guard import wsgi

    wsgi.close()


def post_worker_init(worker: Any) -> None:
    """In a worker, once it is ready: JSON for unparsable requests; SIGHUP and SIGUSR2 flush.

    Unparsable requests are answered by :func:`guard.gunicorn_errors.handle_error`.

    gunicorn's master takes SIGHUP (new workers; the old ones stop
    gracefully, their queued decisions written by :func:`worker_exit`) and
    SIGUSR2; a worker sent either itself (``pkill -HUP``, ``systemctl kill
    -s HUP``, a logrotate ``postrotate`` that signals every guard process)
    died at once, and the decision-log lines it had queued were lost. It now
    writes them, says where a reload should go, and goes on serving.
    """
    from guard import audit, gunicorn_errors

    gunicorn_errors.install(worker)
    log = logging.getLogger("guard.gunicorn")
    master = os.getppid()

    def _on_signal(signum: int, frame: Any) -> None:
        audit.flush_all()
        log.warning(
            "%s sent to a gunicorn worker: it keeps serving (queued decisions written); "
            "send it to the master, pid %d, to reload the workers",
            signal.Signals(signum).name,
            master,
        )

    for signum in WORKER_KEEPS_SERVING_ON:
        signal.signal(signum, _on_signal)
        signal.siginterrupt(signum, False)  # as gunicorn's own handlers: no EINTR mid-request


def settings() -> dict[str, Any]:
    """These settings by name, for :class:`guard.cmd.serve.GunicornServer`."""
    module = globals()
    return {name: module[name] for name in _SETTINGS}
