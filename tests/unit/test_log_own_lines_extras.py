"""guard's own lines (the access line, the decision line) and what an application adds to them.

Their message is composed of parts already safe, so the handlers' filter
skips it. An application's record factory, or a filter on the logger (the
logging cookbook's way to put request data on every record), may still add
attributes to the record that a format shows: those are redacted as on any
other record. The checks are plain substring tests on the handler's output.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest

from guard import log as guard_log
from guard.logfingerprints import fingerprint

RAW_ID = str(uuid.uuid4())
SECRET = "s3cr3t-" + uuid.uuid4().hex[:6]


@pytest.fixture
def output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    guard_log.install(b"test key")
    logger = logging.getLogger(f"guard.test.ownlines.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(tenant)s %(auth_token)s | %(message)s"))
    logger.addHandler(handler)  # guard's filter is put on it
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _assert_redacted(text: str) -> None:
    assert "GET /consumers 200" in text
    assert RAW_ID not in text and RAW_ID.replace("-", "") not in text
    assert SECRET not in text
    assert fingerprint(RAW_ID) in text and "***" in text


def test_what_a_record_factory_adds_to_an_own_line_is_redacted(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = output
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.tenant = f"tenant {RAW_ID}"
        record.auth_token = SECRET
        return record

    logging.setLogRecordFactory(factory)
    try:
        guard_log.log_redacted(logger, logging.INFO, "GET /consumers 200")
    finally:
        logging.setLogRecordFactory(previous)
    _assert_redacted(stream.getvalue())


def test_what_a_logger_filter_adds_to_an_own_line_is_redacted(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = output

    class RequestData(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.tenant = RAW_ID.upper()
            record.auth_token = SECRET
            return True

    logger.addFilter(RequestData())
    guard_log.log_redacted(logger, logging.INFO, "GET /consumers 200")  # the template path
    guard_log.log_redacted(logger, logging.INFO, "GET /consumers 200")  # and its copy
    text = stream.getvalue()
    assert text.count("GET /consumers 200") == 2
    _assert_redacted(text.replace(RAW_ID.upper(), RAW_ID))


class FieldsHandler(logging.Handler):
    """Sends, beside the text, fields read from the record after formatting it, as
    oslo.log's OSJournalHandler does (its default custom_fields)."""

    FIELDS = ("project_name", "project_id", "user_name", "user_id", "request_id")

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        self.sent.append({"MESSAGE": message, **{f: record.__dict__.get(f) for f in self.FIELDS}})


def test_what_a_formatter_sets_on_an_own_line_is_redacted_before_the_handler_sends_it() -> None:
    """oslo.log's JSONFormatter sets the context's values on the record, raw; a
    handler that sends record fields (the journal's) must find them redacted."""
    from oslo_context import context as oslo_context
    from oslo_log import formatters as oslo_formatters

    from guard.logscope import request_scope

    guard_log.install(b"test key")
    logger = logging.getLogger(f"guard.test.ownlines.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = FieldsHandler()
    handler.setFormatter(oslo_formatters.JSONFormatter())
    logger.addHandler(handler)
    previous = oslo_context.get_current()
    caller = {"user_id": RAW_ID, "project_id": "projzzz", "user_name": "Alice.Wonder"}
    try:
        oslo_context.RequestContext(overwrite=True, project_name="Acme_Corp", **caller)
        with request_scope({**caller, "project_name": "Acme_Corp"}):
            guard_log.log_redacted(logger, logging.INFO, "GET /consumers 200")
    finally:
        logger.removeHandler(handler)
        if previous is not None:
            previous.update_store()
        else:
            del oslo_context._request_store.context
    (sent,) = handler.sent
    text = repr(sent)
    assert "GET /consumers 200" in text
    for raw in (RAW_ID, "projzzz", "Alice.Wonder", "Acme_Corp"):
        assert raw not in text
    assert sent["project_id"] == fingerprint("projzzz")
