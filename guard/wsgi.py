"""guard as a module-level WSGI application, for gunicorn, uWSGI and mod_wsgi.

::

    guard db upgrade --config-file /etc/guard/guard.conf      # once, before the workers
    gunicorn -c python:guard.gunicorn_conf --workers 4 guard.wsgi:application

``application`` is built on first access and then once in every process
that serves it (:class:`ForkSafeApplication`), so every worker has its own
database engine and pool and its own policy enforcer, which reloads the
policy file on its own. Workers share nothing but the database, where the
consumer generation's compare-and-swap is the only lock.

The configuration is oslo.config's, as for Placement's WSGI application:
``GUARD_CONFIG_FILE`` and ``GUARD_CONFIG_DIR`` name a file and a directory
(each a ``:``-separated list), else the default search for project ``guard``
finds ``/etc/guard/guard.conf`` and the rest; ``GUARD_PIPELINE`` overrides
``[guard] pipeline``. Logging is oslo.log's, from that configuration
(:func:`guard.logsetup.setup`). The schema is not migrated here: N workers
racing through alembic at boot is a hazard, so migrations run once, before
the workers start, and a worker on a database not at the schema head
answers 503 on the healthcheck.

uWSGI and mod_wsgi look ``application`` up in the module's dictionary, where
a PEP 562 ``__getattr__`` is never asked: inside them (their module
``uwsgi`` or ``mod_wsgi`` is loaded) the application is built when this
module is imported. Older uWSGI releases run no Python thread of an
application unless ``enable-threads`` is set, and guard's decision log is
written by a thread of its own; uWSGI's request log prints raw paths unless
``disable-logging`` is set. Under a uWSGI without threads or that logging on,
the import raises :class:`guard.deploy.PipelineError` saying so (with
``need-app``, uWSGI then exits; :func:`check_uwsgi`)::

    uwsgi --module guard.wsgi:application --master --processes 4 --enable-threads \
          --need-app --disable-logging --http-socket 127.0.0.1:8778 \
          --hook-master-start "unix_signal:15 gracefully_kill_them_all"

The last option makes SIGTERM (systemd's stop) a graceful shutdown, as
devstack sets it for OpenStack services under uWSGI: uWSGI 2.0's own SIGTERM
reloads brutally. A worker on its way out then writes its queued decisions
(``uwsgi.atexit`` is :func:`close`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from oslo_config import cfg

from guard import conf as guard_conf
from guard import deploy, logsetup
from guard.policy.paths import resolve_policy_file

CONFIG_FILE_ENV = "GUARD_CONFIG_FILE"
CONFIG_DIR_ENV = "GUARD_CONFIG_DIR"
PIPELINE_ENV = "GUARD_PIPELINE"

WSGIApp = Callable[..., Any]


def build_from(
    conf: cfg.ConfigOpts, *, pipeline: str | None = None, policy_file: str | None = None
) -> deploy.Deployment:
    """Logging, services and pipeline for a loaded ``conf`` (no migration; see the module doc).

    Raises ``guard.policy.PolicyFileError`` when the policy file is invalid,
    missing or unreadable
    (and ``guard.deploy.PipelineError`` when the pipeline cannot run), so a
    worker that cannot serve as configured fails to boot instead of serving
    something else.
    """
    logsetup.setup(conf)
    return deploy.build(
        conf,
        pipeline=pipeline or conf.guard.pipeline,
        policy_file=resolve_policy_file(conf, policy_file),
    )


def _paths(name: str) -> list[str]:
    return [path for path in os.environ.get(name, "").split(os.pathsep) if path]


def build_from_environment() -> deploy.Deployment:
    """:func:`build_from` the configuration the environment names (see the module doc)."""
    conf = guard_conf.load(
        _paths(CONFIG_FILE_ENV), config_dirs=_paths(CONFIG_DIR_ENV), search=True
    )
    if not conf.database.connection:
        # guard serve's embedded ./var/guard.sqlite would be made, empty, in
        # the server's working directory, and every worker would answer 503
        # (a unit without GUARD_CONFIG_FILE): the worker refuses to boot.
        raise deploy.PipelineError(
            f"no database configured: set [database] connection in the guard.conf "
            f"{CONFIG_FILE_ENV} names (else /etc/guard/guard.conf)"
        )
    return build_from(conf, pipeline=os.environ.get(PIPELINE_ENV) or None)


class ForkSafeApplication:
    """The pipeline, built once in each process that serves it.

    Whether a server imports the application before forking its workers
    (gunicorn ``--preload``, uWSGI without ``lazy-apps``) or after, a worker
    must not use its parent's pooled connections (two processes on one socket
    corrupt both's traffic), nor count on the parent's threads (the decision
    log's writer does not survive a fork). So a process that finds the
    application built by another pid drops the inherited pool without closing
    the parent's sockets (SQLAlchemy's ``dispose(close=False)`` recipe) and
    builds its own. :meth:`prepare` builds at once, so that an invalid policy
    file stops a worker's boot rather than failing its first request.
    """

    def __init__(self, builder: Callable[[], deploy.Deployment]) -> None:
        self._builder = builder
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._built: deploy.Deployment | None = None

    def prepare(self) -> ForkSafeApplication:
        """Build the pipeline for this process now (raises what building raises)."""
        self._current()
        return self

    def _current(self) -> WSGIApp:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    if self._built is not None:
                        self._built.services.engine.dispose(close=False)
                    self._built = self._builder()
                    self._pid = pid
        assert self._built is not None
        return self._built.app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self._current()(environ, start_response)

    def close(self) -> None:
        """A worker on its way out: write the queued decisions, close the connections."""
        if self._built is not None and self._pid == os.getpid():
            self._built.close()


_application: ForkSafeApplication | None = None
_application_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    # PEP 562: ``application`` is built when a server first looks it up, so
    # importing this module (for the gunicorn hooks, or in a test) builds nothing.
    global _application
    if name != "application":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _application_lock:
        if _application is None:
            _application = ForkSafeApplication(build_from_environment).prepare()
        return _application


def close() -> None:
    """Close this process's application, if it has one (see :meth:`ForkSafeApplication.close`)."""
    if _application is not None:
        _application.close()


#: Servers that embed Python and read ``application`` from the module's
#: dictionary, by the module each of them provides inside its processes.
EMBEDDING_SERVERS = ("uwsgi", "mod_wsgi")


def check_uwsgi(has_threads: bool, options: Mapping[str, Any]) -> None:
    """Raise ``PipelineError`` when guard cannot run in this uWSGI process.

    ``has_threads`` and ``options`` are the ``uwsgi`` module's ``has_threads``
    and ``opt``.

    * Python threads off (``has_threads`` false: a uWSGI release that does
      not turn them on by itself, run without ``enable-threads``): uWSGI
      holds the interpreter while it waits for a request, so the decision
      log's writer thread would run only while requests do, and its queued
      lines could wait forever on an idle worker and be lost when it stops.
      (uWSGI 2.0.30 and 2.0.31 on Python 3.11 turn threads on by themselves:
      ``has_threads`` is 1 without the option.)
    * No ``disable-logging``: uWSGI logs every request's path, raw consumer
      uuids included (guard's own access line is redacted).
    * One of uWSGI's conditional request logs on (``log-4xx``: every 404 of a
      consumer; ``log-zero``: every 204 of a DELETE; ``log-5xx``,
      ``log-slow``, ``log-big``, ``log-sendfile``): uWSGI logs those
      requests' paths in spite of ``disable-logging``.
    """
    if not has_threads:
        raise deploy.PipelineError(
            "uWSGI runs no Python thread here, and guard's decision log is written by a "
            "thread: add --enable-threads (enable-threads = true in an ini file)"
        )
    if _uwsgi_value(options, "disable-logging") not in (True, "true", "1", "yes", "on"):
        raise deploy.PipelineError(
            "uWSGI's request log prints each request's path, raw consumer ids included: add "
            "--disable-logging (disable-logging = true); guard logs each request, redacted"
        )
    for name in _CONDITIONAL_REQUEST_LOGS:
        if _uwsgi_value(options, name) not in (None, "", "0", "false", "off", "no"):
            raise deploy.PipelineError(
                f"uWSGI's --{name} logs the paths of the requests it selects, raw consumer ids "
                f"included, even with --disable-logging: remove {name}; guard logs each "
                "request, redacted"
            )


#: uWSGI's options that log a request's line whatever ``disable-logging`` says.
_CONDITIONAL_REQUEST_LOGS = (
    "log-4xx",
    "log-5xx",
    "log-zero",
    "log-slow",
    "log-big",
    "log-sendfile",
)


def _uwsgi_value(options: Mapping[str, Any], name: str) -> object:
    """An option of ``uwsgi.opt`` as text in lower case (True for a bare flag), the last
    one given when it is repeated; None when not given. uWSGI reads 'True' and 'ON' as true."""
    value = options.get(name)
    value = value[-1] if isinstance(value, list) and value else value
    value = value.decode() if isinstance(value, bytes) else value
    return value.strip().lower() if isinstance(value, str) else value


if "uwsgi" in sys.modules:
    _uwsgi = sys.modules["uwsgi"]
    check_uwsgi(bool(getattr(_uwsgi, "has_threads", False)), getattr(_uwsgi, "opt", {}))
    # uWSGI's hook in a worker on its way out (gunicorn's is worker_exit): the
    # decisions it had queued are written and the decision log's thread ends;
    # without it a graceful stop lost them, and waited out uWSGI's 60 s mercy
    # for that thread.
    setattr(_uwsgi, "atexit", close)  # noqa: B010 (the uwsgi module is built by uWSGI)
if any(server in sys.modules for server in EMBEDDING_SERVERS):
    application = __getattr__("application")
