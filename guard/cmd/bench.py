"""``guard bench``: run every benchmark beside its baseline and print the ratios.

Each benchmark lives in its own module under :mod:`guard.tools.bench` and measures
guard against a baseline in the same process (stock oslo.policy, raw
SQLAlchemy, a bare WebOb app, a handler without the filter). This command runs
them one after another, each in a fresh process (so that one benchmark's
loggers, threads and caches cannot slow the next: measured, the pipeline
benchmark ran at half speed after the policy benchmark in one process), prints
one table and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from guard.tools.bench import BenchResult, format_table

# benchmark module under guard.tools.bench -> what it compares
BENCHMARKS: dict[str, str] = {
    "policy": "policy engine vs stock oslo.policy",
    "repository": "guarded repository vs raw SQLAlchemy and naive filtering",
    "pipeline": "full WSGI pipeline vs a bare WebOb app",
    "logfilter": "redacting log filter and decision log vs none",
    "logcost": "access + decision line per request, in place and through oslo.log",
}


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="smaller tables and shorter runs (about a minute)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (may be repeated)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write the results as JSON (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def machine_summary() -> str:
    """One line saying what the numbers were measured on."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def _run_benchmark(name: str, quick: bool) -> list[BenchResult]:
    """Run one benchmark module (in the child process)."""
    module = importlib.import_module(f"guard.tools.bench.{name}")
    return module.run(quick=quick)


def run_isolated(name: str, quick: bool) -> list[BenchResult]:
    """Run one benchmark in a fresh interpreter and return its results."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_run_benchmark, name, quick).result()


def run(args: argparse.Namespace) -> int:
    names = args.only or list(BENCHMARKS)
    results: list[BenchResult] = []
    started = time.monotonic()
    for index, name in enumerate(names, 1):
        print(f"[{index}/{len(names)}] {name}: {BENCHMARKS[name]} ...", file=sys.stderr)
        for result in run_isolated(name, args.quick):
            print(f"    {result}", file=sys.stderr)
            results.append(result)
    elapsed = time.monotonic() - started
    print(f"\nMachine: {machine_summary()}; total {elapsed:.0f} s\n")
    print(format_table(results))
    args.json.write_text(
        json.dumps(
            {
                "machine": machine_summary(),
                "seconds": round(elapsed, 1),
                "quick": args.quick,
                "results": [r.to_dict() for r in results],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
