"""guard.log and its parts: fingerprints, request scopes, the patterns, the filter on handlers."""

from __future__ import annotations

import ast
import io
import json
import logging
import logging.config
import re
import sys
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_context import context as oslo_context

from guard import log as guard_log
from guard import logfingerprints, logscope
from guard.logfingerprints import fingerprint
from guard.logscope import request_scope

FINGERPRINT_RE = re.compile(r"<id:[0-9a-f]{8}>")


class ListHandler(logging.Handler):
    """A real handler that keeps each formatted line, with guard's filter on it."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(guard_log.RedactingFilter())
        self.setFormatter(formatter or logging.Formatter("%(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> logging.Logger:
    """A private logger with a filtered handler; nothing propagates to root."""
    lg = logging.Logger("guard.test")
    lg.setLevel(logging.DEBUG)
    lg.addHandler(ListHandler())
    return lg


def output(lg: logging.Logger) -> str:
    handler = lg.handlers[0]
    assert isinstance(handler, ListHandler)
    return "\n".join(handler.lines)


# -- fingerprints -----------------------------------------------------------


def test_fingerprint_is_the_same_for_every_spelling_of_an_id() -> None:
    value = uuid.uuid4()
    spellings = {str(value), str(value).upper(), value.hex, value.hex.upper()}
    prints = {fingerprint(spelling) for spelling in spellings}
    assert len(prints) == 1
    assert FINGERPRINT_RE.fullmatch(prints.pop())


def test_fingerprint_separates_ids_and_depends_on_the_key() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    keyed = logfingerprints.Fingerprinter(b"deployment key")
    assert keyed(first) != keyed(second)
    assert keyed(first) == logfingerprints.Fingerprinter(b"deployment key")(first.upper())
    assert keyed(first) != logfingerprints.Fingerprinter(b"another key")(first)


@pytest.mark.usefixtures("isolated_install")
def test_install_with_a_key_makes_fingerprints_stable() -> None:
    value = str(uuid.uuid4())
    guard_log.install(b"k1")
    first = fingerprint(value)
    guard_log.install()  # no key given: the configured one stays
    assert fingerprint(value) == first
    guard_log.install("k1")  # as oslo.config hands it over
    assert fingerprint(value) == first
    guard_log.install(b"k2")
    assert fingerprint(value) != first


@pytest.mark.usefixtures("isolated_install")
def test_without_a_key_a_random_one_is_drawn_once_with_a_notice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logfingerprints, "_fingerprinter", None)
    notices = ListHandler()
    logfingerprints.LOG.addHandler(notices)
    try:
        value = str(uuid.uuid4())
        first = fingerprint(value)
        assert fingerprint(value) == first
        guard_log.install()
        assert fingerprint(value) == first
    finally:
        logfingerprints.LOG.removeHandler(notices)
    assert len(notices.lines) == 1
    assert "will not match across processes" in notices.lines[0]


# -- patterns -----------------------------------------------------------------

SECRET_CASES = [
    ("X-Auth-Token: tok-AAA111 next", "X-Auth-Token: *** next"),
    ("x-subject-token:tok-AAA111", "x-subject-token:***"),
    ("X-Service-Token = tok-AAA111;", "X-Service-Token = ***;"),
    ("HTTP_X_AUTH_TOKEN=tok-AAA111 x", "HTTP_X_AUTH_TOKEN=*** x"),
    ("Authorization: Bearer tok-AAA111 rest", "Authorization: Bearer *** rest"),
    ("authorization: basic dXNlcjpwYXNz", "authorization: basic ***"),
    ("fernet gAAAAABmZ8xQ_tok-AAA111_tok-AAA111== end", "fernet *** end"),
    ("password=hunter2 user=bob", "password=*** user=bob"),
    ("PASSWD: hunter2, next", "PASSWD: ***, next"),
    ("pwd=hunter2&x=1", "pwd=***&x=1"),
    ("client_secret = 's3 cr3t' end", "client_secret = '***' end"),
    ("api_key=K-123 apikey=K-456", "api_key=*** apikey=***"),
    ("credential: C-1", "credential: ***"),
    ('private_key="----BEGIN----"', 'private_key="***"'),
    ("openstack --os-token tok-AAA111 server list", "openstack --os-token *** server list"),
    ("openstack --os-password=hunter2 x", "openstack --os-password=*** x"),
    (
        "connect postgresql+psycopg://guard:hun@ter2@db.example:5432/guard now",
        "connect postgresql+psycopg://guard:***@db.example:5432/guard now",
    ),
    ("amqp://:hunter2@mq/ ok", "amqp://:***@mq/ ok"),
    ("headers [('X-Auth-Token', 'tok-AAA111')]", "headers [('X-Auth-Token', '***')]"),
    ("{'password': 'hunter2', 'user': 'bob'}", "{'password': '***', 'user': 'bob'}"),
    ("jws eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl end", "jws *** end"),
]


@pytest.mark.parametrize(("text", "expected"), SECRET_CASES)
def test_secrets_are_masked(text: str, expected: str) -> None:
    assert guard_log.redact(text) == expected


def test_the_issue_json_keeps_user_and_project_and_stays_json() -> None:
    text = '{"password": "x", "user": "bob", "project": "p1"}'
    assert json.loads(guard_log.redact(text)) == {
        "password": "***",
        "user": "bob",
        "project": "p1",
    }


@pytest.mark.parametrize(
    "document",
    [
        {"token": 12345, "user": "bob"},
        {"auth": {"passwordCredentials": {"password": 'a "quoted", odd} value'}}, "n": None},
        {"body": json.dumps({"password": "inner", "keep": "me"})},  # JSON inside JSON
    ],
)
def test_json_stays_valid_with_secrets_masked(document: dict[str, object]) -> None:
    redacted = guard_log.redact(json.dumps(document))
    parsed = json.loads(redacted)
    for secret in ("12345", 'a \\"quoted\\"', "quoted", "inner"):
        assert secret not in redacted
    assert "bob" in redacted or "keep" in redacted or "passwordCredentials" in redacted
    assert isinstance(parsed, dict)


def test_ids_become_fingerprints_and_request_ids_stay() -> None:
    value = uuid.uuid4()
    request_id = f"req-{uuid.uuid4()}"
    text = (
        f"consumer {value} owner {value.hex.upper()} path /c/{str(value).upper()}/x "
        f"req {request_id} keystone={uuid.uuid4().hex}"
    )
    redacted = guard_log.redact(text)
    assert str(value) not in redacted.lower()
    assert value.hex not in redacted.lower()
    assert redacted.count(fingerprint(str(value))) == 3
    assert request_id in redacted
    assert len(FINGERPRINT_RE.findall(redacted)) == 4


def test_ids_inside_longer_hex_runs_and_64_hex_ids_are_fingerprinted() -> None:
    value = uuid.uuid4()
    mapping_id = uuid.uuid4().hex + uuid.uuid4().hex  # keystone's id-mapping ids: 64 hex
    glued = f"a{value}"
    text = f"id {mapping_id} glued {glued} run {value.hex}f0 upper {mapping_id.upper()}"
    redacted = guard_log.redact(text)
    for raw in (mapping_id, str(value), value.hex):
        assert raw not in redacted.lower()
    assert redacted.count(fingerprint(mapping_id)) == 2
    assert len(FINGERPRINT_RE.findall(redacted)) == 4
    assert guard_log.redact(f"req-{value}") == f"req-{value}"
    assert guard_log.redact(f"req-{value}0") == f"req-{fingerprint(f'{value}0')}"


@pytest.mark.parametrize(
    "hostile",
    [
        "--" + "-" * 20_000 + "token",
        "token" * 20_000,
        "://a:" + "b" * 50_000 + " password=" + "x",
        '"password": "' + "\\" * 20_000,
    ],
)
def test_hostile_lines_are_redacted_in_linear_time(hostile: str) -> None:
    # A quadratic pattern would take minutes here; the test then times out the suite.
    redacted = guard_log.redact(hostile)
    assert redacted.endswith(("***", "token", "\\", '"***"'))


def test_redaction_is_idempotent_and_leaves_plain_text_alone() -> None:
    text = f"user {uuid.uuid4()} token=abc password='x' url=mysql://u:p@h/db"
    once = guard_log.redact(text)
    assert guard_log.redact(once) == once
    plain = "GET /consumers returned 200 in 3.2 ms, passed 3 checks"
    assert guard_log.redact(plain) is plain


# -- the filter on records ------------------------------------------------------


def test_positional_and_dict_arguments_are_redacted_after_formatting(
    logger: logging.Logger,
) -> None:
    value = str(uuid.uuid4())
    logger.info("consumer %s token=%s", value, "tok-AAA111")
    logger.info("consumer %(uuid)s password=%(pw)s", {"uuid": value, "pw": "hunter2"})
    lines = logger.handlers[0].lines  # type: ignore[attr-defined]
    print_ = fingerprint(value)
    assert lines == [f"INFO consumer {print_} token=***", f"INFO consumer {print_} password=***"]
    record = logger.handlers[0].records[0]  # type: ignore[attr-defined]
    assert record.args == ()


def test_extra_fields_are_redacted_nested_and_by_name(logger: logging.Logger) -> None:
    value = str(uuid.uuid4())
    context = oslo_context.RequestContext(
        user_id=value, project_id="p1", auth_token="tok-AAA111", overwrite=False
    )
    logger.info(
        "with extras",
        extra={
            "consumer": value,
            "token": "tok-AAA111",
            "nested": {"ids": [value, (value,)], "headers": {"X-Auth-Token": "tok-BBB222"}},
            "context": context,
            "count": 3,
        },
    )
    record = logger.handlers[0].records[0]  # type: ignore[attr-defined]
    printed = fingerprint(value)
    assert record.consumer == printed
    assert record.token == "***"
    assert record.nested == {
        "ids": [printed, (printed,)],
        "headers": {"X-Auth-Token": "***"},
    }
    assert record.context["user"] == printed  # oslo.log formatters read this dict
    assert record.context["user_identity"].startswith(f"{printed} p1 ")
    assert record.context["auth_token"] == "***"
    assert record.count == 3
    assert "tok-" not in repr(record.__dict__)


def test_tracebacks_are_formatted_and_redacted(logger: logging.Logger) -> None:
    value = str(uuid.uuid4())
    try:
        raise ValueError(f"consumer {value} has password=hunter2")  # raw id in source too
    except ValueError:
        logger.exception("failed for %s", value)
    text = output(logger)
    assert "Traceback (most recent call last)" in text
    assert "ValueError: consumer <id:" in text
    assert value not in text
    assert "hunter2" not in text
    record = logger.handlers[0].records[0]  # type: ignore[attr-defined]
    assert record.exc_info is None  # no formatter can render the raw exception again


def test_stack_info_is_redacted(logger: logging.Logger) -> None:
    value = str(uuid.uuid4())

    def deep(consumer_uuid: str) -> None:
        logger.warning("here %s", consumer_uuid, stack_info=True)

    deep(value)
    record = logger.handlers[0].records[0]  # type: ignore[attr-defined]
    assert record.stack_info.startswith("Stack (most recent call last)")
    assert value not in output(logger)


def test_a_record_that_cannot_be_formatted_is_withheld_not_raised(
    logger: logging.Logger,
) -> None:
    value = str(uuid.uuid4())
    logger.info("two %s %s", value)  # one argument short
    text = output(logger)
    assert "unformattable log arguments withheld" in text
    assert value not in text


def test_two_filtered_handlers_give_the_same_line() -> None:
    lg = logging.Logger("guard.two")
    first, second = ListHandler(), ListHandler()
    lg.addHandler(first)
    lg.addHandler(second)
    value = str(uuid.uuid4())
    lg.warning("id %s token: %s", value, "tok-AAA111")
    assert first.lines == second.lines == [f"WARNING id {fingerprint(value)} token: ***"]


# -- request scope --------------------------------------------------------------


def test_request_scope_scrubs_its_values_by_value(logger: logging.Logger) -> None:
    with request_scope(
        {"auth_token": "opaque-tok", "user_id": "alice", "project_id": "p1", "roles": None}
    ):
        logger.info("user alice of p1 sent opaque-tok; alice2 and ap1 are other words")
    logger.info("after: alice")
    assert logger.handlers[0].lines == [  # type: ignore[attr-defined]
        f"INFO user {fingerprint('alice')} of {fingerprint('p1')} sent ***; "
        "alice2 and ap1 are other words",
        "INFO after: alice",
    ]


def test_a_reused_request_scope_scrubs_as_a_fresh_one_and_the_reuse_is_bounded() -> None:
    """Scopes from the same values are kept and reused: the same values, the same
    scrubbing; other values, their own; and the kept scopes stay few and small."""
    values = {"auth_token": "opaque-tok", "user_name": "alice", "project_id": "p1"}
    text = "alice of p1 sent opaque-tok"
    seen = []
    for _ in range(3):
        with request_scope(dict(values)):
            seen.append(guard_log.redact(text))
    with request_scope({**values, "user_name": "bob"}):
        other = guard_log.redact(text)
    expected = f"{fingerprint('alice')} of {fingerprint('p1')} sent ***"
    assert seen == [expected] * 3
    assert other == f"alice of {fingerprint('p1')} sent ***"
    for number in range(3 * logscope._MAX_SCOPES):
        with request_scope({"user_id": f"u{number}"}):
            pass
    assert 0 < len(logscope._scopes) <= logscope._MAX_SCOPES
    with request_scope({"user_id": "u1", "auth_token": "t" * 2000}):
        pass
    assert all(len(repr(key)) <= logscope._SCOPE_KEY_CHARS for key in logscope._scopes)


def test_request_scope_with_a_list_fingerprints_every_value(logger: logging.Logger) -> None:
    with request_scope(["opaque-tok", "alice"]), request_scope({"x": "p1"}):
        logger.info("opaque-tok alice p1")
    assert output(logger) == (
        f"INFO {fingerprint('opaque-tok')} {fingerprint('alice')} {fingerprint('p1')}"
    )


def test_request_scopes_of_two_threads_do_not_mix(logger: logging.Logger) -> None:
    barrier = threading.Barrier(2)
    lines: dict[str, str] = {}

    def request(own: str, other: str) -> None:
        with request_scope({"auth_token": own}):
            barrier.wait()  # both scopes are active now
            lines[own] = guard_log.redact(f"mine={own}. other {other}")
            barrier.wait()

    threads = [
        threading.Thread(target=request, args=("tokenA1", "tokenB2")),
        threading.Thread(target=request, args=("tokenB2", "tokenA1")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lines == {"tokenA1": "mine=***. other tokenB2", "tokenB2": "mine=***. other tokenA1"}


# -- install ----------------------------------------------------------------------


def _filters(handler: logging.Handler) -> list[logging.Filter]:
    return [f for f in handler.filters if isinstance(f, guard_log.RedactingFilter)]


@pytest.mark.usefixtures("isolated_install")
def test_install_covers_root_non_propagating_and_later_handlers() -> None:
    root_handler = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(root_handler)
    quiet = logging.getLogger("guard.test.quiet")
    quiet.propagate = False
    quiet_handler = logging.StreamHandler(io.StringIO())
    quiet.handlers = [quiet_handler]  # attached without addHandler
    try:
        guard_log.install()
        guard_log.install()  # idempotent
        assert len(_filters(root_handler)) == 1
        assert len(_filters(quiet_handler)) == 1
        assert logging.lastResort is not None
        assert len(_filters(logging.lastResort)) == 1
        later = logging.StreamHandler(io.StringIO())
        logging.getLogger("guard.test.later").addHandler(later)
        assert len(_filters(later)) == 1
    finally:
        quiet.handlers = []
        logging.getLogger().removeHandler(root_handler)


@pytest.mark.usefixtures("isolated_install")
def test_handlers_from_dict_config_after_install_redact() -> None:
    guard_log.install()
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"s": {"class": "logging.StreamHandler", "stream": stream}},
            "loggers": {"guard.test.dict": {"handlers": ["s"], "propagate": False}},
        }
    )
    lg = logging.getLogger("guard.test.dict")
    try:
        value = str(uuid.uuid4())
        lg.warning("consumer %s X-Auth-Token: %s", value, "tok-AAA111")
        assert stream.getvalue() == f"consumer {fingerprint(value)} X-Auth-Token: ***\n"
    finally:
        lg.handlers = []


@pytest.mark.usefixtures("isolated_install")
def test_the_shipped_logging_conf_loads_and_redacts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    conf = Path(__file__).parents[2] / "etc" / "guard" / "logging.conf"
    guard_log.install()
    logging.config.fileConfig(conf, disable_existing_loggers=False)
    value = str(uuid.uuid4())
    logging.getLogger("guard.audit").info('{"user": "%s"}', value)
    logging.getLogger("guard.access").info("GET /consumers/%s 200", value)
    out, err = capsys.readouterr()
    printed = fingerprint(value)
    assert f'{{"user": "{printed}"}}\n' in out
    assert f"INFO guard.access GET /consumers/{printed} 200" in err
    assert value not in out + err


def _oslo_log_to_file(tmp_path: Path, **overrides: object) -> Path:
    """oslo.log set up as guard's services set it up, to a file; guard's filter installed."""
    from oslo_config import cfg
    from oslo_log import log as oslo_log

    conf = cfg.ConfigOpts()
    oslo_log.register_options(conf)
    conf([], project="guard")
    log_file = tmp_path / "guard.log"
    conf.set_override("log_file", str(log_file))
    conf.set_override("default_log_levels", [])
    for name, value in overrides.items():
        conf.set_override(name, value)
    guard_log.install()
    oslo_log.setup(conf, "guard")
    return log_file


@pytest.mark.usefixtures("isolated_install")
def test_oslo_log_output_is_redacted_context_and_error_summary_too(tmp_path: Path) -> None:
    from oslo_log import log as oslo_log

    log_file = _oslo_log_to_file(tmp_path, debug=True)
    lg = oslo_log.getLogger("guard.test.oslo")
    user, project, consumer = (str(uuid.uuid4()) for _ in range(3))
    context = oslo_context.RequestContext(
        user_id=user, project_id=project, auth_token="tok-AAA111", overwrite=False
    )
    lg.info("deleted consumer %s", consumer, context=context)
    try:
        raise RuntimeError(f"consumer {consumer} token=tok-AAA111")
    except RuntimeError:
        lg.warning("while answering")  # oslo.log adds the error summary itself
        lg.exception("failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    for raw in (user, project, consumer, "tok-AAA111"):
        assert raw not in text
    assert fingerprint(user) in text  # oslo.log's [req user project] prefix
    assert f"RuntimeError: consumer {fingerprint(consumer)} token=***" in text
    for handler in logging.getLogger().handlers:
        handler.close()


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        (
            "guard.log",
            {"guard.logpatterns", "guard.logfingerprints", "guard.logscope", "guard.logrecords"},
        ),
        ("guard.logscope", {"guard.logpatterns", "guard.logfingerprints"}),
        ("guard.logfingerprints", {"guard.logpatterns"}),
        ("guard.logpatterns", set()),
        ("guard.logrecords", set()),
    ],
)
def test_stdlib_only_module(module: str, allowed: set[str]) -> None:
    """The redaction is near the bottom of the layers: its modules import nothing of guard
    but each other, downwards, and guard.log the records of guard's own lines."""
    source = sys.modules[module].__file__
    assert source is not None
    with open(source, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "guard":
            imported.update(f"guard.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    guard_imports = {name for name in imported if name.split(".")[0] == "guard"}
    assert guard_imports == allowed


@pytest.mark.usefixtures("isolated_install")
@pytest.mark.parametrize(
    "line_format",
    [
        "%(request_id)s [%(user_identity)s] %(message)s",  # oslo.log's shape: values first
        "%(message)s %(user_identity)s",  # values after the line
        "%(user_identity)s%(message)s%(user_identity)s",  # glued on both sides
    ],
)
def test_guards_own_lines_through_oslo_log_keep_the_line_and_redact_the_context(
    tmp_path: Path, line_format: str
) -> None:

    log_file = _oslo_log_to_file(tmp_path, logging_context_format_string=line_format)
    user, project, consumer = (str(uuid.uuid4()) for _ in range(3))
    previous = oslo_context.get_current()
    # The thread's current context, as the middleware makes each request's.
    context = oslo_context.RequestContext(user_id=user, project_id=project, overwrite=True)
    line = f"GET /consumers/{fingerprint(consumer)} 200 2 bytes 9 us {context.request_id}"
    try:
        guard_log.log_redacted(logging.getLogger("guard.access"), logging.INFO, line)
    finally:
        if previous is not None:
            previous.update_store()
        else:  # no ids left behind in the thread for later tests
            oslo_context.RequestContext(overwrite=True)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    for handler in logging.getLogger().handlers:
        handler.close()
    assert user not in text and project not in text and consumer not in text
    assert fingerprint(user) in text
    assert line in text or "%(message)s%" in line_format  # glued: the whole text's pass


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(
        st.sampled_from(["-", "default", "alice", "p1", uuid.uuid4().hex, "opaque-tok"]),
        st.text(max_size=40),
    ),
    scope_values=st.dictionaries(
        st.sampled_from(["user_name", "project_id", "auth_token", "domain_id"]),
        st.sampled_from(["alice", "p1", "opaque-tok", "default", uuid.uuid4().hex]),
        max_size=4,
    ),
)
def test_a_remembered_value_is_redacted_as_redact_does(value: str, scope_values: dict) -> None:
    """redact_value() gives redact()'s text, in and out of a scope, asked once or twice."""
    assert guard_log.redact_value(value) == guard_log.redact(value)
    with request_scope(dict(scope_values)):
        assert guard_log.redact_value(value) == guard_log.redact(value)
        assert guard_log.redact_value(value) == guard_log.redact(value)  # remembered
    assert guard_log.redact_value(value) == guard_log.redact(value)


def test_a_remembered_value_follows_a_new_fingerprint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value remembered under one key is fingerprinted under the next one."""
    monkeypatch.setattr(logfingerprints, "_fingerprinter", None)
    user_id = uuid.uuid4().hex
    with request_scope({"user_id": user_id}):
        first = guard_log.redact_value(user_id)
        logfingerprints.use_key("another key")
        second = guard_log.redact_value(user_id)
        assert second == guard_log.redact(user_id) == fingerprint(user_id)
    assert first != second
    assert user_id not in first + second


def test_remembered_values_stay_bounded() -> None:
    """Short values under small scopes only, at most so many of them."""
    with request_scope({"user_name": "alice"}):
        for number in range(3 * guard_log._MAX_REMEMBERED):
            guard_log.redact_value(f"v{number}")
        guard_log.redact_value("x" * 1000)
    with request_scope({"auth_token": "t" * 2000}):
        guard_log.redact_value("alice")
    remembered = guard_log._remembered[1]
    assert 0 < len(remembered) <= guard_log._MAX_REMEMBERED
    assert all(len(text) <= guard_log._REMEMBERED_CHARS for _, text in remembered)
    assert all(scope.small for scope, _ in remembered)
