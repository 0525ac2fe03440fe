"""Notice edits of the policy file and ``policy.d`` files, cheaply and surely.

oslo.policy stats the policy file on every ``enforce()`` and trusts a newer
mtime alone, so two saves within one timestamp tick can go unseen. A
:class:`PolicySource` stats at most once per ``interval`` (so a request pays
for a clock read, not a ``stat``), compares the whole ``stat`` signature
(mtime, ctime, size, inode), and re-reads and hashes the contents while a file
is younger than :data:`SETTLE_SECONDS`, when a same-tick edit could hide
behind an unchanged signature.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

# A file modified less than this long ago is re-hashed at every poll.
SETTLE_SECONDS = 2.0
# Default seconds between two polls; DESIGN.md allows one second.
DEFAULT_INTERVAL = 0.5


@dataclass(frozen=True)
class PolicyFiles:
    """The policy files as read at one poll, in load order."""

    main: tuple[str, str] | None
    directory_files: tuple[tuple[str, str], ...]
    unreadable: tuple[tuple[str, str], ...]
    digest: str

    @property
    def present(self) -> bool:
        """Whether there is any policy file at all (or a problem reading one)."""
        return bool(self.main or self.directory_files or self.unreadable)


_Signature = tuple[tuple[str, int, int, int, int], ...]


def _stat_signature(path: str) -> tuple[str, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _directory_entries(path: str) -> list[str]:
    """Non-hidden files of a policy directory, sorted as oslo.policy loads them."""
    try:
        with os.scandir(path) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and not e.is_dir()]
    except OSError:
        return []
    return [os.path.join(path, name) for name in sorted(names)]


class PolicySource:
    """Polls the policy file and directories; reports new contents once."""

    def __init__(
        self,
        locate_file: Callable[[], str | None],
        locate_dirs: Callable[[], list[str]],
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._locate_file = locate_file
        self._locate_dirs = locate_dirs
        self.interval = interval
        self._next_poll = 0.0
        self._signature: _Signature | None = None
        self._digest: str | None = None

    def due(self) -> bool:
        """Whether the next poll may run (a clock read, no system call)."""
        return time.monotonic() >= self._next_poll

    def poll(self, force: bool = False) -> PolicyFiles | None:
        """New file contents since the last poll, or ``None`` when unchanged.

        ``force`` polls even before the interval is over and reports the
        contents even when they did not change. Not thread-safe: the
        enforcer serializes polls under its reload lock.
        """
        if not force and not self.due():
            return None
        self._next_poll = time.monotonic() + self.interval
        return self._poll(force)

    def _paths(self) -> tuple[str | None, list[str]]:
        main = self._locate_file()
        files: list[str] = []
        for directory in self._locate_dirs():
            files.extend(_directory_entries(directory))
        return main, files

    def _poll(self, force: bool) -> PolicyFiles | None:
        main, directory_files = self._paths()
        paths = ([main] if main else []) + directory_files
        signature = tuple(s for s in map(_stat_signature, paths) if s is not None)
        now_ns = time.time_ns()
        settling = any(now_ns - s[1] < SETTLE_SECONDS * 1e9 for s in signature)
        if not force and signature == self._signature and not settling:
            return None
        files = self._read(main, directory_files)
        self._signature = signature
        if not force and files.digest == self._digest:
            return None
        self._digest = files.digest
        return files

    @staticmethod
    def _read(main: str | None, directory_files: list[str]) -> PolicyFiles:
        digest = hashlib.sha256()
        contents: list[tuple[str, str]] = []
        unreadable: list[tuple[str, str]] = []
        for path in ([main] if main else []) + directory_files:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                if isinstance(exc, FileNotFoundError) and path == main:
                    main = None  # deleted between the stat and the read
                    continue
                unreadable.append((path, reason or "cannot be read"))
                digest.update(f"unreadable:{path}\0".encode())
                continue
            contents.append((path, text))
            digest.update(f"{path}\0{len(text)}\0".encode())
            digest.update(text.encode("utf-8"))
        main_entry = contents[0] if main and contents and contents[0][0] == main else None
        return PolicyFiles(
            main=main_entry,
            directory_files=tuple(contents[1:] if main_entry else contents),
            unreadable=tuple(unreadable),
            digest=digest.hexdigest(),
        )
