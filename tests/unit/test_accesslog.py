"""guard.accesslog: the access line, its cached ``METHOD target`` and what that cache keeps."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from typing import Any

import pytest

from guard import accesslog
from guard import log as guard_log
from guard.context import generate_request_id


class Lines(logging.Handler):
    """A real handler with guard's filter, keeping each line's message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(guard_log.RedactingFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Any:
    handler = Lines()
    logger = accesslog.ACCESS_LOG
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _log(path: str, query: str = "", method: str = "GET") -> None:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    headers = [("Content-Type", "application/json"), ("Content-Length", "17")]
    accesslog.log_access(
        environ, "200 OK", headers, [b"{}"], time.perf_counter(), generate_request_id()
    )


def _fingerprint(key: bytes, hex_id: str) -> str:
    """What the contract says an id becomes, computed here from the key (HMAC-SHA256)."""
    normal = hex_id.replace("-", "").lower()
    return f"<id:{hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()[:8]}>"


def test_a_short_caller_value_inside_a_route_word_leaves_the_word_readable() -> None:
    """A caller "u" of project "p": "consumers" holds both letters, but not as words."""
    assert accesslog.loggable_target("/consumers/list-p", "", ("u", "p")) == (
        f"/consumers/{guard_log.fingerprint('list-p')}"
    )


@pytest.mark.usefixtures("isolated_install")
def test_the_query_is_split_where_the_api_splits_it(lines: list[str]) -> None:
    """webob takes ";" as "&": a project filter after one is logged as the filter it is."""
    guard_log.install(b"a key")
    project = uuid.uuid4().hex
    _log("/consumers", f"limit=1;project_id={project}&marker=x")
    (line,) = lines
    assert line.split(" ")[1] == (
        f"/consumers?limit=1;project_id={_fingerprint(b'a key', project)}"
        f"&marker={guard_log.fingerprint('x')}"
    )
    assert project not in line


@pytest.mark.usefixtures("isolated_install")
def test_a_repeated_request_logs_the_same_target_and_a_new_key_a_new_one(
    lines: list[str],
) -> None:
    consumer = str(uuid.uuid4())
    guard_log.install(b"first key")
    _log(f"/consumers/{consumer}")
    _log(f"/consumers/{consumer}")  # the cached target
    guard_log.install(b"second key")
    _log(f"/consumers/{consumer}")
    targets = [line.split(" ")[1] for line in lines]
    assert targets[0] == targets[1] == f"/consumers/{_fingerprint(b'first key', consumer)}"
    assert targets[2] == f"/consumers/{_fingerprint(b'second key', consumer)}"
    assert all(consumer not in line for line in lines)


@pytest.mark.usefixtures("isolated_install")
def test_requests_that_differ_in_method_or_query_get_their_own_lines(lines: list[str]) -> None:
    guard_log.install(b"a key")
    project = str(uuid.uuid4())
    _log("/consumers", f"project_id={project}&limit=5")
    _log("/consumers", "limit=5")
    _log("/consumers", "limit=5", method="DELETE")
    _log("/consumers", "limit=5", method="get\n")
    assert [line.split(" ")[:2] for line in lines] == [
        ["GET", f"/consumers?project_id={_fingerprint(b'a key', project)}&limit=5"],
        ["GET", "/consumers?limit=5"],
        ["DELETE", "/consumers?limit=5"],
        ["?", "/consumers?limit=5"],
    ]
    assert all(" 200 17 bytes " in line for line in lines)


@pytest.mark.usefixtures("isolated_install")
def test_what_the_target_cache_keeps_is_bounded_in_bytes(lines: list[str]) -> None:
    guard_log.install(b"a key")
    for number in range(3 * accesslog._MAX_CACHED_REQUESTS):
        _log(f"/consumers/{number:08d}")
    long_path = "/consumers/" + "a" * 100_000
    _log(long_path)
    _log(long_path)
    _, cache = accesslog._requests
    assert 0 < len(cache) <= accesslog._MAX_CACHED_REQUESTS
    assert all(sum(map(len, key)) <= accesslog._CACHED_REQUEST_CHARS for key in cache)
    assert lines[-1].split(" ")[1] == lines[-2].split(" ")[1] != long_path


def test_a_path_segment_holding_the_callers_own_value_is_fingerprinted() -> None:
    """A route word holding the caller's name or id ("<name>.x") shows it: the
    access line is logged as redacted, so nothing scrubs it afterwards."""
    guard_log.install(b"test key")
    caller = ("Alice.Wonder", "projzzz")
    logged = accesslog.loggable_target(
        "/consumers/Alice.Wonder.x/projzzz-admin/usages", "", caller
    )
    assert "Alice.Wonder" not in logged and "projzzz" not in logged
    assert logged.startswith("/consumers/<id:") and logged.endswith("/usages")
