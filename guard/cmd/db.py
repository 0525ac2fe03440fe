"""``guard db upgrade``: bring the consumers database to the current schema.

The URL comes from ``--database``, else from ``[database] connection`` of
``--config-file``, else the embedded default ``sqlite:///var/guard.sqlite``
(as ``guard serve`` uses). Running it again on an up-to-date database
changes nothing. The URL is never printed: it may carry a password.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy
from oslo_config import cfg

from guard import conf as guard_conf
from guard import deploy, exception
from guard.db import migration


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``upgrade`` (the only action) and its options to ``parser``."""
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="apply the schema migrations (idempotent)")
    upgrade.add_argument("--database", metavar="URL", help="SQLAlchemy URL of the database")
    upgrade.add_argument(
        "--config-file", metavar="FILE", type=Path, help="guard.conf to read [database] from"
    )
    upgrade.add_argument(
        "--revision", default="head", help="target revision (default: %(default)s)"
    )
    upgrade.set_defaults(func=run_upgrade)


def database_url(args: argparse.Namespace) -> str:
    """The URL to migrate: ``--database``, else the configured one, as ``guard serve`` finds it."""
    if args.database:
        return args.database
    # The config file's [database] connection, else deploy's SQLite default.
    conf = guard_conf.load([str(args.config_file)] if args.config_file else ())
    return deploy.database_url(conf)


def run_upgrade(args: argparse.Namespace) -> int:
    """Apply the migrations; print the resulting revision. Exit status 1 on failure."""
    try:
        url = database_url(args)
        migration.upgrade(url, args.revision)
        revision = migration.current(url)
    except (sqlalchemy.exc.SQLAlchemyError, exception.Unavailable) as error:
        # The error text may name the host, user or password: print its kind only.
        print(f"guard db upgrade: database error ({type(error).__name__})", file=sys.stderr)
        return 1
    except (ValueError, cfg.Error) as error:
        print(f"guard db upgrade: {error}", file=sys.stderr)
        return 1
    print(f"database schema at revision {revision}")
    return 0
