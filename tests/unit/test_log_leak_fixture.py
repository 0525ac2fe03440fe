"""The suite-wide leak detector (tests/fixtures/logleak.py) catches what it must."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from guard.logfingerprints import fingerprint
from guard.logscope import request_scope
from tests.fixtures.logleak import LogLeakDetector, find_leaks

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fingerprint_key_drawn() -> None:
    """Draw the per-process key now, so its one-time notice is not among the lines captured."""
    fingerprint("warm-up")


def test_find_leaks_sees_raw_ids_in_every_spelling_but_not_request_ids() -> None:
    value = uuid.uuid4()
    for spelling in (str(value), str(value).upper(), value.hex, value.hex.upper()):
        assert find_leaks([f"consumer={spelling}."], set()), spelling
    assert find_leaks([f"req-{value} {fingerprint(str(value))} {'a' * 31}"], set()) == []
    assert find_leaks([f"REQ-{value}x{value}"], set())  # only the second is a request id's
    # Glued into a longer hex run, 64-hex keystone ids, any run of 32 or more.
    for text in (f"a{value}", f"req-{value}0", value.hex + value.hex, "f" * 40):
        assert find_leaks([text], set()), text
    assert find_leaks(["token was tok-AAA111"], {"tok-AAA111"})


def test_the_detector_opens_every_logger_and_restores_them() -> None:
    quiet = logging.getLogger("guard.test.leak.quiet")
    quiet.setLevel(logging.ERROR)
    alone = logging.getLogger("guard.test.leak.alone")
    alone.propagate = False
    off = logging.getLogger("guard.test.leak.off")
    off.disabled = True
    logging.disable(logging.CRITICAL)
    root_level = logging.getLogger().level
    detector = LogLeakDetector()
    detector.start()
    try:
        value = str(uuid.uuid4())
        quiet.debug("quiet %s", value)
        alone.debug("alone token=%s", "tok-AAA111")
        off.info("off")
        try:
            raise KeyError(value)
        except KeyError:
            logging.getLogger("guard.test.leak").exception("failed")
        logging.getLogger("guard.test.leak").info("x", extra={"consumer": {"ids": [value]}})
    finally:
        detector.stop()
        restored = (
            quiet.level,
            alone.propagate,
            list(alone.handlers),
            off.disabled,
            logging.root.manager.disable,
            logging.getLogger().level,
        )
        logging.disable(logging.NOTSET)
        off.disabled = False
        quiet.setLevel(logging.NOTSET)
        alone.propagate = True
    assert restored == (logging.ERROR, False, [], True, logging.CRITICAL, root_level)
    printed = fingerprint(value)
    lines = detector.lines
    assert lines[0] == f"guard.test.leak.quiet DEBUG quiet {printed}"
    assert lines[1] == "guard.test.leak.alone DEBUG alone token=***"
    assert lines[2] == "guard.test.leak.off INFO off"
    assert lines[3].startswith("guard.test.leak ERROR failed\nTraceback")
    assert f"KeyError: '{printed}'" in lines[3]
    assert f"'consumer': {{'ids': ['{printed}']}}" in lines[4]
    assert detector.leaks() == []


def test_declared_values_are_leaks_unless_the_request_scope_scrubs_them() -> None:
    detector = LogLeakDetector()
    detector.start()
    try:
        detector.sensitive("opaque-tok-1", "")
        lg = logging.getLogger("guard.test.leak.scope")
        with request_scope({"auth_token": "opaque-tok-1"}):
            lg.info("sent %s", "opaque-tok-1")
        lg.info("later", extra={"header": "opaque-tok-1"})
    finally:
        detector.stop()
    (leak,) = detector.leaks()
    assert "sensitive value 'opaque-tok-1'" in leak
    assert detector.lines[0].endswith("sent ***")


def test_the_capture_leaves_the_record_untouched_for_other_handlers() -> None:
    lonely = logging.getLogger("guard.test.leak.lonely")
    lonely.propagate = False  # the detector's handler will be its only one
    detector = LogLeakDetector()
    detector.start()
    try:
        value = str(uuid.uuid4())
        record = lonely.makeRecord(lonely.name, logging.INFO, "f", 1, "id %s", (value,), None)
        lonely.handle(record)
    finally:
        detector.stop()
        lonely.propagate = True
    assert detector.lines == [f"guard.test.leak.lonely INFO id {fingerprint(value)}"]
    assert (record.msg, record.args) == ("id %s", (value,))


RUN_INNER = """
import logging

def test_leaks(log_leaks):
    log_leaks.sensitive("opaque-tok-1")
    logging.getLogger("inner").debug("the token is %s", "opaque-tok-1")

def test_log_file_leaks(tmp_path):
    (tmp_path / "server.log").write_text("GET /consumers/3f1c1bd4-41a4-4e56-a59d-0e8b1d4f4a1b")

def test_clean(log_leaks):
    logging.getLogger("inner").debug("consumer %s", "3f1c1bd4-41a4-4e56-a59d-0e8b1d4f4a1b")
    assert "<id:" in log_leaks.text
"""


def test_a_leaking_test_fails_at_teardown_and_a_clean_one_passes(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(RUN_INNER))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.fixtures.logleak",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 passed, 2 errors" in result.stdout  # the leaking tests pass, then error
    assert "ERROR at teardown of test_leaks" in result.stdout
    assert "ERROR at teardown of test_log_file_leaks" in result.stdout
    assert "sensitive value 'opaque-tok-1'" in result.stdout


def _filterless_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger whose only handler was attached without guard's filter (no install path)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers.append(handler)  # bypasses addHandler, as some libraries do
    logger.propagate = False
    return logger, stream


def test_the_detector_fails_on_each_leak_it_used_to_miss() -> None:
    """A handler without the filter, a third-party traceback, a bytes token, a declared id."""
    value, mapping_id = str(uuid.uuid4()), uuid.uuid4().hex + uuid.uuid4().hex
    cases = {}
    for case in ("handler", "traceback", "bytes", "declared"):
        logger, _ = _filterless_logger(f"keystonemiddleware.leaktest.{case}")
        detector = LogLeakDetector()
        detector.start()
        try:
            if case == "handler":
                logger.info("consumer %s", value)
            elif case == "traceback":
                try:
                    raise LookupError(f"no user {mapping_id}")
                except LookupError:
                    logger.exception("token validation failed")
            elif case == "bytes":
                logger.debug("headers %s", {"X-Auth-Token": b"Zqtok12345"})
            else:
                detector.sensitive("acct-billing-7f3")  # a project id of no uuid shape
                logger.info("project acct-billing-7f3 over quota")
        finally:
            detector.stop()
            logger.handlers.clear()
            logger.propagate = True
        cases[case] = detector.leaks()
    assert "raw id" in cases["handler"][0] and value in cases["handler"][0]
    assert "Traceback" in cases["traceback"][0] and mapping_id in cases["traceback"][0]
    assert "raw token" in cases["bytes"][0]
    assert "sensitive value 'acct-billing-7f3'" in cases["declared"][0]


def test_text_handed_over_is_scanned() -> None:
    detector = LogLeakDetector()
    detector.start()
    try:
        detector.scan_text(f"Traceback ... KeyError: '{uuid.uuid4()}'")  # a subprocess's stderr
    finally:
        detector.stop()
    (leak,) = detector.leaks()
    assert "raw id" in leak
