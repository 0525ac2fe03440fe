"""``guard load``: drive a local guard with a bounded, checked load.

Stops by itself after ``--requests`` requests or ``--seconds`` seconds
(whichever comes first), prints progress on stderr, then requests/s, p50, p99
and the invariant verdicts (``--json`` for machines). Exit status: 0 when
every invariant checked holds, 1 when one is violated, 2 when the load could
not run (e.g. a target that is not loopback).
"""

from __future__ import annotations

import argparse
import json
import sys

from guard.tools.load import engine, report
from guard.tools.load.target import LoadError


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``guard load``'s arguments to ``parser``."""
    parser.description = __doc__.splitlines()[0]
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8778",
        help="root of the guard to load; loopback only (default: %(default)s)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="stop after this many requests (default: 1000 when --seconds is not given)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--threads", type=int, default=8, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument(
        "--shared",
        type=int,
        default=3,
        help="consumers per project that all writers update, so their generations conflict "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="SQLAlchemy URL of guard's database, read (read-only) at the end to check that "
        "every acknowledged write is there",
    )
    parser.add_argument(
        "--outage-marker",
        metavar="PATH",
        help="an outage is under way from the time this file is written until it is removed: "
        "503 guard.unavailable is then expected, and is a violation at any other time",
    )
    parser.add_argument(
        "--outage-grace",
        type=float,
        default=5.0,
        help="seconds after an outage ends by which the service must answer again "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for one answer"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the request mix")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the load, check the invariants, print the report."""
    requests = args.requests
    if requests is None and args.seconds is None:
        requests = 1000
    try:
        config = engine.LoadConfig(
            url=args.url,
            threads=args.threads,
            requests=requests,
            duration=args.seconds,
            shared=args.shared,
            timeout=args.timeout,
            seed=args.seed,
        )
        run = engine.run_load(config, outage_marker=args.outage_marker, progress=sys.stderr)
        summary = report.judge(run, database_url=args.database, grace=args.outage_grace)
    except LoadError as exc:
        print(f"guard load: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(report.render_text(summary))
    return 0 if summary["passed"] else 1
