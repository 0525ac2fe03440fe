"""guard as a module-level WSGI application, for gunicorn, uWSGI and mod_wsgi.

::

    guard db upgrade --config-file /etc/guard/guard.conf      # once, before the workers
    GUARD_CONFIG_FILE=/etc/guard/guard.conf GUARD_PIPELINE=main \\
        gunicorn -c python:guard.gunicorn_conf --workers 4 guard.wsgi:application

``application`` is built on first access and then once in every process
that serves it (:class:`ForkSafeApplication`), so every worker has its own
database engine and pool and its own policy enforcer, which reloads the
policy file on its own. Workers share nothing but the database, where the
consumer generation's compare-and-swap is the only lock.

The configuration file comes from ``GUARD_CONFIG_FILE`` (``[database]
connection``, ``[oslo_policy] policy_file``, ``[guard] fingerprint_key``,
``[guard] pipeline``) and ``GUARD_PIPELINE`` overrides the pipeline. The
schema is not migrated here: N workers racing through alembic at boot is a
hazard, so migrations run once, before the workers start.

:func:`run_gunicorn` embeds gunicorn for a command (``guard serve --workers
N``) that wants to start it with an application it builds itself.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from guard import conf as guard_conf
from guard import deploy
from guard import log as guard_log
from guard.policy.paths import resolve_policy_file

CONFIG_FILE_ENV = "GUARD_CONFIG_FILE"
PIPELINE_ENV = "GUARD_PIPELINE"
LOG_LEVEL_ENV = "GUARD_LOG_LEVEL"
LOG_CONFIG_ENV = "GUARD_LOG_CONFIG"
LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"

WSGIApp = Callable[..., Any]
Built = tuple[deploy.Services, WSGIApp]


def configure_logging(fingerprint_key: str | None, level: str = "INFO") -> None:
    """guard's logs, redacted: from ``GUARD_LOG_CONFIG`` if set, else on stderr.

    ``GUARD_LOG_CONFIG`` names a ``logging.config.fileConfig`` file such as
    ``etc/guard/logging.conf``. Without it, guard's loggers (the access log at
    ``level``) write to stderr: gunicorn configures only its own loggers, so a
    worker would otherwise drop guard's INFO lines. Either way the redacting
    filter goes on every handler.
    """
    config_file = os.environ.get(LOG_CONFIG_ENV)
    if config_file:
        logging.config.fileConfig(config_file, disable_existing_loggers=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(logging.WARNING)
        logging.getLogger("guard").setLevel(level)
    guard_log.install(fingerprint_key)


def build_from(
    conf: Any,
    *,
    pipeline: str | None = None,
    policy_file: str | None = None,
    log_level: str | None = None,
) -> Built:
    """The services and the pipeline for a loaded ``conf`` (no migration; see the module doc).

    Raises ``guard.policy.PolicyFileError`` when the policy file is invalid,
    missing or unreadable
    (and ``guard.deploy.PipelineError`` when the pipeline cannot run), so a
    worker that cannot serve as configured fails to boot instead of serving
    something else. ``log_level`` defaults to ``GUARD_LOG_LEVEL``, else INFO.
    """
    level = log_level or os.environ.get(LOG_LEVEL_ENV) or "INFO"
    configure_logging(conf.guard.fingerprint_key, level)
    services = deploy.build_services(conf, policy_file=resolve_policy_file(conf, policy_file))
    return services, deploy.build_pipeline(services, pipeline or conf.guard.pipeline)


def build_from_environment() -> Built:
    """:func:`build_from` the file ``GUARD_CONFIG_FILE`` names, with ``GUARD_PIPELINE``."""
    config_file = os.environ.get(CONFIG_FILE_ENV) or None
    conf = guard_conf.load([config_file] if config_file else [])
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

    def __init__(self, builder: Callable[[], Built]) -> None:
        self._builder = builder
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._built: Built | None = None

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
                        self._built[0].engine.dispose(close=False)
                    self._built = self._builder()
                    self._pid = pid
        assert self._built is not None
        return self._built[1]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self._current()(environ, start_response)

    def close(self) -> None:
        """A worker on its way out: write the queued decisions, close the connections."""
        if self._built is not None and self._pid == os.getpid():
            self._built[0].close()


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


class GunicornServer(BaseApplication):
    """gunicorn, embedded: guard's settings from :mod:`guard.gunicorn_conf` plus overrides.

    ``factory`` (e.g. a :func:`build_from` partial) runs in each worker, and
    again in any process that inherited its result (:class:`ForkSafeApplication`).
    """

    def __init__(self, factory: Callable[[], Built], settings: Mapping[str, Any]) -> None:
        self._factory = factory
        self._settings = dict(settings)
        super().__init__()

    def load_config(self) -> None:
        from guard import gunicorn_conf

        for name, value in {**gunicorn_conf.settings(), **self._settings}.items():
            if name in self.cfg.settings:  # gunicorn versions differ in their settings
                self.cfg.set(name, value)

    def load(self) -> WSGIApp:
        global _application
        # Kept as the module's application so that gunicorn_conf.worker_exit closes it.
        _application = ForkSafeApplication(self._factory).prepare()
        return _application


def run_gunicorn(
    factory: Callable[[], Built],
    *,
    bind: str,
    workers: int,
    threads: int | None = None,
    **settings: Any,
) -> None:
    """Serve the application ``factory()`` builds with gunicorn until it is stopped.

    ``settings`` are further gunicorn settings (``timeout``, ``keepalive``,
    ...). Returns when the master exits (SIGTERM, SIGINT); gunicorn exits the
    process with status 3 when workers cannot boot (e.g. an invalid policy).
    """
    overrides: dict[str, Any] = {"bind": [bind], "workers": workers, **settings}
    if threads is not None:
        overrides["threads"] = threads
    GunicornServer(factory, overrides).run()
