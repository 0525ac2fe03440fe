"""``guard serve``: the consumers API in a multi-threaded waitress server (or gunicorn).

The database is migrated on start (a SQLite file ``./var/guard.sqlite``
unless configured), the policy file validated (an invalid one refuses the
start with an error naming rule and line), the redacting log filter
installed and the access log on at INFO. Options come from oslo.config files
(``--config-file``); the flags override them.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import sys
from typing import Any

import sqlalchemy.exc
import waitress
from oslo_config import cfg
from sqlalchemy.engine import make_url

from guard import conf as guard_conf
from guard import deploy, exception, policy
from guard import log as guard_log
from guard.policy.paths import resolve_policy_file
from guard.tools import demo

LOG = logging.getLogger("guard.serve")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port, 0 for any free one (default: 8778)")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="SQLAlchemy URL (default: SQLite file ./var/guard.sqlite)",
    )
    parser.add_argument("--policy-file", metavar="PATH", help="operator policy YAML file")
    parser.add_argument(
        "--config-file",
        metavar="PATH",
        action="append",
        default=[],
        help="guard.conf file (may be repeated; later files win)",
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
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of guard's loggers on stderr (default: %(default)s)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="seed demo projects, users and consumers and print curl lines to try",
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


def _configure_logging(level: str, fingerprint_key: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("guard").setLevel(level)
    guard_log.install(fingerprint_key)


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; 2 when the configuration is refused."""
    try:
        conf = guard_conf.load(args.config_file)
        _apply_flags(conf, args)
    except (cfg.Error, ValueError) as error:
        print(f"guard serve: invalid configuration: {error}", file=sys.stderr)
        return 2
    if args.demo and args.pipeline is None:
        conf.set_override("pipeline", "trusted", group="guard")
    if args.demo and conf.guard.pipeline != "trusted":
        print("guard serve: --demo prints lines for the trusted pipeline only", file=sys.stderr)
        return 2
    _configure_logging(args.log_level, conf.guard.fingerprint_key)
    try:
        # Resolved once, here: a relative --policy-file is relative to this cwd.
        args.policy_file = resolve_policy_file(conf, args.policy_file)
        services = deploy.build_services(conf, policy_file=args.policy_file, migrate=True)
    except policy.PolicyFileError as error:
        print(f"guard serve: refusing to start, invalid policy file: {error}", file=sys.stderr)
        return 2
    except (exception.Unavailable, sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
        # The error's text may carry the URL's password: say its kind only.
        print(f"guard serve: cannot use the database ({type(error).__name__})", file=sys.stderr)
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
    database = make_url(deploy.database_url(conf)).render_as_string(hide_password=True)
    processes = f"{args.workers} gunicorn workers x " if args.workers else ""
    print(
        f"guard serving {base_url} (pipeline {conf.guard.pipeline}, database {database}, "
        f"{processes}{conf.api.threads} threads); Ctrl-C stops it.",
        flush=True,
    )


def _run_waitress(args: argparse.Namespace, conf: Any, services: deploy.Services, app: Any) -> int:
    """One process, ``threads`` worker threads: the default."""
    server = waitress.create_server(
        app,
        host=conf.api.bind_host,
        port=conf.api.bind_port,
        threads=conf.api.threads,
        ident="guard",
    )
    _announce(args, conf, services, server.effective_port)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        services.close()
    return 0


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
    from guard import wsgi  # gunicorn is loaded only for --workers

    wsgi.run_gunicorn(
        functools.partial(
            wsgi.build_from,
            conf,
            pipeline=conf.guard.pipeline,
            policy_file=args.policy_file,
            log_level=args.log_level,
        ),
        bind=f"{_url_host(conf.api.bind_host)}:{conf.api.bind_port}",
        workers=args.workers,
        threads=conf.api.threads,
    )
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
