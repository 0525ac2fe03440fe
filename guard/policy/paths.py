"""Which policy file an operator named, found as they meant it, or a loud error.

A policy file given on the command line (``guard policy validate FILE``,
``guard serve --policy-file FILE``) is relative to the working directory, as
any command-line path is. ``[oslo_policy] policy_file`` from a configuration
file is found as oslo.config finds files (``ConfigOpts.find_file``: the
configuration directory and files' directories, then the standard ones).

oslo.policy reads a file it cannot find as "no policy file": the defaults,
which may allow more than the operator wrote. guard does so only for oslo's
default name (``policy.yaml``) left unset; a file named explicitly that is
missing or unreadable is :class:`PolicyFileMissing`, which stops a start.
"""

from __future__ import annotations

import os

from oslo_config import cfg
from oslo_policy import opts

from guard.policy.errors import PolicyFileError, Problem
from guard.policy.reload import read_policy_text

#: oslo.policy's default ``[oslo_policy] policy_file``: not finding it means the defaults.
OSLO_DEFAULT_POLICY_FILE = "policy.yaml"


class PolicyFileMissing(PolicyFileError):
    """A policy file named explicitly does not exist or cannot be read.

    Its message names the file as the operator wrote it and where it was
    looked for: it is for the operator starting the service or the tool,
    never for a client.
    """

    def __init__(self, named: str, looked_at: str | None, reason: str) -> None:
        where = f" ({looked_at})" if looked_at and looked_at != named else ""
        super().__init__([Problem(f"{named}{where}", None, None, reason)])
        self.args = (f"policy file {named}{where}: {reason}",)
        self.named = named


def command_line_path(path: str) -> str:
    """An absolute path for ``path`` as given on a command line (relative to the cwd)."""
    return os.path.abspath(os.path.expanduser(path))


def _check_readable(named: str, path: str) -> str:
    try:
        read_policy_text(path)
    except FileNotFoundError:
        raise PolicyFileMissing(named, path, "no such file") from None
    except IsADirectoryError:
        raise PolicyFileMissing(named, path, "is a directory, not a file") from None
    except OSError as exc:
        raise PolicyFileMissing(named, path, f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        pass  # read, and refused with its line by the validation that follows
    return path


def resolve_policy_file(conf: cfg.ConfigOpts, command_line: str | None = None) -> str | None:
    """The absolute path of the policy file in force, or ``None`` for oslo's default.

    ``command_line`` (a flag's value) wins over ``[oslo_policy] policy_file``.
    ``None`` means oslo's default name was not found anywhere: the enforcer
    then loads the defaults (and, as oslo.policy does, picks the file up if it
    appears later). Raises :class:`PolicyFileMissing` when an explicitly named
    file is missing, not a file, or unreadable.
    """
    if command_line:
        return _check_readable(command_line, command_line_path(command_line))
    opts._register(conf)  # idempotent; the enforcer registers the same options
    configured = conf.oslo_policy.policy_file
    if os.path.isabs(configured):
        return _check_readable(configured, configured)
    found = conf.find_file(configured)
    if found is not None:
        return _check_readable(configured, os.path.abspath(found))
    if configured == OSLO_DEFAULT_POLICY_FILE:
        return None
    raise PolicyFileMissing(
        configured, None, "not found beside the configuration files nor in the configuration dirs"
    )
