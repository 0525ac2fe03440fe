"""``guard serve``: the consumers API in a multi-threaded waitress server.

The database is migrated on start (a SQLite file ``./var/guard.sqlite``
unless configured), the policy file validated (an invalid one refuses the
start with an error naming rule and line), the redacting log filter
installed and the access log on at INFO. Options come from oslo.config files
(``--config-file``); the flags override them.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import Any

import sqlalchemy.exc
import waitress
from oslo_config import cfg
from sqlalchemy.engine import make_url

from guard import conf as guard_conf
from guard import demo, deploy, exception, policy
from guard import log as guard_log

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
        "default: trusted",
    )
    parser.add_argument("--threads", type=int, help="worker threads (default: 8)")
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


def main_pipeline_problem(conf: cfg.ConfigOpts) -> str | None:
    """What keeps the ``main`` pipeline from answering a 401 properly, if anything.

    keystonemiddleware names the identity endpoint in each 401's
    ``WWW-Authenticate``; with neither that URI nor credentials to discover
    it, it fails on every rejected token instead.
    """
    if conf.guard.pipeline != "main":
        return None
    options = conf.keystone_authtoken
    if options.www_authenticate_uri or options.auth_type:
        return None
    return (
        "the main pipeline needs [keystone_authtoken] www_authenticate_uri and the "
        "service's credentials (auth_type, auth_url, ...) in the configuration file"
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
    if args.demo and conf.guard.pipeline != "trusted":
        print("guard serve: --demo prints lines for the trusted pipeline only", file=sys.stderr)
        return 2
    _configure_logging(args.log_level, conf.guard.fingerprint_key)
    try:
        services = deploy.build_services(conf, policy_file=args.policy_file, migrate=True)
    except policy.PolicyFileError as error:
        print(f"guard serve: refusing to start, invalid policy file: {error}", file=sys.stderr)
        return 2
    except (exception.Unavailable, sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
        # The error's text may carry the URL's password: say its kind only.
        print(f"guard serve: cannot use the database ({type(error).__name__})", file=sys.stderr)
        return 1
    app = deploy.build_pipeline(services, conf.guard.pipeline)
    problem = main_pipeline_problem(conf)
    if problem:
        print(f"guard serve: refusing to start: {problem}", file=sys.stderr)
        return 2
    server = waitress.create_server(
        app,
        host=conf.api.bind_host,
        port=conf.api.bind_port,
        threads=conf.api.threads,
        ident="guard",
    )
    base_url = f"http://{_url_host(conf.api.bind_host)}:{server.effective_port}"
    database = make_url(deploy.database_url(conf)).render_as_string(hide_password=True)
    warning = bind_warning(conf.guard.pipeline, conf.api.bind_host)
    if warning:
        print(warning, file=sys.stderr)
    if args.demo:
        demo.seed(services.repository, services.enforcer)
        print(demo.instructions(base_url), flush=True)
    print(
        f"guard serving {base_url} (pipeline {conf.guard.pipeline}, database {database}, "
        f"{conf.api.threads} threads); Ctrl-C stops it.",
        flush=True,
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        services.decision_log.close()
        services.engine.dispose()
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
