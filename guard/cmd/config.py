"""oslo.config's command-line conventions, shared by every ``guard`` command.

``--config-file`` (repeatable, later files win) and ``--config-dir``
(every ``*.conf`` in it, in order) go before or after the sub-command, as
with OpenStack's commands; when neither names a file, oslo.config's default
search for project ``guard`` finds ``/etc/guard/guard.conf``,
``~/.guard/guard.conf`` and the rest. One guard.conf serves every command.
"""

from __future__ import annotations

import argparse
from typing import Any

from oslo_config import cfg

from guard import conf as guard_conf
from guard import conffiles, confoptions, logsetup

#: What reading the configuration files raises for a file an operator named:
#: reported in one line by every command (``guard.cmd.main``), never as a traceback.
FILE_ERRORS = (
    cfg.ConfigFilesNotFoundError,
    cfg.ConfigFilesPermissionDeniedError,
    cfg.ConfigDirNotFoundError,
    cfg.ConfigFileParseError,
    cfg.ConfigFileValueError,
    conffiles.NotARegularFileError,
    confoptions.UnknownOptionError,
    guard_conf.SecretValueError,
)


def given(value: str) -> str:
    """argparse type of a path or URL named on the command line: refused when empty.

    ``--policy-file "$POLICY"`` with the variable unset passed "", which
    read as "not given": the default rules (which may allow more than the
    file meant) or the embedded SQLite database, silently.
    """
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?)")
    return value


def add_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Add the configuration options to ``parser`` and to every sub-command under it.

    Below the top level their default is "not given", so that a value given
    before the sub-command is not replaced by an empty one.
    """
    default: Any = [] if top else argparse.SUPPRESS
    parser.add_argument(
        "--config-file",
        metavar="PATH",
        action="append",
        default=default,
        help="guard.conf to read (repeatable; later files win). Default: oslo.config's search "
        "for project guard (~/.guard/, ~/, /etc/guard/, /etc/)",
    )
    parser.add_argument(
        "--config-dir",
        metavar="DIR",
        action="append",
        default=default,
        help="directory of *.conf files read after --config-file (repeatable)",
    )
    parser.add_argument(
        "-d",
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="log at DEBUG ([DEFAULT] debug)",
    )
    for action in parser._actions:  # the sub-commands' own parsers, at any depth
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if not any("--config-file" in a.option_strings for a in sub._actions):
                    add_options(sub)


def load(args: argparse.Namespace) -> cfg.ConfigOpts:
    """The configuration the command line names (or the default search finds)."""
    conf = guard_conf.load(
        getattr(args, "config_file", None) or [],
        config_dirs=getattr(args, "config_dir", None) or [],
        search=True,
        pipes=True,  # a command reads its configuration once
    )
    if getattr(args, "debug", False):
        conf.set_override("debug", True)
    return conf


def load_and_log(args: argparse.Namespace) -> cfg.ConfigOpts:
    """:func:`load`, then this process's logging from it (oslo.log, redacted)."""
    conf = load(args)
    logsetup.setup(conf)
    return conf
