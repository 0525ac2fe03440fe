"""The run: seeding, worker threads on keep-alive connections, the shared budget."""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import random
import threading
import time
import urllib.parse
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from typing import IO, Any

from guard.tools.load.history import (
    NO_RESPONSE,
    OutageWindows,
    Record,
    Seen,
    acknowledged_generation,
)
from guard.tools.load.personas import Persona, default_personas
from guard.tools.load.target import LoadError, loopback_target

ACTIONS = ("list", "show", "create", "update", "delete")
#: Relative weights of the actions; updates dominate so the generation is contended.
DEFAULT_MIX: Mapping[str, int] = {"list": 15, "show": 25, "create": 15, "update": 35, "delete": 10}
CONSUMER_TYPES = (None, "INSTANCE", "MIGRATION")


@dataclasses.dataclass(frozen=True)
class LoadConfig:
    """What to run: the target, how many threads, and when to stop."""

    url: str = "http://127.0.0.1:8778"
    threads: int = 8
    #: Stop after this many requests (None: no limit) ...
    requests: int | None = 1000
    #: ... or after this many seconds (None: no limit), whichever comes first.
    duration: float | None = None
    #: Consumers per project that every writer updates (the contended ones).
    shared: int = 3
    mix: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_MIX))
    #: Share of a scoped persona's show/update/delete aimed at another project's uuid.
    snoop_rate: float = 0.1
    timeout: float = 10.0
    seed: int | None = None
    progress_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.requests is None and self.duration is None:
            raise LoadError("give a number of requests or seconds: the load must stop by itself")
        if self.threads < 1 or self.shared < 1:
            raise LoadError("threads and shared consumers must be at least 1")
        if set(self.mix) - set(ACTIONS) or sum(self.mix.values()) <= 0:
            raise LoadError(f"the mix weighs actions among {', '.join(ACTIONS)}")


@dataclasses.dataclass
class _Known:
    project_id: str
    user_id: str
    generation: int
    shared: bool


class Knowledge:
    """What the writers know of the consumers they made: shared by all threads.

    The generation kept is the newest one seen, which another thread may have
    outdated already: that staleness is what makes the writers conflict.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}
        self._by_project: dict[tuple[str, bool], list[str]] = collections.defaultdict(list)

    def add(self, consumer_uuid: str, known: _Known) -> None:
        with self._lock:
            if consumer_uuid not in self._known:
                self._known[consumer_uuid] = known
                self._by_project[known.project_id, known.shared].append(consumer_uuid)

    def observe(self, consumer_uuid: str, generation: int) -> None:
        with self._lock:
            known = self._known.get(consumer_uuid)
            if known is not None and generation > known.generation:
                known.generation = generation

    def forget(self, consumer_uuid: str) -> None:
        with self._lock:
            known = self._known.pop(consumer_uuid, None)
            if known is not None:
                self._by_project[known.project_id, known.shared].remove(consumer_uuid)

    def pick(
        self, rng: random.Random, projects: Sequence[str], shared: bool
    ) -> tuple[str, _Known] | None:
        """A random known consumer of ``projects`` (a copy of what is known of it)."""
        with self._lock:
            pools = [self._by_project[project, shared] for project in projects]
            index = rng.randrange(sum(map(len, pools)) or 1)
            for pool in pools:  # index into the concatenation without building it
                if index < len(pool):
                    chosen = pool[index]
                    return chosen, dataclasses.replace(self._known[chosen])
                index -= len(pool)
            return None


class Budget:
    """The run's stop condition: a request count and a deadline, shared by all threads."""

    def __init__(self, requests: int | None, duration: float | None) -> None:
        self._lock = threading.Lock()
        self._left = requests
        self._duration = duration
        self.deadline: float | None = None

    def start(self) -> None:
        """Start the clock (after seeding, so that the seconds are all load)."""
        if self._duration is not None:
            self.deadline = time.monotonic() + self._duration

    def take(self) -> bool:
        """Claim one request; False once the run is over."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        with self._lock:
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened after a transport failure."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._address = (host, port)
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send one request; ``(0, b"")`` when no answer came (the outcome is unknown).

        Never retried here: a write whose answer was lost may have committed,
        and the history must say so rather than hide it behind a retry.
        """
        if self._conn is None:
            self._conn = http.client.HTTPConnection(*self._address, timeout=self._timeout)
        try:
            self._conn.request(method, path, body=body, headers=dict(headers))
            response = self._conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return NO_RESPONSE, b""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Recorder:
    """The run's history, appended to by every thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[Record] = []

    def add(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self.records)


def _parse(status: int, body: bytes) -> tuple[str | None, list[dict[str, Any]]]:
    """The error code, or the consumers, in a response body."""
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return None, []
    if not isinstance(document, dict):
        return None, []
    if status >= 400:
        errors = document.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
            return (code if isinstance(code, str) else None), []
        return None, []
    consumers = document.get("consumers")
    if isinstance(consumers, list):
        return None, [c for c in consumers if isinstance(c, dict)]
    return None, [document] if "uuid" in document else []


def _seen(consumers: list[dict[str, Any]]) -> tuple[Seen, ...]:
    return tuple(
        Seen(str(c.get("uuid")), str(c.get("project_id")), int(c.get("generation") or 0))
        for c in consumers
    )


class Worker:
    """One thread's loop: one persona, one connection, one random stream."""

    def __init__(self, persona: Persona, run: LoadRun, rng: random.Random) -> None:
        self.persona = persona
        self.run = run
        self.rng = rng
        self.conn = Connection(run.host, run.port, run.config.timeout)
        self._actions = list(run.config.mix)
        self._weights = [run.config.mix[a] for a in self._actions]

    def loop(self) -> None:
        try:
            while not self.run.stopping.is_set() and self.run.budget.take():
                action = self.rng.choices(self._actions, self._weights)[0]
                getattr(self, f"do_{action}")()
        finally:
            self.conn.close()

    def send(
        self,
        action: str,
        method: str,
        path: str,
        *,
        document: object = None,
        consumer_uuid: str | None = None,
        sent_generation: int | None = None,
        target_project: str | None = None,
    ) -> Record:
        headers = self.persona.headers()
        body = None
        if method == "PUT":
            headers["Content-Type"] = "application/json"
            body = json.dumps(document).encode()
        started = time.monotonic()
        status, raw = self.conn.request(method, path, headers, body)
        finished = time.monotonic()
        code, consumers = _parse(status, raw)
        record = Record(
            persona=self.persona.name,
            scope=self.persona.project_id if self.persona.scoped else None,
            action=action,
            uuid=consumer_uuid,
            status=status,
            started=started,
            finished=finished,
            code=code,
            sent_generation=sent_generation,
            target_project=target_project,
            seen=_seen(consumers),
            mentioned_projects=frozenset(p for p in self.run.project_ids if p.encode() in raw),
        )
        self.run.recorder.add(record)
        for seen in record.seen:
            self.run.knowledge.observe(seen.uuid, seen.generation)
        return record

    def _target(self, *, shared: bool) -> tuple[str, _Known] | None:
        """A consumer to act on; sometimes, for a scoped persona, another project's."""
        projects = self.persona.home_projects
        if self.persona.scoped and self.rng.random() < self.run.config.snoop_rate:
            projects = tuple(p for p in self.run.project_ids if p != self.persona.project_id)
        return self.run.knowledge.pick(self.rng, projects, shared)

    def do_list(self) -> None:
        query = {"limit": str(self.rng.choice((10, 50, 200)))}
        if self.rng.random() < 0.5:
            query["project_id"] = self.rng.choice(self.persona.home_projects)
        self.send("list", "GET", f"/consumers?{urllib.parse.urlencode(query)}")

    def do_show(self) -> None:
        target = self._target(shared=self.rng.random() < 0.5)
        if target is None:
            return self.do_create()
        consumer_uuid, known = target
        self.send("show", "GET", f"/consumers/{consumer_uuid}", consumer_uuid=consumer_uuid,
                  target_project=known.project_id)  # fmt: skip
        return None

    def do_create(self) -> None:
        self.create(self.rng.choice(self.persona.home_projects), shared=False)

    def create(self, project_id: str, *, shared: bool) -> Record:
        consumer_uuid = str(uuidlib.uuid4())
        document = {
            "project_id": project_id,
            "user_id": self.persona.user_id,
            "consumer_type": self.rng.choice(CONSUMER_TYPES),
            "consumer_generation": None,
        }
        record = self.send("create", "PUT", f"/consumers/{consumer_uuid}", document=document,
                           consumer_uuid=consumer_uuid, target_project=project_id)  # fmt: skip
        generation = acknowledged_generation(record)
        if record.status == 201 and generation is not None:
            known = _Known(project_id, self.persona.user_id, generation, shared)
            self.run.knowledge.add(consumer_uuid, known)
        return record

    def do_update(self) -> None:
        target = self._target(shared=self.rng.random() < 0.8)
        if target is None:
            return self.do_create()
        consumer_uuid, known = target
        record = self.update(consumer_uuid, known)
        if record.code == "guard.concurrent_update" and self.run.budget.take():
            # Lost the race: read the consumer's generation and retry once, as a client does.
            fresh = self.send(
                "show", "GET", f"/consumers/{consumer_uuid}",
                consumer_uuid=consumer_uuid, target_project=known.project_id,
            )  # fmt: skip
            generation = acknowledged_generation(fresh)
            if generation is not None and self.run.budget.take():
                self.update(consumer_uuid, dataclasses.replace(known, generation=generation))
        return None

    def update(self, consumer_uuid: str, known: _Known) -> Record:
        document = {
            "project_id": known.project_id,
            "user_id": known.user_id,
            "consumer_type": self.rng.choice(CONSUMER_TYPES),
            "consumer_generation": known.generation,
        }
        return self.send("update", "PUT", f"/consumers/{consumer_uuid}", document=document,
                         consumer_uuid=consumer_uuid, sent_generation=known.generation,
                         target_project=known.project_id)  # fmt: skip

    def do_delete(self) -> None:
        target = self._target(shared=False)
        if target is None:
            return self.do_create()
        consumer_uuid, known = target
        path = f"/consumers/{consumer_uuid}"
        generation = None
        if self.rng.random() < 0.8:
            generation = known.generation
            path += f"?consumer_generation={generation}"
        record = self.send(
            "delete", "DELETE", path, consumer_uuid=consumer_uuid,
            sent_generation=generation, target_project=known.project_id,
        )  # fmt: skip
        if record.status == 204:
            self.run.knowledge.forget(consumer_uuid)
        return None


class LoadRun:
    """One bounded run: seeding, the worker threads, progress, and the history."""

    def __init__(
        self,
        config: LoadConfig,
        *,
        personas: Sequence[Persona] | None = None,
        outages: OutageWindows | None = None,
        progress: IO[str] | None = None,
    ) -> None:
        self.config = config
        self.host, self.port = loopback_target(config.url)
        self.personas = tuple(personas or default_personas())
        self.project_ids = tuple(
            dict.fromkeys(p for persona in self.personas for p in persona.home_projects)
        )
        self.outages = outages or OutageWindows()
        self.progress = progress
        self.recorder = Recorder()
        self.knowledge = Knowledge()
        self.stopping = threading.Event()
        self.budget = Budget(config.requests, config.duration)
        self.started = self.finished = 0.0
        self.seeded = 0.0

    def seed(self) -> None:
        """Create the shared consumers of every project (as the first unscoped persona)."""
        admin = next((p for p in self.personas if not p.scoped), None)
        if admin is None:
            raise LoadError("the personas need one unscoped (admin) persona to seed consumers")
        # The mix is pseudo-random by design (reproducible with --seed); nothing here is a secret.
        seeder = Worker(admin, self, random.Random(self.config.seed))  # noqa: S311
        try:
            for project_id in self.project_ids:
                for _ in range(self.config.shared):
                    record = seeder.create(project_id, shared=True)
                    if record.status == NO_RESPONSE:
                        raise LoadError(f"no answer from {self.config.url}: is guard running?")
                    if record.status != 201:
                        raise LoadError(
                            f"seeding failed: create answered {record.status} "
                            f"{record.code or ''} (is guard serving the trusted pipeline?)"
                        )
        finally:
            seeder.conn.close()

    def execute(self) -> LoadRun:
        """Seed, run every thread until the budget is spent, and return self."""
        self.started = time.monotonic()
        self.seed()
        self.seeded = time.monotonic()
        self.budget.start()
        rng = random.Random(self.config.seed)  # noqa: S311
        workers = [
            Worker(self.personas[i % len(self.personas)], self, random.Random(rng.random()))  # noqa: S311
            for i in range(self.config.threads)
        ]
        threads = [threading.Thread(target=w.loop, name=f"load-{i}", daemon=True)
                   for i, w in enumerate(workers)]  # fmt: skip
        done = threading.Event()
        reporter = threading.Thread(target=self._report_progress, args=(done,), daemon=True)
        for thread in threads:
            thread.start()
        reporter.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            self.stopping.set()
            for thread in threads:
                thread.join()
        finally:
            self.finished = time.monotonic()
            done.set()
            reporter.join()
        return self

    def _report_progress(self, done: threading.Event) -> None:
        if self.progress is None:
            return
        ending = "\r" if self.progress.isatty() else "\n"
        while not done.wait(self.config.progress_interval):
            self.progress.write(self._progress_line() + ending)
            self.progress.flush()
        self.progress.write(self._progress_line() + "\n")
        self.progress.flush()

    def _progress_line(self) -> str:
        records = self.recorder.snapshot()
        elapsed = time.monotonic() - self.seeded
        statuses = collections.Counter(r.status for r in records)
        failed = sum(n for s, n in statuses.items() if s >= 500 or s == NO_RESPONSE)
        return (
            f"guard load: {elapsed:6.1f} s  {len(records):7d} requests  "
            f"{len(records) / max(elapsed, 1e-9):7.0f}/s  503: {statuses[503]}  "
            f"other failures: {failed - statuses[503]}"
        )


def run_load(
    config: LoadConfig,
    *,
    personas: Sequence[Persona] | None = None,
    outages: OutageWindows | None = None,
    outage_marker: str | None = None,
    progress: IO[str] | None = None,
) -> LoadRun:
    """Run a bounded load; with ``outage_marker``, the time that file exists is an outage."""
    run = LoadRun(config, personas=personas, outages=outages, progress=progress)
    stop_watching = threading.Event()
    watcher = None
    if outage_marker is not None:
        watcher = threading.Thread(
            target=run.outages.watch, args=(outage_marker, stop_watching), daemon=True
        )
        watcher.start()
    try:
        return run.execute()
    finally:
        stop_watching.set()
        if watcher is not None:
            watcher.join()
        run.outages.end()


# --------------------------------------------------------------------------- the report
