"""The files an operator's configuration names, checked before anything opens them.

oslo.config and oslo.log open what they are given as they find it. A FIFO
put where a file was expected (``--config-file``, a ``*.conf`` of a
``--config-dir``, a file the default search finds) blocked ``guard serve``
and every other command at start, silently and forever; a directory ended
in a traceback; a ``--config-dir`` that is not a directory was read as an
empty one, so the operator's options were dropped without a word. guard
refuses each with one sentence naming the option and the path, before
oslo.config reads anything. Two files that are not regular files read to
an end without waiting at their opening, and stay allowed as they always
were: the null device (``--config-file /dev/null``, the usual way to read
no configuration at all; a ``*.conf`` of a directory linked to it, switched
off) and an anonymous pipe (``--config-file <(...)``, ``/dev/stdin`` fed
by a pipe).

This module imports nothing of guard.
"""

from __future__ import annotations

import functools
import glob
import os
import stat
from collections.abc import Sequence

from oslo_config import cfg

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFileError(cfg.Error):
    """A file the configuration reads is not a regular file (or a directory is not one)."""


def kind_of(path: str) -> str | None:
    """What ``path`` is ("a FIFO", "a directory", ...) when it exists and is not a regular file.

    None for a regular file and for a path that cannot be examined (missing,
    unreachable): its reader reports those in its own words. Follows links
    and never opens ``path`` (opening a FIFO waits for a writer).
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@functools.cache
def _pipe_device() -> int:
    """The device of this system's anonymous pipes (a shell's ``<(...)``, ``a | b``)."""
    read_end, write_end = os.pipe()
    try:
        return os.fstat(read_end).st_dev
    finally:
        os.close(read_end)
        os.close(write_end)


def _config_kind_of(path: str, *, pipes: bool) -> str | None:
    """:func:`kind_of` for a configuration file, the null device (and, with ``pipes``, an
    anonymous pipe) allowed.

    Both read to an end and neither waits at its opening (only a named FIFO
    waits there for a writer): oslo.config read them before guard checked,
    and ``--config-file /dev/null`` or ``<(...)`` worked until it refused
    them. A pipe reads once: only a command, which reads its configuration
    once, may take one (a WSGI worker or paste factory reads it again in
    each worker, and the next would find it empty: the operator's policy
    file and options silently gone).
    """
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None  # its reader reports it, as kind_of says
    if stat.S_ISCHR(found.st_mode) and found.st_rdev == os.stat(os.devnull).st_rdev:
        return None
    if pipes and stat.S_ISFIFO(found.st_mode) and found.st_dev == _pipe_device():
        return None
    return kind_of(path)


def files_read(
    config_files: Sequence[str], config_dirs: Sequence[str], *, project: str, search: bool
) -> list[str]:
    """The regular files oslo.config reads for these ``--config-file`` and ``--config-dir``
    (with ``search``, what its default search finds), in its order."""
    files = [os.path.expanduser(str(path)) for path in config_files]
    if not files and search:
        files = cfg.find_config_files(project=project, prog=project)
    directories = [os.path.expanduser(str(path)) for path in config_dirs]
    if not directories and search:
        directories = cfg.find_config_dirs(project=project, prog=project)
    for path in directories:
        files += sorted(glob.glob(os.path.join(path, "*.conf")))
    return [path for path in files if os.path.isfile(path)]


def check_config_files(
    config_files: Sequence[str],
    config_dirs: Sequence[str],
    *,
    project: str,
    search: bool,
    pipes: bool = False,
) -> None:
    """Raise :class:`NotARegularFileError` for anything oslo.config would read that is not a file.

    ``config_files`` and ``config_dirs`` are what ``--config-file`` and
    ``--config-dir`` name; with ``search``, what is not given is what
    oslo.config's default search for ``project`` finds (the files it reads
    there exist; directories it does not find are skipped, as oslo.config
    skips them). ``pipes``: a command's one reading, which may take an
    anonymous pipe (``<(...)``, ``/dev/stdin``).
    """
    named = [("--config-file", os.path.expanduser(str(path))) for path in config_files]
    if not named and search:
        found = cfg.find_config_files(project=project, prog=project)
        named = [("the configuration file", path) for path in found]
    for option, path in named:
        kind = _config_kind_of(path, pipes=pipes)
        if kind:
            raise NotARegularFileError(f"{option} {path} is {kind}, not a regular file")
    directories = [("--config-dir", os.path.expanduser(str(path))) for path in config_dirs]
    for option, path in directories:
        if os.path.exists(path) and not os.path.isdir(path):  # a missing one: oslo.config says so
            kind = kind_of(path) or "a regular file"
            raise NotARegularFileError(f"{option} {path} is {kind}, not a directory")
    if not directories and search:
        found = cfg.find_config_dirs(project=project, prog=project)
        directories = [("the configuration directory", path) for path in found]
    for option, path in directories:
        # The files oslo.config reads from a directory, in its order.
        for member in sorted(glob.glob(os.path.join(path, "*.conf"))):
            kind = _config_kind_of(member, pipes=pipes)
            if kind:
                raise NotARegularFileError(
                    f"{option} {path} holds {member}, which is {kind}, not a regular file"
                )
