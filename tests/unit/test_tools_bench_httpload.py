"""The load of the benchmarks between servers counts what it says, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from guard.testing import served
from guard.tools.bench import httpload
from guard.tools.pgserver import free_port


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    found = environ["PATH_INFO"].startswith("/ok")
    start_response("200 OK" if found else "404 Not Found", [("Content-Length", "2")])
    return [b"{}"]


def test_only_200_answers_count_and_the_others_are_errors_by_status() -> None:
    with served(_app) as base_url:
        ok = httpload.run_load(httpload.Target("ok", base_url, ["/ok/1", "/ok/2"], {}), 2, 0.3)
        mixed = httpload.run_load(httpload.Target("m", base_url, ["/ok", "/missing"], {}), 2, 0.3)
    assert ok.ok > 0 and ok.errors == {}
    assert ok.per_second == ok.ok / 0.3
    assert mixed.ok > 0 and mixed.errors.get("404", 0) > 0
    assert set(mixed.errors) == {"404"}


def _chunked(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", [])  # no Content-Length: waitress sends it chunked
    yield b"{}"


def test_an_answer_without_a_content_length_is_an_error_not_a_rate() -> None:
    with served(_chunked) as base_url:
        sample = httpload.run_load(httpload.Target("c", base_url, ["/"], {}), 1, 0.2)
    assert sample.ok == 0
    assert set(sample.errors) == {"ConnectionError"}


def test_requests_carry_the_headers_and_answers_are_read_whole_on_one_connection() -> None:
    seen: list[tuple[str, str]] = []

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((environ["PATH_INFO"], environ.get("HTTP_X_ROLES", "")))
        body = environ["PATH_INFO"].encode() * 5000  # answers longer than one read
        start_response("201 Created", [("Content-Length", str(len(body)))])
        return [body]

    with served(echo) as base_url:
        connection = httpload.KeptAlive(base_url.split("//")[1])
        try:
            for path in ("/a", "/bb", "/a"):
                request = httpload.request_bytes("h", path, {"X-Roles": "reader"})
                assert connection.get(request) == 201
            assert connection.pending == b""
            assert connection.sock is not None  # kept alive
        finally:
            connection.close()
    assert seen == [("/a", "reader"), ("/bb", "reader"), ("/a", "reader")]


def test_a_refused_connection_is_an_error_not_a_rate() -> None:
    with served(_app) as base_url:
        pass  # stopped: nothing listens there any more
    sample = httpload.run_load(httpload.Target("gone", base_url, ["/ok"], {}), 2, 0.2)
    assert sample.ok == 0
    assert sum(sample.errors.values()) >= 2


def test_the_cpu_clock_is_read_at_the_start_and_at_the_deadline() -> None:
    reads: list[float] = []

    def clock() -> dict[str, float]:
        reads.append(time.perf_counter())
        return {"server": float(len(reads)), "database": 3.0 * len(reads)}

    with served(_app) as base_url:
        sample = httpload.run_load(httpload.Target("ok", base_url, ["/ok"], {}), 1, 0.3, 0, clock)
    assert sample.cpu == {"server": 1.0, "database": 3.0}
    assert sample.cpu_seconds == 4.0
    assert sample.per_cpu_second == sample.ok / 4
    assert sample.cpu_us("database") == 3e6 / sample.ok
    assert len(reads) == 2 and reads[1] - reads[0] >= 0.29


def test_a_sample_without_a_cpu_clock_has_no_cpu_rate() -> None:
    with pytest.raises(ValueError, match="CPU"):
        _ = httpload.Sample(ok=1, seconds=1.0, errors={}).per_cpu_second


def test_a_load_needs_connections_a_duration_and_paths() -> None:
    target = httpload.Target("t", "http://127.0.0.1:1", ["/"], {})
    for connections, seconds, paths in ((0, 1.0, ["/"]), (1, 0.0, ["/"]), (1, 1.0, [])):
        with pytest.raises(ValueError):
            httpload.run_load(
                httpload.Target(target.name, target.base_url, paths, {}), connections, seconds
            )


def test_rounds_alternate_which_side_goes_first() -> None:
    calls: list[int] = []

    def measure(side: int) -> httpload.Sample:
        calls.append(side)
        return httpload.Sample(ok=len(calls), seconds=1.0, errors={"500": side})

    first, second = httpload.alternating(measure, 3)
    assert calls == [0, 1, 1, 0, 0, 1]
    assert [s.ok for s in first] == [1, 4, 5] and [s.ok for s in second] == [2, 3, 6]
    assert httpload.merged_errors(second) == {"500": 3}


def test_the_cpu_of_a_process_tree_counts_its_children() -> None:
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"])
    try:
        start = time.monotonic()
        while httpload.tree_cpu_seconds([child.pid]) < 0.3 and time.monotonic() - start < 30:
            time.sleep(0.05)
        # Counted from the child itself and from its parent (this process) alike.
        own = time.process_time()
        assert httpload.tree_cpu_seconds([child.pid]) >= 0.3
        assert httpload.tree_cpu_seconds([os.getpid()]) >= 0.3 + own - 0.05
        assert httpload.tree_cpu_seconds([child.pid]) <= httpload.tree_cpu_seconds([1])
    finally:
        child.kill()
        child.wait()


def test_a_served_process_is_waited_for_and_stopped(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    log = tmp_path / "server.log"
    with httpload.served_process(command, {}, log, f"http://127.0.0.1:{port}") as server:
        assert httpload.run_load(httpload.Target("s", server.base_url, ["/"], {}), 1, 0.2).ok > 0
    assert httpload.run_load(httpload.Target("s", server.base_url, ["/"], {}), 1, 0.2).ok == 0


def test_a_server_that_exits_at_once_is_an_error_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with (
        pytest.raises(RuntimeError, match=r"server\.log"),
        httpload.served_process(
            [sys.executable, "-c", "raise SystemExit(3)"], {}, log, "http://127.0.0.1:1"
        ),
    ):
        pass


def test_error_lines_of_both_log_forms() -> None:
    log = (
        "2026-12-03 12:10:08.055 18023 INFO placement.requestlog [-] GET / status: 200\n"
        "2026-12-03 12:10:09.001 18023 ERROR placement.fault_wrap [-] boom\n"
        "Traceback (most recent call last):\n"
        "[2026-12-03 12:10:08 +0000] [18021] [ERROR] Exception in worker process\n"
    )
    assert httpload.error_lines(log) == 3
