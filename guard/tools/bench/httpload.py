"""A closed-loop HTTP GET load on kept-alive connections, for the benchmarks between servers.

Each of ``connections`` threads opens one HTTP/1.1 connection, sends one
untimed request (the connect and the server's first-request costs stay out of
the figure), waits for the others, then sends ``GET``s of paths a seeded random
generator picks, one after another on its connection, until the common
deadline. Only answers that came back 200 before the deadline count. The client
is plain :mod:`http.client` (what :mod:`guard.tools.load` uses too): its cost is
the same for every server it measures, and the servers run in other processes.

:func:`alternating` runs two targets in rounds, swapping which goes first each
round, so a drift in the machine's load falls on both sides alike.

A sample can also carry the CPU time the server spent on it
(:func:`tree_cpu_seconds` of the server's processes, read at the start and at
the deadline): on a shared machine, other tenants slow a server's answers
but hardly change what each answer costs it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import random
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.client import HTTPConnection, HTTPException
from pathlib import Path

#: How long a request may take before the client gives up on it (seconds).
TIMEOUT_S = 30.0
#: How long a server may take to answer its first ``GET /`` (seconds).
START_TIMEOUT_S = 90.0


@dataclasses.dataclass(frozen=True)
class Target:
    """One server to load: its base URL, the paths to pick from, and the headers to send."""

    name: str
    base_url: str
    paths: Sequence[str]
    headers: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One timed run against one target."""

    ok: int
    seconds: float
    #: Answers other than 200 and failed requests, by status or exception name.
    errors: Mapping[str, int]
    #: CPU seconds each group of measured processes used during the run, if measured.
    cpu: Mapping[str, float] | None = None

    @property
    def cpu_seconds(self) -> float | None:
        """CPU seconds of all the measured processes (None: not measured)."""
        return None if self.cpu is None else sum(self.cpu.values())

    @property
    def per_second(self) -> float:
        """200 answers per second of the run."""
        return self.ok / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """200 answers per CPU second of the measured processes."""
        if self.cpu_seconds is None:
            raise ValueError("this sample was measured without a CPU clock")
        return self.ok / self.cpu_seconds

    def cpu_us(self, part: str) -> float:
        """Microseconds of CPU of the group ``part`` per 200 answer."""
        if self.cpu is None:
            raise ValueError("this sample was measured without a CPU clock")
        return 1e6 * self.cpu[part] / self.ok


def run_load(
    target: Target,
    connections: int,
    seconds: float,
    seed: int = 0,
    cpu: Callable[[], Mapping[str, float]] | None = None,
) -> Sample:
    """``connections`` kept-alive clients GET ``target``'s paths for ``seconds``.

    ``cpu`` (CPU seconds by group of processes, e.g. of :func:`tree_cpu_seconds`)
    is read when the clients start and at the deadline; the sample carries the
    difference of each group.
    """
    if connections < 1 or seconds <= 0 or not target.paths:
        raise ValueError("a load needs at least one connection, a duration and a path")
    netloc = urllib.parse.urlsplit(target.base_url).netloc
    deadline: list[float] = []
    cpu_read: list[Mapping[str, float]] = []
    started = threading.Event()

    def start() -> None:
        if cpu is not None:
            cpu_read.append(cpu())
        deadline.append(time.perf_counter() + seconds)
        started.set()

    barrier = threading.Barrier(connections, action=start)
    lock = threading.Lock()
    ok_total = [0]
    errors: collections.Counter[str] = collections.Counter()

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        connection = HTTPConnection(netloc, timeout=TIMEOUT_S)
        ok, failed = 0, collections.Counter[str]()
        try:
            _get(connection, rng.choice(target.paths), target.headers)
            barrier.wait()
            end = deadline[0]
            while time.perf_counter() < end:
                try:
                    status = _get(connection, rng.choice(target.paths), target.headers)
                except (OSError, HTTPException) as error:
                    failed[type(error).__name__] += 1
                    connection.close()  # the next request reconnects
                    continue
                if time.perf_counter() > end:
                    break
                if status == 200:
                    ok += 1
                else:
                    failed[str(status)] += 1
        except threading.BrokenBarrierError:
            failed["BrokenBarrierError"] += 1
        except (OSError, HTTPException) as error:  # the untimed first request failed
            failed[type(error).__name__] += 1
            barrier.abort()
        finally:
            connection.close()
            with lock:
                ok_total[0] += ok
                errors.update(failed)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    if cpu is not None and started.wait(TIMEOUT_S + 10):
        time.sleep(max(0.0, deadline[0] - time.perf_counter()))
        cpu_read.append(cpu())
    for thread in threads:
        thread.join(seconds + 2 * TIMEOUT_S + 10)
    spent = None
    if len(cpu_read) == 2:
        spent = {part: cpu_read[1][part] - cpu_read[0][part] for part in cpu_read[0]}
    return Sample(ok=ok_total[0], seconds=seconds, errors=dict(errors), cpu=spent)


@dataclasses.dataclass(frozen=True)
class Served:
    """A server that answers: where, and its master's pid (its workers are its children)."""

    base_url: str
    pid: int


@contextlib.contextmanager
def served_process(
    command: Sequence[str], env: Mapping[str, str], log: Path, base_url: str
) -> Iterator[Served]:
    """Run ``command`` (a server serving ``base_url``) until the block ends.

    Waits until its ``GET /`` answers 200; then SIGTERM, and SIGKILL if it
    has not stopped within 30 s. The server's output goes to ``log``.
    """
    with open(log, "ab") as out:
        # Programs of this checkout's virtualenvs, with arguments built here.
        process = subprocess.Popen(command, env=dict(env), stdout=out, stderr=out)  # noqa: S603
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}; see {log}")
            with contextlib.suppress(OSError, HTTPException):
                if _status(base_url, "/") == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not answer in time; see {log}")
            time.sleep(0.2)
        yield Served(base_url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def error_lines(log: str) -> int:
    """How many lines of a server's log are errors (oslo.log's and gunicorn's forms)."""
    markers = (" ERROR ", "[ERROR]", "Traceback (most recent call last)")
    return sum(1 for line in log.splitlines() if any(m in line for m in markers))


def _status(base_url: str, path: str) -> int:
    connection = HTTPConnection(urllib.parse.urlsplit(base_url).netloc, timeout=TIMEOUT_S)
    try:
        return _get(connection, path, {})
    finally:
        connection.close()


def _get(connection: HTTPConnection, path: str, headers: Mapping[str, str]) -> int:
    connection.request("GET", path, headers=dict(headers))
    response = connection.getresponse()
    response.read()
    return response.status


def round_order(index: int) -> tuple[int, int]:
    """Which of two sides goes first in round ``index``: (0, 1), then (1, 0), and so on."""
    return (0, 1) if index % 2 == 0 else (1, 0)


def alternating(
    measure: Callable[[int], Sample], rounds: int
) -> tuple[list[Sample], list[Sample]]:
    """Samples of side 0 and side 1 (``measure(side)``) in ``rounds`` alternating rounds."""
    samples: tuple[list[Sample], list[Sample]] = ([], [])
    for index in range(rounds):
        for side in round_order(index):
            samples[side].append(measure(side))
    return samples


def merged_errors(samples: Sequence[Sample]) -> dict[str, int]:
    """Every sample's errors added up."""
    total: collections.Counter[str] = collections.Counter()
    for sample in samples:
        total.update(sample.errors)
    return dict(total)


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """User and system CPU seconds of the processes ``roots`` and all their descendants.

    Read from ``/proc`` (Linux): a server's master, its workers and their
    threads; a process that ended is no longer counted.
    """
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                text = stat.read().decode("ascii", "replace")
        except OSError:  # ended meanwhile
            continue
        # Fields after the command's closing parenthesis: state ppid ... utime stime
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        spent[pid] = (int(fields[11]) + int(fields[12])) / ticks
    tree = set(roots)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sum(spent.get(pid, 0.0) for pid in tree)
