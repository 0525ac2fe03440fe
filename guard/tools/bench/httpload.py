"""A closed-loop HTTP GET load on kept-alive connections, for the benchmarks between servers.

Each of ``connections`` threads opens one HTTP/1.1 connection, sends one
untimed request (the connect and the server's first-request costs stay out of
the figure), waits for the others, then sends ``GET``s of paths a seeded random
generator picks, one after another on its connection, until the common
deadline. Only answers that came back 200 before the deadline count. The
client (:class:`KeptAlive`: lean, see why there) costs every server it measures
the same, and the servers run in other processes.

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
import socket
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

    requests = [request_bytes(netloc, path, target.headers) for path in target.paths]

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        connection = KeptAlive(netloc)
        ok, failed = 0, collections.Counter[str]()
        try:
            connection.get(rng.choice(requests))
            barrier.wait()
            end = deadline[0]
            while time.perf_counter() < end:
                try:
                    status = connection.get(rng.choice(requests))
                except OSError as error:
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
        except OSError as error:  # the untimed first request failed
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


def request_bytes(netloc: str, path: str, headers: Mapping[str, str]) -> bytes:
    """``GET path`` as HTTP/1.1 sends it (kept alive: 1.1's default), built once."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class KeptAlive:
    """One HTTP/1.1 connection: sends prebuilt requests, reads each answer by its Content-Length.

    Written for a measured need instead of :mod:`http.client`, which cost the
    client 170-260 us of CPU per request on the 2-core CI VM, taken from the
    cores the measured servers run on (more from the faster server, which
    answers more requests a second); this costs about 56 us. It reads
    only what the servers measured here send: a status line, headers with a
    Content-Length, a body. Any other answer, or a closed connection, is a
    :class:`ConnectionError`; the next :meth:`get` connects again.
    """

    def __init__(self, netloc: str) -> None:
        host, _, port = netloc.rpartition(":")
        self.address = (host.strip("[]"), int(port))
        self.sock: socket.socket | None = None
        self.pending = b""

    def get(self, request: bytes) -> int:
        """Send ``request`` and read its answer; its status."""
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=TIMEOUT_S)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.pending = b""
        sock = self.sock
        sock.sendall(request)
        data = self.pending
        while (head_end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv(sock)
        head = data[:head_end].lower()
        start = head.find(b"\r\ncontent-length:")
        if not head.startswith(b"http/1.") or start < 0:
            self.close()
            raise ConnectionError("an answer without a status line or a Content-Length")
        end = head.find(b"\r\n", start + 2)
        body_end = head_end + 4 + int(head[start + 17 : end if end > 0 else None])
        while len(data) < body_end:
            data += self._recv(sock)
        self.pending = data[body_end:]
        if head.startswith(b"http/1.0") or b"\r\nconnection: close" in head:
            self.close()
        return int(head[9:12])

    def _recv(self, sock: socket.socket) -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            self.close()
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


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
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


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
