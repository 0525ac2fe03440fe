"""``guard load`` over real HTTP against a real guard on a real SQLite file.

The server is the ``trusted`` pipeline from guard.deploy, served by waitress
in this process; the load runs as the ``guard load`` command (a subprocess)
or through :func:`guard.tools.load.engine.run_load`, and the invariants are checked
against the database file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from webtest.http import StopableWSGIServer

from guard import deploy
from guard.cmd import main as guard_main
from guard.testing import deployment
from guard.tools.load import engine, history, report, target


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[str, str]]:
    """A guard (trusted pipeline) on ``sqlite_url``: yields (base URL, database URL)."""
    with deployment(sqlite_url) as services:
        app = deploy.build_pipeline(services, "trusted")
        server = StopableWSGIServer.create(app, threads=8, expose_tracebacks=False)
        try:
            yield server.application_url.rstrip("/"), sqlite_url
        finally:
            server.shutdown()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guard", "load", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_command_runs_a_bounded_checked_load(served):
    url, database = served
    done = run_cli("--url", url, "--requests", "600", "--threads", "6", "--shared", "1",
                   "--database", database, "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True
    assert report["requests"] == 600
    verdicts = {i["name"]: i for i in report["invariants"]}
    assert set(verdicts) == {
        "acknowledged_writes_kept", "generations_monotonic", "no_server_errors",
        "project_isolation",
    }  # fmt: skip
    assert all(v["passed"] and v["checked"] > 0 for v in verdicts.values())
    # One shared consumer per project and six writers: the generation is contended.
    assert report["conflicts"] > 0
    assert {"200", "201", "204", "404", "409"} <= set(report["statuses"])
    assert report["latency_ms"]["p99"] >= report["latency_ms"]["p50"] > 0
    # Project B's member lacks the reader role: it creates but never lists.
    assert set(report["by_persona"]["member-b"]["list"]) == {"403"}
    assert "guard load:" in done.stderr  # progress


def test_the_text_report_names_rate_percentiles_and_verdicts(served):
    url, _ = served
    done = run_cli("--url", url, "--requests", "100", "--threads", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "requests/s, p50 " in done.stdout and " ms, p99 " in done.stdout
    assert "PASS generations_monotonic" in done.stdout
    assert "SKIP acknowledged_writes_kept" in done.stdout  # no --database


def test_the_load_stops_by_itself_after_its_seconds(served):
    url, _ = served
    config = engine.LoadConfig(url=url, threads=3, requests=None, duration=1.0)
    run = engine.run_load(config)
    assert 1.0 <= run.finished - run.seeded < 10.0
    assert len(run.recorder.records) > 0


def test_a_write_lost_by_the_database_fails_the_run(served):
    url, database = served
    run = engine.run_load(engine.LoadConfig(url=url, threads=4, requests=300, shared=1))
    assert report.judge(run, database_url=database)["passed"] is True
    # A consumer whose update was acknowledged and whose row is still there, at
    # the generation acknowledged last: one the run went on to delete has no row
    # for the database to "forget" (picking the first updated consumer, whatever
    # became of it, failed one run in ten), and one with a write in doubt (no
    # answer, 5xx) may be a generation ahead, which the check allows.
    unsure = {
        r.uuid
        for r in run.recorder.records
        if (r.action == "delete" and r.status == 204) or r.status in history.IN_DOUBT
    }
    updated = next(
        r.uuid
        for r in run.recorder.records
        if r.action == "update" and r.status == 200 and r.uuid not in unsure
    )
    db = sa.create_engine(database)
    with db.begin() as conn:  # the database "forgets" an acknowledged update
        forgotten = conn.execute(
            sa.text("UPDATE consumers SET generation = generation - 1 WHERE uuid = :u"),
            {"u": updated},
        )
        assert forgotten.rowcount == 1
    db.dispose()
    summary = report.judge(run, database_url=database)
    failed = [i["name"] for i in summary["invariants"] if not i["passed"]]
    assert failed == ["acknowledged_writes_kept"]
    assert summary["passed"] is False


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.1:8778",
        "http://10.0.0.1",
        "https://127.0.0.1:8778",
        "http://127.0.0.1:8778/consumers",
        "http://[2001:db8::1]:8778",
    ],
)
def test_only_loopback_roots_are_loaded(url, capsys):
    assert guard_main(["load", "--url", url, "--requests", "5"]) == 2
    assert "guard load:" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://127.9.9.9:1", "http://[::1]:1"])
def test_loopback_addresses_are_accepted(url):
    host, port = target.loopback_target(url)
    assert port == 1 and host in ("127.0.0.1", "127.9.9.9", "::1")


def test_a_load_without_a_bound_is_refused():
    with pytest.raises(target.LoadError, match="stop by itself"):
        engine.LoadConfig(requests=None, duration=None)


def test_a_target_that_does_not_answer_is_reported_not_loaded(capsys):
    with socket.socket() as sock:  # a bound port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert guard_main(["load", "--url", f"http://127.0.0.1:{port}", "--requests", "5"]) == 2
    assert "no answer from" in capsys.readouterr().err


def test_the_time_an_outage_marker_exists_is_reported_as_an_outage(served, tmp_path):
    url, _ = served
    marker = tmp_path / "outage"
    marker.touch()
    threading.Timer(0.8, marker.unlink).start()
    config = engine.LoadConfig(url=url, threads=2, requests=None, duration=3.0)
    summary = report.judge(engine.run_load(config, outage_marker=str(marker)))
    (outage,) = summary["outages"]
    assert outage["duration_seconds"] > 0
    assert outage["unavailable"] == 0  # nothing was down: a healthy server answered
    assert outage["recovered_after_seconds"] is not None
    assert "answered 503, recovered" in report.render_text(summary)


def test_an_outage_starts_when_its_marker_was_written_not_when_a_poll_saw_it(tmp_path):
    marker = tmp_path / "outage"
    marker.touch()
    written = time.time() - 5.0
    os.utime(marker, (written, written))
    windows, stop = history.OutageWindows(), threading.Event()
    watcher = threading.Thread(target=windows.watch, args=(str(marker), stop))
    watcher.start()
    time.sleep(0.3)
    marker.unlink()
    time.sleep(0.3)
    stop.set()
    watcher.join()
    (window,) = windows.windows
    assert 5.0 < window.end - window.start < 60.0
