"""What happened: one record per request, and the outage windows a run marked."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

#: Statuses after which a write's outcome is unknown: it may or may not have committed.
IN_DOUBT = frozenset({0, 500, 502, 503, 504})
NO_RESPONSE = 0


@dataclasses.dataclass(frozen=True)
class Seen:
    """A consumer as one response showed it."""

    uuid: str
    project_id: str
    generation: int


@dataclasses.dataclass(frozen=True)
class Record:
    """One request and what came back; times are ``time.monotonic()`` seconds."""

    persona: str
    #: The project the persona is confined to, or None when it may see every project.
    scope: str | None
    action: str
    uuid: str | None
    status: int
    started: float
    finished: float
    code: str | None = None
    sent_generation: int | None = None
    #: The owner of ``uuid`` as the generator knew it (the requested owner for a create).
    target_project: str | None = None
    seen: tuple[Seen, ...] = ()
    #: The run's project ids that appear anywhere in the response body.
    mentioned_projects: frozenset[str] = frozenset()

    @property
    def acknowledged_write(self) -> bool:
        return (self.action, self.status) in (("create", 201), ("update", 200))


@dataclasses.dataclass(frozen=True)
class Window:
    """An injected outage, from its start to its end (monotonic seconds)."""

    start: float
    end: float

    def covers(self, record: Record, grace: float) -> bool:
        """Whether ``record`` overlaps the window extended by ``grace`` seconds of recovery."""
        return record.started <= self.end + grace and record.finished >= self.start


class OutageWindows:
    """Outage windows marked while a load runs, by :meth:`begin`/:meth:`end` or a marker file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed: list[Window] = []
        self._open_since: float | None = None

    def begin(self, since: float | None = None) -> None:
        """An outage started ``since`` (a ``time.monotonic()`` value; default now)."""
        with self._lock:
            if self._open_since is None:
                self._open_since = time.monotonic() if since is None else since

    def end(self) -> None:
        with self._lock:
            if self._open_since is not None:
                self._closed.append(Window(self._open_since, time.monotonic()))
                self._open_since = None

    @property
    def windows(self) -> tuple[Window, ...]:
        with self._lock:
            still_open = () if self._open_since is None else (
                Window(self._open_since, time.monotonic()),
            )  # fmt: skip
            return (*self._closed, *still_open)

    def watch(self, marker: str, stop: threading.Event, interval: float = 0.05) -> None:
        """Until ``stop`` is set, treat the time ``marker`` exists as an outage.

        The outage starts when the file was written (its mtime), not when a
        poll noticed it: a poll may come late on a busy machine, after the
        fault it announces has already failed requests.
        """
        while not stop.is_set():
            try:
                age = time.time() - os.stat(marker).st_mtime
            except FileNotFoundError:
                self.end()
            else:
                self.begin(since=time.monotonic() - max(age, 0.0))
            stop.wait(interval)


def acknowledged_generation(record: Record) -> int | None:
    """The generation a response showed for the record's own consumer, if any."""
    for seen in record.seen:
        if seen.uuid == record.uuid:
            return seen.generation
    return None
