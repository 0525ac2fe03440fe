"""guard's ``GET /consumers/{uuid}`` vs OpenStack Placement 16.0.0's ``GET /allocations/{uuid}``.

Subject: guard served as an operator serves it, ``guard serve --workers 2
--threads 4 --pipeline trusted`` (gunicorn, gthread workers, guard's own
gunicorn settings), its access and decision logs on at INFO as shipped
(oslo.log to stderr, kept in a file).
Baseline: OpenStack Placement 16.0.0 from the package registry, in a
virtualenv of its own (``make bench-placement`` installs it in
``.venv-placement``, never in guard's), served by the same gunicorn version
with the same 2 workers x 4 gthread threads and keep-alive from its WSGI entry
point ``placement.wsgi.api:application``, ``[api] auth_strategy = noauth2``
(no keystone: the token ``admin`` is a caller with the admin role), its
request log on at INFO as shipped. Its database is made by ``placement-manage
db sync``; guard's by ``guard serve`` on start.

Data: the same 1,000 consumer uuids in both, owned by 10 projects and users,
type ``INSTANCE``: in Placement, each allocates 1 VCPU of one resource
provider (``POST /allocations``, 100 consumers a request); in guard, ``PUT
/consumers/{uuid}``. Both through their APIs, as the admin.

Method: one throwaway PostgreSQL server (:mod:`guard.tools.pgserver`) with a
database for each, both servers up at once, the client in this process
(:mod:`guard.tools.bench.httpload`): N kept-alive connections GET random uuids
of the 1,000, as the admin (Placement lets only admins and services read
allocations; guard's admin is allowed by its first rule too; Placement at
microversion 1.39, its newest, whose answer carries the same consumer fields
as guard's). For each N (8, then 1), a warm-up, then rounds of a few seconds in
which the two sides alternate and swap who goes first; each side's best
requests/s, their ratio, the spread and median of the per-round ratios; and
each side's server CPU per request (its gunicorn processes and the PostgreSQL
server, read from ``/proc``), which other tenants of a busy machine move less
than requests/s. With ``--sqlite`` the same on an SQLite file each.

Goal: guard at least 5x Placement's requests/s on PostgreSQL with the same
workers, threads and data.

Run it with ``make bench-placement`` or ``python -m guard.tools.bench.placement
--placement-venv .venv-placement [--quick] [--sqlite] [--connections 8,1]
[--rounds 5] [--seconds 4]``. Nothing is downloaded while it runs.

This module measures and reports; the two services are installed, served and
seeded by :mod:`guard.tools.bench.placementsetup`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from guard.tools.bench import BenchResult, format_table, paired_result
from guard.tools.bench.httpload import (
    Sample,
    Target,
    alternating,
    error_lines,
    merged_errors,
    run_load,
    tree_cpu_seconds,
)
from guard.tools.bench.placementsetup import (
    ADMIN,
    PLACEMENT_HEADERS,
    PLACEMENT_VERSION,
    THREADS,
    WORKERS,
    check_installed,
    consumer_uuids,
    guard_server,
    placement_server,
    postmaster_pid,
    seed_guard,
    seed_placement,
)
from guard.tools.pgserver import PostgresServer

GOAL = 5.0


@dataclasses.dataclass(frozen=True)
class Options:
    """What to run, from the command line."""

    placement_venv: Path
    connections: tuple[int, ...] = (8, 1)
    rounds: int = 5
    seconds: float = 4.0
    postgresql: bool = True
    sqlite: bool = False


def parse_args(argv: Sequence[str]) -> Options:
    """The options of ``python -m guard.tools.bench.placement``; ``--quick`` shortens the run."""
    parser = argparse.ArgumentParser(
        prog="python -m guard.tools.bench.placement", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--placement-venv", type=Path, default=Path(".venv-placement"), help="Placement's venv"
    )
    parser.add_argument(
        "--connections", default="8,1", help="client connections, comma-separated (8,1)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per count")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of each side a round")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1.5 s")
    parser.add_argument("--sqlite", action="store_true", help="also on an SQLite file each")
    parser.add_argument("--sqlite-only", action="store_true", help="only on SQLite")
    args = parser.parse_args(argv)
    try:
        connections = tuple(int(part) for part in args.connections.split(","))
    except ValueError:
        parser.error(f"--connections: not a comma-separated list of counts: {args.connections!r}")
    if not connections or min(connections) < 1:
        parser.error("--connections: every count must be at least 1")
    rounds, seconds = (2, 1.5) if args.quick else (args.rounds, args.seconds)
    if rounds < 1 or seconds <= 0:
        parser.error("--rounds and --seconds must be positive")
    return Options(
        placement_venv=args.placement_venv,
        connections=connections,
        rounds=rounds,
        seconds=seconds,
        postgresql=not args.sqlite_only,
        sqlite=args.sqlite or args.sqlite_only,
    )


@dataclasses.dataclass(frozen=True)
class Databases:
    """The database each side uses, and the pids of the database server's processes."""

    label: str
    guard_url: str
    placement_url: str
    #: The database server's root processes (its postmaster); none for SQLite.
    server_pids: tuple[int, ...] = ()


def _measure(databases: Databases, options: Options, tmp: Path) -> list[BenchResult]:
    """Both services on their databases, seeded alike, loaded in alternating rounds."""
    uuids = consumer_uuids()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OS_")}
    venv = options.placement_venv
    with (
        guard_server(tmp, databases.guard_url, env) as guard,
        placement_server(venv, tmp, databases.placement_url, env) as placement,
    ):
        seed_guard(guard.base_url, uuids)
        seed_placement(placement.base_url, uuids)
        targets = (
            Target("guard", guard.base_url, [f"/consumers/{u}" for u in uuids], ADMIN.headers()),
            Target("Placement", placement.base_url, [f"/allocations/{u}" for u in uuids],
                   PLACEMENT_HEADERS),
        )  # fmt: skip
        # Each side's CPU: its gunicorn master and workers, and the database
        # server (idle but for the side being measured: the sides alternate).
        clocks = [functools.partial(_cpu, served.pid, databases) for served in (guard, placement)]
        seeds = itertools.count()
        results = []
        for connections in options.connections:
            for target in targets:  # warm-up: every worker's caches and pools
                run_load(target, connections, min(2.0, options.seconds), next(seeds))

            def measure(side: int, connections: int = connections) -> Sample:
                return run_load(
                    targets[side], connections, options.seconds, next(seeds), clocks[side]
                )

            samples = alternating(measure, options.rounds)
            for target, side in zip(targets, samples, strict=True):
                if min(sample.ok for sample in side) == 0:
                    raise RuntimeError(
                        f"{target.name} answered no 200 in a round: {merged_errors(side)}"
                    )
            pair = compare(samples, databases.label, connections)
            print(describe(pair, samples), flush=True)
            results += pair
    for log in ("guard.log", "placement.log"):
        if errors := error_lines((tmp / log).read_text("utf-8", "replace")):
            print(f"  {log}: {errors} lines at ERROR or with a traceback", flush=True)
    return results


def _cpu(server_pid: int, databases: Databases) -> dict[str, float]:
    spent = {"server": tree_cpu_seconds([server_pid])}
    if databases.server_pids:  # SQLite's work is the server's own
        spent["database"] = tree_cpu_seconds(databases.server_pids)
    return spent


def compare(
    samples: tuple[Sequence[Sample], Sequence[Sample]], label: str, connections: int
) -> list[BenchResult]:
    """guard's samples (first) against Placement's: requests/s, and requests per CPU second."""
    guard, placement = samples
    setup = (
        f"gunicorn {WORKERS}x{THREADS} gthread, {label}, "
        f"{connections} connection{'s' if connections > 1 else ''}"
    )
    fields = {
        "subject": "guard GET /consumers/{uuid} (guard serve, trusted pipeline)",
        "baseline": f"Placement {PLACEMENT_VERSION} GET /allocations/{{uuid}}",
    }
    wall = paired_result(
        [sample.per_second for sample in guard],
        [sample.per_second for sample in placement],
        name=f"GET one consumer over HTTP, {setup}",
        goal=f">= {GOAL:.0f}x" if label == "PostgreSQL" else "for information",
        **fields,
    )
    if any(sample.cpu_seconds is None for sample in (*guard, *placement)):
        return [wall]
    cpu = paired_result(
        [sample.per_cpu_second for sample in guard],
        [sample.per_cpu_second for sample in placement],
        name=f"GET one consumer, server CPU per request (workers + database), {setup}",
        goal="for information (rates are requests per CPU second)",
        **fields,
    )
    return [wall, cpu]


def describe(
    results: Sequence[BenchResult], samples: tuple[Sequence[Sample], Sequence[Sample]]
) -> str:
    """The results, their median round ratios, each round's figures, and errors (if any).

    On a busy machine the best rates of the two sides may come from different
    rounds; the median of the per-round ratios is the steadier summary.
    """
    lines = [
        f"{result} [median round ratio {statistics.median(result.round_ratios):.2f}]"
        for result in results
    ]
    for index, (ours, theirs) in enumerate(zip(*samples, strict=True), 1):
        line = (
            f"  round {index}: guard {ours.per_second:,.1f}/s, "
            f"Placement {theirs.per_second:,.1f}/s, "
            f"ratio {ours.per_second / theirs.per_second:.2f}"
        )
        if ours.cpu is not None and theirs.cpu is not None:
            line += f"; CPU per request: guard {_cpu_text(ours)}, Placement {_cpu_text(theirs)}"
        lines.append(line)
    for name, side in (("guard", samples[0]), ("Placement", samples[1])):
        if errors := merged_errors(side):
            lines.append(f"  {name} errors: {errors}")
    return "\n".join(lines)


def _cpu_text(sample: Sample) -> str:
    """``1,230 us (server 800 + database 430)``: CPU per 200 answer, and its parts."""
    assert sample.cpu is not None
    total = f"{1e6 / sample.per_cpu_second:,.0f} us"
    if len(sample.cpu) == 1:
        return total
    return f"{total} ({' + '.join(f'{p} {sample.cpu_us(p):,.0f}' for p in sample.cpu)})"


def run(quick: bool = False, *, options: Options | None = None) -> list[BenchResult]:
    """Measure on a throwaway PostgreSQL (and SQLite files with ``sqlite``).

    Without ``options``, the command line's defaults (``--quick`` with ``quick``).
    """
    if options is None:
        options = parse_args(["--quick"] if quick else [])
    problem = check_installed(options.placement_venv)
    if problem:
        raise RuntimeError(problem)
    options = dataclasses.replace(options, placement_venv=options.placement_venv.resolve())
    results = []
    with tempfile.TemporaryDirectory(prefix="guard-bench-placement-") as name:
        tmp = Path(name)
        if options.postgresql:
            server = PostgresServer()
            try:
                databases = Databases(
                    "PostgreSQL",
                    server.create_database("guard"),
                    server.create_database("placement"),
                    (postmaster_pid(server.data_dir),),
                )
                (tmp / "pg").mkdir()
                results += _measure(databases, options, tmp / "pg")
            finally:
                server.close()
        if options.sqlite:
            (tmp / "sqlite").mkdir()
            databases = Databases(
                "SQLite",
                f"sqlite:///{tmp / 'guard.sqlite'}",
                f"sqlite:///{tmp / 'placement.sqlite'}",
            )
            results += _measure(databases, options, tmp / "sqlite")
    return results


def main(argv: Sequence[str]) -> int:
    options = parse_args(argv)
    problem = check_installed(options.placement_venv)
    if problem:
        print(f"placement benchmark: {problem}", file=sys.stderr)
        return 2
    started = time.monotonic()
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    results = run(options=options)
    load = os.getloadavg()
    print(
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{time.monotonic() - started:.0f} s\n\n{format_table(results)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
