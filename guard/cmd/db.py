"""``guard db upgrade`` and ``guard db version``: the consumers database's schema.

The URL comes from ``--database``, else from ``[database] connection`` of
the configuration (``--config-file``, ``--config-dir`` or oslo.config's
default search, as for every ``guard`` command). With neither, only
``--demo`` uses the embedded default ``sqlite:///var/guard.sqlite`` (as
``guard serve --demo`` does): a production host that lost its
configuration must not get a new, empty SQLite file.

Both commands name the database they work on, with its credentials
replaced by ``***``, and say what failed in words an operator can act on
(:mod:`guard.db.errors`), never in the driver's text, which may carry the
password. Exit status: 0 done (``version``: at the head), 1 failed (or not
at the head), 2 no database named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy
from oslo_config import cfg
from sqlalchemy.engine import make_url

from guard import exception
from guard.cmd import config
from guard.db import api, errors, migration, sqlitefile

#: Exit status when no database is named (a usage error, as argparse's).
NO_DATABASE = 2
NO_DATABASE_HELP = (
    "no database configured: set [database] connection in guard.conf (--config-file) or pass "
    "--database URL; --demo uses the embedded default sqlite:///var/guard.sqlite"
)
NOT_AT_HEAD_HELP = "run guard db upgrade"


class NoDatabase(ValueError):
    """Neither ``--database``, nor a configured connection, nor ``--demo``."""


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``upgrade`` and ``version`` and their options to ``parser``."""
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="apply the schema migrations (idempotent)")
    _database_options(upgrade)
    upgrade.add_argument(
        "--revision",
        default="head",
        type=config.given,  # "" made alembic fail an assertion: 'AssertionError', exit 1
        help="target revision (default: %(default)s)",
    )
    upgrade.set_defaults(func=run_upgrade)
    version = actions.add_parser(
        "version", help="print the database's schema revision (exit 1 when not at the head)"
    )
    _database_options(version)
    version.set_defaults(func=run_version)


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database", metavar="URL", type=config.given, help="SQLAlchemy URL of the database"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="with no database configured, use the embedded default sqlite:///var/guard.sqlite",
    )


def database_url(args: argparse.Namespace) -> str:
    """The URL to work on: ``--database``, else the configured one, else (``--demo``) the default.

    ``NoDatabase`` when none is named and ``--demo`` is not given.
    """
    if args.database:
        return str(args.database)
    # The configuration's [database] connection (found as for every guard
    # command: guard.cmd.config adds --config-file/--config-dir to each).
    conf = config.load_and_log(args)
    if conf.database.connection:
        return str(conf.database.connection)
    if not args.demo:
        raise NoDatabase(NO_DATABASE_HELP)
    # Imported here: the WSGI stack it loads (keystonemiddleware) would
    # double the start-up time of every other ``guard db`` run.
    from guard import deploy

    return deploy.database_url(conf)


def run_upgrade(args: argparse.Namespace) -> int:
    """Apply the migrations to the named database; print it and the resulting revision."""
    url = _url_or_none(args, "upgrade")
    if url is None:
        return NO_DATABASE
    try:
        print(f"guard db upgrade: {api.display_url(url)}", flush=True)
        sqlitefile.check_writable(url)  # SQLite's own refusal names no file
        migration.upgrade(url, args.revision)
        revision = migration.current(url)
    except Exception as error:
        return _failed("upgrade", error)
    print(f"database schema at revision {revision}")
    return 0


def run_version(args: argparse.Namespace) -> int:
    """Print the named database's schema revision; exit 1 unless it is at the head."""
    url = _url_or_none(args, "version")
    if url is None:
        return NO_DATABASE
    try:
        print(f"guard db version: {api.display_url(url)}", flush=True)
        if not _sqlite_file_exists(url):
            print(
                "guard db version: the SQLite file does not exist: " + NOT_AT_HEAD_HELP,
                file=sys.stderr,
            )
            return 1
        revision = migration.current(url)
    except Exception as error:
        return _failed("version", error)
    head = migration.head()
    shown = migration.shown_revision(revision) if revision else "none"
    print(f"database schema at revision {shown} (head: {head})")
    if revision != head:
        unknown = migration.unknown_revisions([revision] if revision else [])
        if unknown:  # no upgrade reaches the head from there
            print(f"guard db version: {migration.unknown_revision_help(unknown)}", file=sys.stderr)
            return 1
        state = "has no schema" if revision is None else "is not at the head"
        print(f"guard db version: the database {state}: {NOT_AT_HEAD_HELP}", file=sys.stderr)
        return 1
    return 0


def _url_or_none(args: argparse.Namespace, action: str) -> str | None:
    try:
        return database_url(args)
    except (NoDatabase, cfg.Error) as error:
        print(f"guard db {action}: {error}", file=sys.stderr)
        return None


def _sqlite_file_exists(url: str) -> bool:
    """Whether ``url`` names a database other than a SQLite file that is missing.

    Connecting to a missing file would create it: reading a version must not.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def _failed(action: str, error: Exception) -> int:
    """Say what failed (never the driver's text: it may name the password); status 1."""
    if isinstance(error, sqlalchemy.exc.SQLAlchemyError):
        detail = errors.describe(error)
    elif isinstance(error, exception.Unavailable):
        detail = "the database is unavailable"
    elif isinstance(error, TimeoutError):
        detail = str(error)
    else:
        detail = f"{type(error).__name__}"
        if isinstance(error, ValueError | cfg.Error):
            detail = str(error)
    print(f"guard db {action}: {detail}", file=sys.stderr)
    return 1
