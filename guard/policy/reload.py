"""Notice edits of the policy file and ``policy.d`` files, surely and never half-way.

This is guard's own per-request reload check (``make_enforcer`` turns it on);
an enforcer used through oslo.policy's API reloads as oslo.policy does.

oslo.policy stats the policy file on every ``enforce()``, trusts a newer
mtime alone and reads whatever is there, even a file an editor has just
truncated. A :class:`PolicySource`:

- stats at most once per ``interval`` (a request pays for a clock read, not
  a ``stat``) and compares the whole ``stat`` signature (mtime, ctime, size,
  inode), so two saves within one timestamp tick are both seen;
- reports a change only once the files have stopped changing for
  :data:`QUIET_SECONDS` (the same signature seen that long, or files whose
  times are older than that plus a coarse-clock margin), and re-stats after
  reading, so a half-written file is never reported;
- leaves the decision about a missing or empty file to the enforcer: it
  reports what it found, including that the main file is missing and which
  directories could not be listed (gone, or not a directory);
- reads at most :data:`MAX_POLICY_FILE_BYTES` of a file (a bigger one is
  refused unread, as any unreadable file is).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Files are reported once they have not changed for this long (docs/api.md: 1 s).
QUIET_SECONDS = 1.0
# Extra age asked of a file's own timestamps, for file systems with coarse clocks.
COARSE_MARGIN = 1.0
# Default seconds between two polls: a change is applied within
# interval + QUIET_SECONDS + interval of the last write (2 s; docs/api.md allows 3).
DEFAULT_INTERVAL = 0.5
#: The largest policy file guard reads, in bytes (1 MiB), each file of policy.d too.
#: The largest real policy files are a few hundred KB: a Nova-sized file (some 600
#: rules with oslopolicy-sample-generator's comments, 146 KiB) loads and validates in
#: 0.5 s of CPU, a 1 MiB one in 3.6 s, 10 MiB parse in 25 s and 100 MiB would take
#: minutes (the YAML parser is linear, about 2.5 s a MiB here), all of it on the
#: request thread that found the change. 1 MiB is 7x the largest file an operator
#: writes and bounds that stall to seconds; a bigger file is refused unread.
MAX_POLICY_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Clock:
    """The clocks a :class:`PolicySource` reads; injected by unit tests."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


@dataclass(frozen=True)
class PolicyFiles:
    """The policy files as read at one poll, in load order."""

    main: tuple[str, str] | None
    directory_files: tuple[tuple[str, str], ...]
    unreadable: tuple[tuple[str, str], ...]
    digest: str
    #: The main policy file's name (base name), when one was located but is gone.
    main_missing: str | None = None
    #: Base names of the files that are empty (0 bytes).
    empty: tuple[str, ...] = field(default=())
    #: Why the main policy file, there, cannot be read (not UTF-8, a directory, ...).
    main_unreadable: str | None = None
    #: The policy directories listed, in load order.
    directories: tuple[str, ...] = field(default=())
    #: The policy directories asked for that could not be listed, and why ("is missing").
    directories_gone: tuple[tuple[str, str], ...] = field(default=())

    @property
    def present(self) -> bool:
        """Whether there is any policy file at all (or a problem reading one)."""
        return bool(self.main or self.directory_files or self.unreadable)


class PolicyFileTooLarge(OSError):
    """A policy file over :data:`MAX_POLICY_FILE_BYTES`: refused, never read whole."""

    def __init__(self, path: str, size: int, limit: int = MAX_POLICY_FILE_BYTES) -> None:
        super().__init__(
            errno.EFBIG, f"too large: {size:,} bytes, the limit is {limit:,} bytes", path
        )
        self.size = size
        self.limit = limit


def read_policy_text(path: str, limit: int = MAX_POLICY_FILE_BYTES) -> str:
    """The text of the policy file at ``path``; never blocks on what is not a file.

    The file is opened without blocking and checked to be a regular file
    before it is read: a FIFO put in its place blocked the reader forever (the
    start, the tools, or a request thread holding the reload lock, after
    which no edit was ever applied again), and a device never ends. At most
    ``limit`` + 1 bytes are read: a file bigger than ``limit`` (by its size,
    or grown while read) raises :class:`PolicyFileTooLarge` without being read
    whole or parsed. Raises OSError (``IsADirectoryError`` for a directory,
    "not a regular file" for the others) or UnicodeDecodeError.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if status.st_size > limit:
            raise PolicyFileTooLarge(path, status.st_size, limit)
        os.set_blocking(descriptor, True)
        with open(descriptor, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:  # grew since the fstat (or a size the kernel does not know)
            raise PolicyFileTooLarge(path, max(os.fstat(descriptor).st_size, len(data)), limit)
    finally:
        os.close(descriptor)
    # Decoded as text-mode open() did (UTF-8, universal newlines), the same text.
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


_Entry = tuple[str, int, int, int, int] | tuple[str, None, None, None, None]
_Signature = tuple[_Entry, ...]


def _stat_entry(path: str) -> _Entry:
    try:
        st = os.stat(path)  # follows links: a dangling link is a missing file
    except OSError:
        return (path, None, None, None, None)
    return (path, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


#: Names of the copies editors, operators and package managers leave beside a file:
#: ``50-admin.yaml~`` (emacs, vim's ``backup``), ``#50-admin.yaml#`` (emacs's
#: autosave), ``50-admin.yaml.bak`` (``cp`` before an edit), ``.dpkg-old``, ``.rpmsave``.
_BACKUP_NAME_RE = re.compile(
    r"^#|~$|\.(bak|orig|old|rej|save|swp|swo|tmp|dpkg-[a-z]+|rpm(new|save|orig)|ucf-[a-z]+)$",
    re.IGNORECASE,
)


def _directory_entries(path: str) -> list[str]:
    """Non-hidden files of a policy directory, sorted as oslo.policy loads them, but for
    backup copies (:data:`_BACKUP_NAME_RE`).

    oslo.policy loads every file, and a copy sorts after its original
    (``50-admin.yaml.bak``, ``50-admin.yaml~``), so its old rules overrode the
    operator's edit of the original without a word: an admin-only rule made
    so stayed open to members.

    Raises OSError when the directory cannot be listed: gone, not a
    directory, or unreadable. The caller reports it; "no files" is only ever
    said of a directory that is there and empty.
    """
    with os.scandir(path) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith(".") and not _BACKUP_NAME_RE.search(e.name) and not e.is_dir()
        ]
    return [os.path.join(path, name) for name in sorted(names)]


def _why_unlisted(exc: OSError) -> str:
    """What an operator is told about a policy directory that cannot be listed."""
    if isinstance(exc, FileNotFoundError):
        return "is missing"  # removed, renamed away, or a dangling link
    if isinstance(exc, NotADirectoryError):
        return "is not a directory"
    return f"cannot be listed ({exc.strerror or 'error'})"


@dataclass(frozen=True)
class _Layout:
    """What one look at the policy paths found, before any file is read."""

    main: str | None
    directory_files: list[str]
    directories: tuple[str, ...]
    gone: tuple[tuple[str, str], ...]

    def signature(self) -> _Signature:
        """The stat entry of each file and each directory listed, a marker for each gone.

        A directory's own entry changes when a file is added, removed or
        renamed in it, so that such a change too waits for the quiet second: a
        poll between ``mkdir policy.d`` and the copy of its files found an empty
        directory beside files old by their own times and applied "no
        overrides" at once.
        """
        paths = ([self.main] if self.main else []) + self.directory_files + list(self.directories)
        markers: list[_Entry] = [
            (f"{path}\0{why}", None, None, None, None) for path, why in self.gone
        ]
        return tuple(_stat_entry(path) for path in paths) + tuple(markers)


class PolicySource:
    """Polls the policy file and directories; reports settled new contents once."""

    def __init__(
        self,
        locate_file: Callable[[], str | None],
        locate_dirs: Callable[[], list[str]],
        interval: float = DEFAULT_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        self._locate_file = locate_file
        self._locate_dirs = locate_dirs
        self.interval = interval
        self.clock = clock or Clock()
        self._next_poll = 0.0
        # The signature last reported (or found unchanged), and the one
        # being watched until it has been quiet long enough.
        self._reported: _Signature | None = None
        self._pending: _Signature | None = None
        self._pending_since = 0.0

    def due(self) -> bool:
        """Whether the next poll may run (a clock read, no system call)."""
        return self.clock.monotonic() >= self._next_poll

    def poll(self, force: bool = False) -> PolicyFiles | None:
        """Settled new file contents since the last report, or ``None``.

        ``force`` (an explicit ``load_rules()``) reads now, settled or not,
        and reports the contents even when they did not change. Not
        thread-safe: the enforcer serializes polls under its reload lock.
        """
        now = self.clock.monotonic()
        if not force and now < self._next_poll:
            return None
        self._next_poll = now + self.interval
        layout = self._layout()
        signature = layout.signature()
        if not force:
            if signature == self._reported:
                self._pending = None
                return None
            if signature != self._pending:
                self._pending, self._pending_since = signature, now
            if not self._settled(signature, now):
                return None
        files = self._read(layout)
        if self._layout().signature() != signature:
            # Written, added, removed or a directory moved while we read.
            self._pending, self._pending_since = None, now
            return None
        self._reported, self._pending = signature, None
        return files

    def _settled(self, signature: _Signature, now: float) -> bool:
        """Quiet for :data:`QUIET_SECONDS`, by our own watch or the files' own times."""
        if now - self._pending_since >= QUIET_SECONDS:
            return True
        oldest_allowed = (self.clock.wall() - QUIET_SECONDS - COARSE_MARGIN) * 1e9
        return all(
            entry[1] is None or max(entry[1], entry[2]) <= oldest_allowed for entry in signature
        )

    def _layout(self) -> _Layout:
        main = self._locate_file()
        files: list[str] = []
        listed: list[str] = []
        gone: list[tuple[str, str]] = []
        for directory in self._locate_dirs():
            try:
                files.extend(_directory_entries(directory))
            except OSError as exc:
                gone.append((directory, _why_unlisted(exc)))
            else:
                listed.append(directory)
        return _Layout(main, files, tuple(listed), tuple(gone))

    @staticmethod
    def _read(layout: _Layout) -> PolicyFiles:
        main, directory_files = layout.main, layout.directory_files
        digest = hashlib.sha256()
        contents: list[tuple[str, str]] = []
        unreadable: list[tuple[str, str]] = []
        empty: list[str] = []
        main_missing = main_unreadable = None
        for path in ([main] if main else []) + directory_files:
            try:
                text = read_policy_text(path)
            except (OSError, UnicodeDecodeError) as exc:
                if isinstance(exc, FileNotFoundError):
                    if path == main:
                        main_missing = os.path.basename(path)
                        digest.update(f"missing:{path}\0".encode())
                    continue  # a policy.d file removed: its rules are gone
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                unreadable.append((path, reason or "cannot be read"))
                if path == main:
                    main_unreadable = reason or "cannot be read"
                digest.update(f"unreadable:{path}\0".encode())
                continue
            if not text.lstrip("\ufeff").strip():  # `echo > file` too, not only 0 bytes
                empty.append(os.path.basename(path))
            contents.append((path, text))
            digest.update(f"{path}\0{len(text)}\0".encode())
            digest.update(text.encode("utf-8"))
        for path, why in layout.gone:
            digest.update(f"directory {why}:{path}\0".encode())
        main_entry = contents[0] if main and contents and contents[0][0] == main else None
        return PolicyFiles(
            main=main_entry,
            directory_files=tuple(contents[1:] if main_entry else contents),
            unreadable=tuple(unreadable),
            digest=digest.hexdigest(),
            main_missing=main_missing,
            empty=tuple(empty),
            main_unreadable=main_unreadable,
            directories=layout.directories,
            directories_gone=layout.gone,
        )
