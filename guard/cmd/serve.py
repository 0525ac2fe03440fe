"""``guard serve``: the consumers API in a multi-threaded waitress server (or gunicorn).

The database is migrated on start (a SQLite file ``./var/guard.sqlite``
unless configured), the policy file validated (an invalid one refuses the
start with an error naming rule and line), logging set up by oslo.log with
guard's redacting filter on every handler, and the access log on at INFO.
Options come from oslo.config (``--config-file``, ``--config-dir``, else the
default search); the flags override them.

``--workers N`` embeds gunicorn (:class:`GunicornServer`): the application
is built in each worker after the fork (:class:`guard.wsgi.ForkSafeApplication`).
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy.exc
import waitress
from gunicorn.app.base import BaseApplication
from oslo_config import cfg

from guard import audit, deploy, exception, gunicorn_conf, logsetup, policy, wsgi
from guard import conf as guard_conf
from guard.cmd import config
from guard.cmd.parse_errors import answer_parse_errors_in_json
from guard.db import api as db_api
from guard.db import errors as db_errors
from guard.db import migration, sqlitefile
from guard.policy.paths import resolve_policy_file
from guard.tools import demo

LOG = logging.getLogger("guard.serve")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port, 0 for any free one (default: 8778)")
    parser.add_argument(
        "--database",
        metavar="URL",
        type=config.given,
        help="SQLAlchemy URL (default: SQLite file ./var/guard.sqlite)",
    )
    parser.add_argument(
        "--policy-file", metavar="PATH", type=config.given, help="operator policy YAML file"
    )
    parser.add_argument(
        "--pipeline",
        choices=guard_conf.PIPELINES,
        help="trusted (identity headers from a proxy) or main (keystonemiddleware auth_token); "
        "default: [guard] pipeline (main), or trusted with --demo",
    )
    parser.add_argument("--threads", type=int, help="worker threads (default: 8)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run N gunicorn worker processes instead of one waitress process "
        "(use PostgreSQL: the processes share the database)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of guard's loggers (adds guard=LEVEL to [DEFAULT] default_log_levels; "
        "default: INFO, DEBUG with [DEFAULT] debug)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="seed demo projects, users and consumers and print curl lines to try "
        "(in ./var/guard.sqlite unless --database is given, whatever the configuration says)",
    )
    parser.set_defaults(func=serve)


def _apply_flags(conf: Any, args: argparse.Namespace) -> None:
    """Command-line flags override the configuration files."""
    overrides = (
        ("connection", args.database, "database"),
        ("pipeline", args.pipeline, "guard"),
        ("bind_host", args.host, "api"),
        ("bind_port", args.port, "api"),
        ("threads", args.threads, "api"),
    )
    for name, value, group in overrides:
        if value is not None:
            conf.set_override(name, value, group=group)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(pipeline: str, host: str) -> str | None:
    """The warning for a ``trusted`` pipeline reachable from other machines, if any."""
    if pipeline != "trusted" or is_loopback(host):
        return None
    return (
        f"WARNING: the trusted pipeline believes the identity headers of any client, and "
        f"{host} is reachable from other machines. Bind to 127.0.0.1, use --pipeline main, "
        "or let only an authenticating proxy that sets those headers reach this port."
    )


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; 2 when the configuration is refused."""
    try:
        conf = config.load(args)
        _apply_flags(conf, args)
    except (cfg.Error, ValueError) as error:
        print(f"guard serve: invalid configuration: {error}", file=sys.stderr)
        return 2
    if args.demo and args.database is None:
        # The demo resets its rows: never in a database found by the config
        # search (an operator's /etc/guard/guard.conf), only in the embedded file.
        conf.set_override("connection", None, group="database")
    if args.demo and args.pipeline is None:
        conf.set_override("pipeline", "trusted", group="guard")
    if args.demo and conf.guard.pipeline != "trusted":
        print("guard serve: --demo prints lines for the trusted pipeline only", file=sys.stderr)
        return 2
    if args.log_level:
        logsetup.set_level(conf, args.log_level)
    logsetup.setup(conf)
    try:
        # Resolved once, here: a relative --policy-file is relative to this cwd.
        args.policy_file = resolve_policy_file(conf, args.policy_file)
        services = deploy.build_services(conf, policy_file=args.policy_file, migrate=True)
    except policy.PolicyFileError as error:
        print(f"guard serve: refusing to start, invalid policy file: {error}", file=sys.stderr)
        return 2
    except (exception.Unavailable, sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
        # The driver's text may carry the URL's password: say what failed in
        # guard's own words (as `guard db` does), else the error's kind only.
        cause = error.__cause__ if isinstance(error, exception.Unavailable) else error
        if isinstance(cause, sqlalchemy.exc.SQLAlchemyError):
            detail = db_errors.describe(cause)
        elif isinstance(
            error, migration.MigrationError | db_api.DatabaseURLError | sqlitefile.NotWritable
        ):
            # guard's own words
            detail = str(error)
        else:
            detail = type(error).__name__
        print(f"guard serve: cannot use the database: {detail}", file=sys.stderr)
        return 1
    try:
        app = deploy.build_pipeline(services, conf.guard.pipeline)
    except deploy.PipelineError as error:
        print(f"guard serve: refusing to start: {error}", file=sys.stderr)
        return 2
    warning = bind_warning(conf.guard.pipeline, conf.api.bind_host)
    if warning:
        print(warning, file=sys.stderr)
    if args.workers:
        return _run_gunicorn(args, conf, services)
    return _run_waitress(args, conf, services, app)


def _announce(args: argparse.Namespace, conf: Any, services: deploy.Services, port: int) -> None:
    """Seed the demo (with ``--demo``) and print where guard serves."""
    base_url = f"http://{_url_host(conf.api.bind_host)}:{port}"
    if args.demo:
        demo.seed(services.repository, services.enforcer)
        print(demo.instructions(base_url), flush=True)
    database = db_api.display_url(deploy.database_url(conf))
    processes = f"{args.workers} gunicorn workers x " if args.workers else ""
    print(
        f"guard serving {base_url} (pipeline {conf.guard.pipeline}, database {database}, "
        f"{processes}{conf.api.threads} threads); Ctrl-C stops it.",
        flush=True,
    )


def _run_waitress(args: argparse.Namespace, conf: Any, services: deploy.Services, app: Any) -> int:
    """One process, ``threads`` worker threads: the default."""
    try:
        server = waitress.create_server(
            app,
            host=conf.api.bind_host,
            port=conf.api.bind_port,
            threads=conf.api.threads,
            ident="guard",
            max_request_body_size=waitress_body_limit(conf),
        )
    except (OSError, ValueError) as error:
        # The port taken (a second guard serve), an address not on this host,
        # a host name that does not resolve: one line, not a traceback.
        services.close()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        where = f"{_url_host(conf.api.bind_host)}:{conf.api.bind_port}"
        print(f"guard serve: cannot listen on {where}: {reason}", file=sys.stderr)
        return 1
    answer_parse_errors_in_json(server)
    # Ctrl-C is a clean stop from the moment "guard serving" is printed.
    try:
        _announce(args, conf, services, server.effective_port)
        audit.flush_on_sigterm()  # queued decision-log lines are written before a SIGTERM stop
        _keep_serving_on_signals()
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        services.close()
    return 0


def waitress_body_limit(conf: Any) -> int:
    """The most body waitress reads before it answers 413 itself.

    waitress reads a request's whole body (spilling past 512 KB to a
    temporary file) before the application runs, up to 1 GiB by default: a
    client that never authenticates made it take in a gigabyte per request
    before its 401. Sixteen times guard's own limit (at least 1 MiB): a body
    over guard's limit but under this one still gets the contract's order
    (401, 404, ... before 413); a larger one is refused as it arrives (the
    contract's JSON 413, :mod:`guard.cmd.parse_errors`).
    """
    limit: int = conf.oslo_middleware.max_request_body_size
    return max(1 << 20, 16 * limit)


def _keep_serving_on_signals() -> None:
    """On SIGHUP, SIGUSR1 or SIGUSR2, write the queued decisions and go on serving.

    Operators send SIGHUP to reload a service (``systemctl reload``, a
    logrotate ``postrotate``), SIGUSR2 (SIGUSR1 before) to an OpenStack
    service for its Guru Meditation Report, SIGUSR1 to gunicorn to reopen
    its logs. Python's default for each ends the process at once: the
    service stopped and its queued decision-log lines were lost. guard
    reloads its policy file on its own; nothing else is reloaded.
    """

    def _on_signal(signum: int, frame: Any) -> None:
        audit.flush_all()
        LOG.warning(
            "%s: guard serve keeps serving; the policy file reloads on its own, "
            "other configuration changes need a restart",
            signal.Signals(signum).name,
        )

    for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, _on_signal)


def _run_gunicorn(args: argparse.Namespace, conf: Any, services: deploy.Services) -> int:
    """``--workers N``: gunicorn processes sharing the database (see guard.wsgi).

    The database was migrated and the policy checked here, once; each worker
    builds its own engine, enforcer and decision log after the fork.
    """
    if not conf.api.bind_port:
        print("guard serve: --workers needs a fixed --port", file=sys.stderr)
        return 2
    _announce(args, conf, services, conf.api.bind_port)
    services.close()
    run_gunicorn(
        functools.partial(
            wsgi.build_from, conf, pipeline=conf.guard.pipeline, policy_file=args.policy_file
        ),
        bind=f"{_url_host(conf.api.bind_host)}:{conf.api.bind_port}",
        workers=args.workers,
        threads=conf.api.threads,
    )
    return 0


class GunicornServer(BaseApplication):
    """gunicorn, embedded: :mod:`guard.gunicorn_conf`'s settings plus overrides.

    ``factory`` (e.g. a :func:`guard.wsgi.build_from` partial) runs in each
    worker, and again in any process that inherited its result
    (:class:`guard.wsgi.ForkSafeApplication`). Its own ``worker_exit`` closes
    the application it built (queued decisions written, connections closed).
    """

    def __init__(self, factory: Callable[[], deploy.Deployment], settings: Mapping[str, Any]):
        self._application = wsgi.ForkSafeApplication(factory)
        self._settings = dict(settings)
        super().__init__()

    def load_config(self) -> None:
        settings = {**gunicorn_conf.settings(), **self._settings, "worker_exit": self.worker_exit}
        for name, value in settings.items():
            if name in self.cfg.settings:  # gunicorn versions differ in their settings
                self.cfg.set(name, value)

    def load(self) -> wsgi.ForkSafeApplication:
        return self._application.prepare()

    def worker_exit(self, server: Any, worker: Any) -> None:
        """gunicorn's hook, in a worker on its way out."""
        self._application.close()


def run_gunicorn(
    factory: Callable[[], deploy.Deployment],
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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
