"""guard.logrecords.make_record: the standard library's record, made from a template.

Every attribute a formatter may read must be what ``Logger.makeRecord`` would
have given the same call: in each thread, after a thread is renamed, in a
forked child, and with an application's own record factory.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

import pytest

from guard import logrecords

MARK = "_test_mark"
# Attributes that differ between any two records: the message and the time.
_PER_RECORD = {"msg", "created", "msecs", "relativeCreated"}
# Every standard attribute, as a formatter would ask for it.
_EVERYTHING = " ".join(
    f"%({name})s" for name in sorted(logging.makeLogRecord({}).__dict__) if name != "args"
)


def _both(logger: logging.Logger, message: str = "hello") -> tuple[logging.LogRecord, ...]:
    """A record of ours and the standard library's for the same call site, now."""
    frame = sys._getframe()
    ours, line = logrecords.make_record(logger, logging.INFO, message, frame, MARK), frame.f_lineno
    code = frame.f_code
    stdlib = logger.makeRecord(
        logger.name, logging.INFO, code.co_filename, line, message, (), None, code.co_name
    )
    return ours, stdlib


def _assert_same(ours: logging.LogRecord, stdlib: logging.LogRecord) -> None:
    assert type(ours) is type(stdlib)
    attrs = dict(ours.__dict__)
    assert attrs.pop(MARK) is True
    assert attrs.keys() == stdlib.__dict__.keys()
    for name, value in stdlib.__dict__.items():
        if name not in _PER_RECORD:
            assert attrs[name] == value, name
    assert ours.msg == stdlib.msg and ours.getMessage() == stdlib.getMessage()
    assert abs(ours.created - stdlib.created) < 1.0
    assert 0 <= ours.msecs < 1000 and abs(ours.msecs - (ours.created % 1) * 1000) <= 1.0
    assert abs(ours.relativeCreated - stdlib.relativeCreated) < 1000.0


def test_a_record_carries_what_the_standard_librarys_would() -> None:
    logger = logging.getLogger("guard.test.records")
    for message in ("first", "second", "third"):  # the template is made once, then copied
        _assert_same(*_both(logger, message))
    ours, stdlib = _both(logger)
    formatter = logging.Formatter(_EVERYTHING)
    times = {"asctime", "created", "msecs", "relativeCreated"}
    for record in (ours, stdlib):
        for name in times:
            setattr(record, name, 0)
    assert formatter.format(ours) == formatter.format(stdlib)


def test_each_record_has_its_own_message_and_time() -> None:
    logger = logging.getLogger("guard.test.records")
    frame = sys._getframe()
    first = logrecords.make_record(logger, logging.INFO, "one", frame, MARK)
    time.sleep(0.002)
    second = logrecords.make_record(logger, logging.INFO, "two", frame, MARK)
    assert (first.msg, second.msg) == ("one", "two")
    assert second.created > first.created
    assert second.relativeCreated - first.relativeCreated == pytest.approx(
        (second.created - first.created) * 1000, abs=0.01
    )
    second.msg = "changed"  # records do not share their attributes
    assert first.msg == "one"


def test_each_call_site_in_one_function_has_its_own_line() -> None:
    """Templates are per call site: two calls of one function, each its own line, every time."""
    logger = logging.getLogger("guard.test.records")

    def first_site() -> logging.LogRecord:
        return logrecords.make_record(logger, logging.INFO, "a", sys._getframe(), MARK)

    def two_sites(which: int) -> tuple[logging.LogRecord, int]:
        frame = sys._getframe()
        if which:
            return logrecords.make_record(logger, logging.INFO, "b", frame, MARK), frame.f_lineno
        return logrecords.make_record(logger, logging.INFO, "c", frame, MARK), frame.f_lineno

    lines = set()
    for which in (0, 1, 0, 1):  # the second round is made from the templates
        record, line = two_sites(which)
        assert (record.lineno, record.funcName) == (line, "two_sites")
        lines.add(record.lineno)
    assert len(lines) == 2
    assert first_site().funcName == "first_site"


def test_each_thread_gets_its_own_id_and_name_and_a_rename_is_seen() -> None:
    logger = logging.getLogger("guard.test.records")
    seen: dict[str, tuple[int | None, str | None]] = {}

    def log(label: str) -> None:
        ours, stdlib = _both(logger)
        _assert_same(ours, stdlib)
        seen[label] = (ours.thread, ours.threadName)
        threading.current_thread().name = f"renamed-{label}"
        renamed, stdlib = _both(logger)
        _assert_same(renamed, stdlib)
        assert renamed.threadName == f"renamed-{label}"

    threads = [threading.Thread(target=log, args=(f"t{n}",), name=f"t{n}") for n in range(3)]
    for thread in threads:
        thread.start()
        thread.join()  # one after another: a later thread may reuse an earlier one's id
    assert [name for _, name in seen.values()] == ["t0", "t1", "t2"]
    main, _ = _both(logger)
    assert main.threadName == threading.current_thread().name


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_records_its_own_pid() -> None:
    logger = logging.getLogger("guard.test.records")
    parent, _ = _both(logger)  # the template exists before the fork
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its records say, then leave at once
        try:
            ours, stdlib = _both(logger)
            report = {"ours": ours.process, "stdlib": stdlib.process, "pid": os.getpid()}
            os.write(writing, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert report["ours"] == report["stdlib"] == report["pid"] == pid
    assert parent.process == os.getpid() != pid


def test_an_applications_record_factory_is_used() -> None:
    class AppRecord(logging.LogRecord):
        pass

    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(AppRecord)
    try:
        ours, _ = _both(logging.getLogger("guard.test.records"))
    finally:
        logging.setLogRecordFactory(previous)
    assert type(ours) is AppRecord and getattr(ours, MARK) is True


def test_turned_off_process_and_thread_fields_are_kept_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging, "logProcesses", False)
    monkeypatch.setattr(logging, "logThreads", False)
    ours, stdlib = _both(logging.getLogger("guard.test.records"))
    assert ours.process is None and ours.thread is None and ours.threadName is None
    _assert_same(ours, stdlib)
