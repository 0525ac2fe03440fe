"""A bounded load generator for guard's HTTP API, and the invariants it proves.

``guard load`` drives a running guard (through the ``trusted`` pipeline's
identity headers) from several personas at once: an admin, a member and
reader of project A, a member (without reader) of project B and a reader of
project B. Each thread keeps one HTTP/1.1 keep-alive connection and plays a
mix of list, show, create, update-with-generation and delete. Updates
deliberately aim at a few consumers shared by every writer of a project, with
the generation each writer last saw, so the compare-and-swap is contended;
a writer that loses reads the consumer again and retries once, as a client
should.

Every request becomes a :class:`Record`. When the run ends (after a fixed
number of requests or seconds, whichever comes first), :func:`check_invariants`
judges the history, optionally against the database read back read-only:

* ``acknowledged_writes_kept``: every acknowledged create and update is in the
  database with at least its acknowledged generation (exactly it, unless an
  update of unknown outcome followed), and every acknowledged delete is gone;
* ``generations_monotonic``: an acknowledged update answers the sent
  generation + 1, no two acknowledged writes of one consumer share a
  generation, and no response shows a generation older than one acknowledged
  before the request started (nor a consumer whose delete was acknowledged);
* ``no_server_errors``: every request got an answer, and no 5xx but 503
  ``guard.unavailable`` during an outage window the caller marked;
* ``project_isolation``: a project-scoped persona never receives a consumer
  or a project id of another project, and a uuid of another project answers
  exactly as a missing one (404).

Only loopback targets are accepted: this is a tool to prove a deployment on a
test host, not to load someone else's service.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import ipaddress
import json
import math
import os
import random
import socket
import threading
import time
import urllib.parse
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from guard.api.environ import identity_headers

ACTIONS = ("list", "show", "create", "update", "delete")
#: Relative weights of the actions; updates dominate so the generation is contended.
DEFAULT_MIX: Mapping[str, int] = {"list": 15, "show": 25, "create": 15, "update": 35, "delete": 10}
CONSUMER_TYPES = (None, "INSTANCE", "MIGRATION")
#: Statuses after which a write's outcome is unknown: it may or may not have committed.
IN_DOUBT = frozenset({0, 500, 502, 503, 504})
NO_RESPONSE = 0


class LoadError(Exception):
    """The load cannot run as asked (non-loopback target, failed seeding, ...)."""


# --------------------------------------------------------------------------- target


def loopback_target(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``url`` or raise :class:`LoadError` if it is not loopback.

    IP literals must be in 127.0.0.0/8 or ``::1``; a host name is accepted only
    when every address it resolves to is a loopback address.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise LoadError("the target must be an http:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise LoadError("the target must be the server's root, e.g. http://127.0.0.1:8778")
    host = parts.hostname
    if not host:
        raise LoadError("the target URL has no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise LoadError("the target URL has an invalid port") from exc
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise LoadError(f"cannot resolve {host!r}") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(address.is_loopback for address in addresses):
        raise LoadError(f"refusing to load {host!r}: only loopback targets are allowed")
    return host, port


# --------------------------------------------------------------------------- personas


@dataclasses.dataclass(frozen=True)
class Persona:
    """A caller, as the authenticating proxy in front of guard would describe it."""

    name: str
    user_id: str
    project_id: str
    roles: tuple[str, ...]
    #: Projects this persona creates in and picks consumers from.
    projects: tuple[str, ...]
    #: True when every consumer it receives must belong to ``project_id``.
    scoped: bool = True

    def headers(self) -> dict[str, str]:
        """The ``trusted`` pipeline's identity headers for this persona."""
        return identity_headers(self.user_id, self.project_id, self.roles)


def default_personas() -> tuple[Persona, ...]:
    """Fresh projects A and B (keystone-style hex ids) and the personas that use them.

    Ids are new for each run, so runs against one database never mix.
    """
    project_a, project_b, admin_project = (uuidlib.uuid4().hex for _ in range(3))
    return (
        Persona("admin", uuidlib.uuid4().hex, admin_project, ("admin", "member", "reader"),
                (project_a, project_b), scoped=False),
        Persona("member-a", uuidlib.uuid4().hex, project_a, ("member", "reader"), (project_a,)),
        Persona("member-b", uuidlib.uuid4().hex, project_b, ("member",), (project_b,)),
        Persona("reader-b", uuidlib.uuid4().hex, project_b, ("reader",), (project_b,)),
    )  # fmt: skip


# --------------------------------------------------------------------------- history


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


# --------------------------------------------------------------------------- invariants


@dataclasses.dataclass(frozen=True)
class StoredConsumer:
    """A consumer row as the database holds it at the end of a run."""

    project_id: str
    generation: int


@dataclasses.dataclass
class InvariantResult:
    """The verdict of one invariant: how many things it checked and what broke."""

    name: str
    checked: int = 0
    violations: list[str] = dataclasses.field(default_factory=list)
    #: Why it was not checked (e.g. no database given); None when it was.
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.skipped is None and not self.violations

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "checked": self.checked,
            "skipped": self.skipped,
            "violation_count": len(self.violations),
            "violations": self.violations[:20],
        }


def _short(consumer_uuid: str | None) -> str:
    """The first block of a uuid: enough to find the row, short enough for a terminal."""
    return f"{(consumer_uuid or '?')[:8]}..."


def _by_uuid(records: Iterable[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = collections.defaultdict(list)
    for record in records:
        if record.uuid is not None:
            grouped[record.uuid].append(record)
    return grouped


def _acknowledged_generation(record: Record) -> int | None:
    for seen in record.seen:
        if seen.uuid == record.uuid:
            return seen.generation
    return None


def check_acknowledged_writes(
    records: Sequence[Record], stored: Mapping[str, StoredConsumer] | None
) -> InvariantResult:
    """Every acknowledged write is in the database; every acknowledged delete is gone.

    Assumes, as the generator guarantees, that a uuid is created at most once.
    """
    result = InvariantResult("acknowledged_writes_kept")
    if stored is None:
        result.skipped = "no --database given"
        return result
    for consumer_uuid, history in _by_uuid(records).items():
        writes = [r for r in history if r.acknowledged_write]
        deleted = any(r.action == "delete" and r.status == 204 for r in history)
        if not writes and not deleted:
            continue
        result.checked += 1
        row = stored.get(consumer_uuid)
        if deleted:
            if row is not None:
                result.violations.append(
                    f"consumer {_short(consumer_uuid)}: delete was acknowledged, row is there"
                )
            continue
        maybe_deleted = any(r.action == "delete" and r.status in IN_DOUBT for r in history)
        if row is None:
            if not maybe_deleted:
                result.violations.append(
                    f"consumer {_short(consumer_uuid)}: acknowledged write lost, row is missing"
                )
            continue
        owner = writes[-1].target_project
        if owner is not None and row.project_id != owner:
            result.violations.append(f"consumer {_short(consumer_uuid)}: owner changed")
        acknowledged = max(_acknowledged_generation(r) or 0 for r in writes)
        maybe_updated = any(r.action == "update" and r.status in IN_DOUBT for r in history)
        if row.generation < acknowledged or (row.generation != acknowledged and not maybe_updated):
            result.violations.append(
                f"consumer {_short(consumer_uuid)}: stored generation {row.generation}, "
                f"last acknowledged {acknowledged}"
            )
    return result


@dataclasses.dataclass(frozen=True)
class _Observation:
    generation: int
    started: float
    finished: float
    write: bool


def check_generations(records: Sequence[Record]) -> InvariantResult:
    """No generation goes backwards or repeats, and no update skips one.

    Requests overlapping in time may be served in any order; a request that
    started after another's answer arrived must see that answer's effect
    (PostgreSQL commits before guard answers), which is what "in
    acknowledgement order" can promise over a network.
    """
    result = InvariantResult("generations_monotonic")
    observations: dict[str, list[_Observation]] = collections.defaultdict(list)
    deletes: dict[str, float] = {}
    for record in records:
        if record.action == "delete" and record.status == 204 and record.uuid:
            deletes[record.uuid] = min(deletes.get(record.uuid, math.inf), record.finished)
        if record.status not in (200, 201):
            continue
        write = record.acknowledged_write
        for seen in record.seen:
            observations[seen.uuid].append(
                _Observation(seen.generation, record.started, record.finished, write)
            )
        if record.action == "update" and record.status == 200:
            answered = _acknowledged_generation(record)
            if record.sent_generation is None or answered != record.sent_generation + 1:
                result.violations.append(
                    f"consumer {_short(record.uuid)}: update from generation "
                    f"{record.sent_generation} answered generation {answered}"
                )
    for consumer_uuid, seen in observations.items():
        result.checked += 1
        written = [o.generation for o in seen if o.write]
        repeated = {g for g in written if written.count(g) > 1}
        if repeated:
            result.violations.append(
                f"consumer {_short(consumer_uuid)}: generation(s) {sorted(repeated)} "
                "acknowledged to more than one write (a lost update)"
            )
        result.violations.extend(
            f"consumer {_short(consumer_uuid)}: {problem}" for problem in _out_of_order(seen)
        )
        gone = deletes.get(consumer_uuid)
        if gone is not None and any(o.started > gone for o in seen):
            result.violations.append(
                f"consumer {_short(consumer_uuid)}: seen again after its delete was acknowledged"
            )
    return result


def _out_of_order(seen: list[_Observation]) -> Iterator[str]:
    """Observations that contradict one acknowledged before they started.

    A sweep over observations by start time, folding in those that finished
    before each start: O(n log n) per consumer instead of comparing all pairs.
    """
    by_finish = sorted(seen, key=lambda o: o.finished)
    newest = -1
    folded = 0
    for observation in sorted(seen, key=lambda o: o.started):
        while folded < len(by_finish) and by_finish[folded].finished < observation.started:
            newest = max(newest, by_finish[folded].generation)
            folded += 1
        if observation.write and observation.generation <= newest:
            yield (
                f"write acknowledged generation {observation.generation} after generation "
                f"{newest} had been acknowledged"
            )
        elif not observation.write and observation.generation < newest:
            yield f"read generation {observation.generation} after {newest} (went backwards)"


def check_server_errors(
    records: Sequence[Record], windows: Sequence[Window] = (), grace: float = 5.0
) -> InvariantResult:
    """Every request was answered; 5xx only as 503 ``guard.unavailable`` in an outage."""
    result = InvariantResult("no_server_errors")
    for record in records:
        result.checked += 1
        if record.status == NO_RESPONSE:
            result.violations.append(f"{record.persona} {record.action}: no response")
        elif record.status >= 500:
            expected = (
                record.status == 503
                and record.code == "guard.unavailable"
                and any(window.covers(record, grace) for window in windows)
            )
            if not expected:
                result.violations.append(
                    f"{record.persona} {record.action}: {record.status} {record.code or ''}"
                    f"{'' if windows else ' (no outage was marked)'}".rstrip()
                )
    return result


def check_project_isolation(records: Sequence[Record]) -> InvariantResult:
    """No project-scoped persona sees another project's consumer, id or existence."""
    result = InvariantResult("project_isolation")
    for record in records:
        if record.scope is None:
            continue
        result.checked += 1
        label = f"{record.persona} {record.action}"
        foreign = [s for s in record.seen if s.project_id != record.scope]
        if foreign:
            result.violations.append(
                f"{label}: received {len(foreign)} consumer(s) of another project"
            )
        elif record.mentioned_projects - {record.scope}:
            result.violations.append(f"{label}: response names another project's id")
        if (
            record.target_project not in (None, record.scope)
            and record.action in ("show", "update", "delete")
            and record.status not in (404, NO_RESPONSE)
            and record.status < 500
        ):
            result.violations.append(
                f"{label}: another project's consumer answered {record.status}, not 404"
            )
    return result


def check_invariants(
    records: Sequence[Record],
    *,
    stored: Mapping[str, StoredConsumer] | None = None,
    windows: Sequence[Window] = (),
    grace: float = 5.0,
) -> list[InvariantResult]:
    """Judge a run's history (and, if given, the database's final rows)."""
    return [
        check_acknowledged_writes(records, stored),
        check_generations(records),
        check_server_errors(records, windows, grace),
        check_project_isolation(records),
    ]


def read_stored(database_url: str, uuids: Iterable[str]) -> dict[str, StoredConsumer]:
    """Read the consumers ``uuids`` back from the database, in a read-only transaction.

    Uses SQLAlchemy Core over guard's models; it never writes (the session is
    read-only on PostgreSQL and ``query_only`` on SQLite).
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from guard.db.models import Consumer, Project

    consumers, projects = Consumer.__table__, Project.__table__
    wanted = sorted(set(uuids))
    found: dict[str, StoredConsumer] = {}
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            for start in range(0, len(wanted), 500):
                query = (
                    sa.select(consumers.c.uuid, projects.c.external_id, consumers.c.generation)
                    .join(projects, projects.c.id == consumers.c.project_id)
                    .where(consumers.c.uuid.in_(wanted[start : start + 500]))
                )
                for consumer_uuid, project_id, generation in conn.execute(query):
                    found[consumer_uuid] = StoredConsumer(project_id, generation)
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        # The class name only: the driver's message may carry the URL's credentials.
        raise LoadError(f"cannot read the database back ({type(exc).__name__})") from exc
    finally:
        engine.dispose()
    return found


# --------------------------------------------------------------------------- the run


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


def _parse(status: int, body: bytes) -> tuple[str | None, list[dict[str, object]]]:
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


def _seen(consumers: list[dict[str, object]]) -> tuple[Seen, ...]:
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
        projects = self.persona.projects
        if self.persona.scoped and self.rng.random() < self.run.config.snoop_rate:
            projects = tuple(p for p in self.run.project_ids if p != self.persona.project_id)
        return self.run.knowledge.pick(self.rng, projects, shared)

    def do_list(self) -> None:
        query = {"limit": str(self.rng.choice((10, 50, 200)))}
        if self.rng.random() < 0.5:
            query["project_id"] = self.rng.choice(self.persona.projects)
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
        self.create(self.rng.choice(self.persona.projects), shared=False)

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
        generation = _acknowledged_generation(record)
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
            generation = _acknowledged_generation(fresh)
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
            dict.fromkeys(p for persona in self.personas for p in persona.projects)
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


def judge(
    run: LoadRun, *, database_url: str | None = None, grace: float = 5.0
) -> dict[str, object]:
    """Check a finished run's invariants (against the database, if given) and summarize it."""
    records = run.recorder.snapshot()
    stored = None
    if database_url:
        stored = read_stored(database_url, {r.uuid for r in records if r.uuid})
    invariants = check_invariants(records, stored=stored, windows=run.outages.windows, grace=grace)
    return summarize(run, invariants, grace)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(
    run: LoadRun, invariants: Sequence[InvariantResult], grace: float = 5.0
) -> dict[str, object]:
    """The run's figures and verdicts, as ``--json`` prints them."""
    records = run.recorder.snapshot()
    timed = [r for r in records if r.started >= run.seeded]
    latencies = sorted(r.finished - r.started for r in timed if r.status != NO_RESPONSE)
    elapsed = max(run.finished - run.seeded, 1e-9)
    by_persona: dict[str, dict[str, dict[str, int]]] = {}
    for record in records:
        counts = by_persona.setdefault(record.persona, {}).setdefault(record.action, {})
        counts[str(record.status)] = counts.get(str(record.status), 0) + 1
    return {
        "target": run.config.url,
        "threads": run.config.threads,
        "requests": len(timed),
        "seed_requests": len(records) - len(timed),
        "elapsed_seconds": round(elapsed, 3),
        "requests_per_second": round(len(timed) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "max": round((latencies[-1] if latencies else 0.0) * 1000, 2),
        },
        "statuses": dict(sorted(collections.Counter(str(r.status) for r in records).items())),
        "conflicts": sum(1 for r in records if r.code == "guard.concurrent_update"),
        "by_persona": by_persona,
        "outages": [
            _outage_summary(run, records, window, grace) for window in run.outages.windows
        ],
        "invariants": [result.to_dict() for result in invariants],
        "passed": all(result.passed or result.skipped for result in invariants),
    }


def _outage_summary(
    run: LoadRun, records: Sequence[Record], window: Window, grace: float
) -> dict[str, object]:
    """How the service behaved in an outage: its 503s and when it answered again."""
    after = sorted(
        (r for r in records if r.started >= window.end and 200 <= r.status < 500),
        key=lambda r: r.finished,
    )
    return {
        "start_seconds": round(window.start - run.seeded, 3),
        "duration_seconds": round(window.end - window.start, 3),
        "unavailable": sum(1 for r in records if r.status == 503 and window.covers(r, grace)),
        "recovered_after_seconds": (round(after[0].finished - window.end, 3) if after else None),
    }


def render_text(summary: Mapping[str, Any]) -> str:
    """The summary for a terminal."""
    latency = summary["latency_ms"]
    lines = [
        f"{summary['requests']} requests in {summary['elapsed_seconds']} s with "
        f"{summary['threads']} threads: {summary['requests_per_second']} requests/s, "
        f"p50 {latency['p50']} ms, p99 {latency['p99']} ms",
        "statuses: " + ", ".join(f"{k}: {v}" for k, v in dict(summary["statuses"]).items())
        + f" ({summary['conflicts']} generation conflicts)",
    ]  # fmt: skip
    for outage in summary["outages"]:
        recovered = outage["recovered_after_seconds"]
        lines.append(
            f"outage at {outage['start_seconds']} s for {outage['duration_seconds']} s: "
            f"{outage['unavailable']} answered 503, "
            + (f"recovered {recovered} s after it ended" if recovered is not None
               else "no success after it ended")
        )  # fmt: skip
    lines.append("invariants:")
    for result in summary["invariants"]:
        verdict = "SKIP" if result["skipped"] else ("PASS" if result["passed"] else "FAIL")
        note = f" ({result['skipped']})" if result["skipped"] else ""
        lines.append(f"  {verdict} {result['name']}: {result['checked']} checked{note}")
        lines.extend(f"       {violation}" for violation in result["violations"])
    return "\n".join(lines)
