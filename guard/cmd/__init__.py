"""The ``guard`` command: one sub-command per module of this package.

Only the chosen sub-command's module is imported, so ``guard policy validate``
does not pay for loading the WSGI stack and ``guard serve`` does not load the
benchmarks. Every command takes oslo.config's ``--config-file`` and
``--config-dir`` (:mod:`guard.cmd.config`); ``guard --version`` prints the
version as oslo.config's ``--version`` does.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from guard import conf as guard_conf
from guard import logsetup
from guard.cmd import config

# sub-command name -> (module under guard.cmd, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the consumers API in a multi-threaded WSGI server"),
    "db": ("db", "database schema management (alembic migrations)"),
    "policy": ("policy", "validate, sample, explain and diff policy files"),
    "load": ("load", "bounded load generator with invariant checks (loopback only)"),
    "bench": ("bench", "run guard's benchmarks side by side with their baselines"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only ``command``'s module is imported and registered."""
    parser = argparse.ArgumentParser(prog="guard", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=guard_conf.version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if name == command:
            module = importlib.import_module(f"guard.cmd.{module_name}")
            module.register(subparsers.add_parser(name, help=help_text))
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    config.add_options(parser, top=True)
    return parser


def _command(argv: list[str]) -> str | None:
    """The sub-command's name: the first word that is not an option or an option's value."""
    takes_value = {"--config-file", "--config-dir"}
    words = iter(argv)
    for word in words:
        if word in takes_value:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``guard`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except logsetup.LoggingConfigError as error:  # from any command that sets logging up
        print(f"guard {args.command}: invalid logging configuration: {error}", file=sys.stderr)
        return 2
    except config.FILE_ERRORS as error:  # from any command that reads the configuration
        print(f"guard {args.command}: invalid configuration: {error}", file=sys.stderr)
        return 2
