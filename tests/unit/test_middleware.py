"""The guard middleware on its own, below a small real WSGI app.

The app below records the context the middleware built, or fails in the
ways the tests choose, so each rule of the edge is checked in isolation: who
is trusted, which request ids are kept, what every error looks like and
what the access log says.
"""

from __future__ import annotations

import io
import logging
import re
import urllib.parse
import uuid
from typing import Any

import pytest
import webob
import webob.exc
import webtest
from oslo_config import cfg

from guard import accesslog, exception, middleware
from guard import conf as guard_conf
from guard import log as guard_log
from guard.api.environ import ENV_AUTHENTICATED, ENV_CONTEXT, ENV_MAX_BODY_SIZE
from guard.logfingerprints import fingerprint
from guard.policy import make_enforcer
from guard.policy.paths import PolicyFileMissing

# Parametrized ids must be the same in every xdist worker.
FIXED_UUID = "0c6a3e44-5b8e-4f1c-9d3a-2f6b7c8d9e01"
REQUEST_ID_RE = re.compile(r"^req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
CONFIRMED = {
    "X-Identity-Status": "Confirmed",
    "X-User-Id": "u-alice",
    "X-Project-Id": "p-one",
    "X-Roles": "admin, member,reader",
}


class Recorder:
    """A WSGI app that remembers each environ and answers what it is told."""

    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []
        self.fault: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.environs.append(environ)
        if isinstance(self.fault, BaseException):
            raise self.fault
        if isinstance(self.fault, webob.Response):
            return self.fault(environ, start_response)
        response = webob.Response(json_body={"ok": True})
        return response(environ, start_response)

    @property
    def context(self) -> Any:
        return self.environs[-1][ENV_CONTEXT]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def enforcer() -> Any:
    return make_enforcer(guard_conf.load())


@pytest.fixture
def app(recorder: Recorder, enforcer: Any) -> webtest.TestApp:
    return webtest.TestApp(middleware.GuardMiddleware(recorder, enforcer))


def assert_contract_error(response: webtest.TestResponse, status: int, code: str) -> None:
    assert response.status_int == status
    assert response.content_type == "application/json"
    (error,) = response.json["errors"]
    assert set(error) == {"status", "title", "detail", "code", "request_id"}
    assert error["status"] == status
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Openstack-Request-Id"]
    assert REQUEST_ID_RE.match(error["request_id"])


def test_confirmed_identity_becomes_the_context(app: webtest.TestApp, recorder: Recorder) -> None:
    app.get("/consumers", headers={**CONFIRMED, "OpenStack-System-Scope": "all"})
    context = recorder.context
    assert recorder.environs[-1][ENV_AUTHENTICATED] is True
    assert context.user_id == "u-alice"
    assert context.project_id == "p-one"
    assert context.roles == ["admin", "member", "reader"]
    assert context.system_scope == "all"
    assert context.can("admin", {}, fatal=False) is False  # system scope fails project rules


def test_confirmed_context_asks_the_enforcer(app: webtest.TestApp, recorder: Recorder) -> None:
    app.get("/consumers", headers={**CONFIRMED, "X-Roles": "reader"})
    context = recorder.context
    assert context.can("guard:consumers:show", {"project_id": "p-one"}, fatal=False)
    assert not context.can("guard:consumers:show", {"project_id": "p-two"}, fatal=False)
    with pytest.raises(exception.Forbidden):
        context.can("guard:consumers:delete", {"project_id": "p-one"})


@pytest.mark.parametrize("status", [None, "Invalid", "confirmed", "Confirmed ", "CONFIRMED"])
def test_identity_headers_are_ignored_unless_confirmed(
    app: webtest.TestApp, recorder: Recorder, status: str | None
) -> None:
    headers = {
        **CONFIRMED,
        "X-Service-Roles": "service",
        "OpenStack-System-Scope": "all",
        "X-Is-Admin-Project": "True",
    }
    if status is None:
        del headers["X-Identity-Status"]
    else:
        headers["X-Identity-Status"] = status
    response = app.get("/consumers", headers=headers, status=401)
    assert_contract_error(response, 401, "guard.unauthorized")
    assert recorder.environs == []  # nothing below saw the request

    app.get("/healthcheck", headers=headers)
    context = recorder.context
    assert recorder.environs[-1][ENV_AUTHENTICATED] is False
    assert context.user_id is None and context.project_id is None
    assert context.roles == [] and context.service_roles == []
    assert context.system_scope is None
    assert context.is_admin_project is False
    assert context.can("admin", {}, fatal=False) is False


def test_confirmed_without_a_user_is_anonymous(app: webtest.TestApp) -> None:
    headers = {k: v for k, v in CONFIRMED.items() if k != "X-User-Id"}
    assert_contract_error(
        app.get("/consumers", headers=headers, status=401), 401, "guard.unauthorized"
    )


def test_is_admin_project_defaults_to_false(app: webtest.TestApp, recorder: Recorder) -> None:
    app.get("/consumers", headers=CONFIRMED)
    assert recorder.context.is_admin_project is False
    app.get("/consumers", headers={**CONFIRMED, "X-Is-Admin-Project": "True"})
    assert recorder.context.is_admin_project is True


@pytest.mark.parametrize("path", ["/", "/healthcheck"])
def test_public_paths_need_no_identity(app: webtest.TestApp, path: str) -> None:
    assert app.get(path).json == {"ok": True}


@pytest.mark.parametrize("path", ["/consumers", "/nowhere", "/healthcheck/", "//", "/consumers/x"])
def test_every_other_path_is_401_for_anonymous(app: webtest.TestApp, path: str) -> None:
    assert_contract_error(app.get(path, status=401), 401, "guard.unauthorized")


def test_request_id_header_and_valid_global_id(app: webtest.TestApp, recorder: Recorder) -> None:
    inbound = f"req-{uuid.uuid4()}"
    response = app.get("/consumers", headers={**CONFIRMED, "X-Openstack-Request-Id": inbound})
    own = response.headers["X-Openstack-Request-Id"]
    assert REQUEST_ID_RE.match(own) and own != inbound
    assert recorder.context.request_id == own
    assert recorder.context.global_request_id == inbound


@pytest.mark.parametrize(
    "inbound",
    [
        f"req-{FIXED_UUID.upper()}",
        f"req-{FIXED_UUID}x",
        FIXED_UUID,
        f"req-{FIXED_UUID.replace('-', '')}",
        "req-../../etc/passwd",
        f"req-{FIXED_UUID}\n",
    ],
)
def test_invalid_global_request_id_is_ignored(
    app: webtest.TestApp, recorder: Recorder, inbound: str
) -> None:
    app.get("/consumers", headers={**CONFIRMED, "X-Openstack-Request-Id": inbound})
    assert recorder.context.global_request_id is None


@pytest.mark.parametrize("inbound", [f"req-{FIXED_UUID}", f"req-{FIXED_UUID}\n", "req-x", ""])
def test_request_id_filter_as_oslos(recorder: Recorder, inbound: str) -> None:
    """guard's plain-WSGI request_id gives the ids and header oslo.middleware's does."""
    app = webtest.TestApp(middleware.RequestId(recorder, guard_conf.load()))
    response = app.get("/", headers={"X-Openstack-Request-Id": inbound} if inbound else {})
    own = recorder.environs[-1]["openstack.request_id"]
    assert REQUEST_ID_RE.match(own) and own != inbound
    assert response.headers.getall("X-Openstack-Request-Id") == [own]
    expected_global = inbound if REQUEST_ID_RE.fullmatch(inbound) and "\n" not in inbound else None
    assert recorder.environs[-1].get("openstack.global_request_id") == expected_global


def test_request_id_filter_keeps_the_header_set_below(recorder: Recorder) -> None:
    below = webob.Response(json_body={}, headers={"X-OpenStack-Request-ID": "req-below"})
    recorder.fault = below
    response = webtest.TestApp(middleware.RequestId(recorder, guard_conf.load())).get("/")
    assert response.headers.getall("X-Openstack-Request-Id") == ["req-below"]


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (exception.NotFound(), 404, "guard.not_found"),
        (exception.ConcurrentUpdate(), 409, "guard.concurrent_update"),
        (webob.exc.HTTPRequestEntityTooLarge(), 413, "guard.too_large"),
        (webob.exc.HTTPForbidden(), 403, "guard.forbidden"),
    ],
)
def test_errors_raised_from_below_become_contract_errors(
    app: webtest.TestApp, recorder: Recorder, fault: Any, status: int, code: str
) -> None:
    recorder.fault = fault
    response = app.get("/consumers", headers=CONFIRMED, status="*")
    assert_contract_error(response, status, code)


@pytest.mark.parametrize(
    "fault",
    [
        webob.Response(status=404, body=b"<html>no</html>", content_type="text/html"),
        webob.Response(status=409, body=b"conflict", content_type="text/plain", charset=None),
        webob.Response(status=418, body=b"teapot"),
        webob.Response(status=502, body=b"upstream"),
        webob.Response(status=405, headers={"Allow": "GET, PUT"}, body=b"no"),
    ],
)
def test_answers_from_below_pass_through_unchanged(
    app: webtest.TestApp, recorder: Recorder, fault: webob.Response
) -> None:
    # The filter may wrap any service: its answers are its own (issue 13).
    recorder.fault = fault
    response = app.post("/consumers", headers=CONFIRMED, status="*")
    assert response.status == fault.status
    assert response.body == fault.body
    for name, value in fault.headerlist:
        assert response.headers[name] == value


def test_unexpected_error_is_logged_and_generic(
    app: webtest.TestApp, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "SELECT token FROM users WHERE id='0b6a' -- /etc/guard/policy.yaml"
    recorder.fault = RuntimeError(secret)
    with caplog.at_level(logging.INFO):
        response = app.get("/consumers", headers=CONFIRMED, status=500)
    assert_contract_error(response, 500, "guard.internal")
    assert response.json["errors"][0]["detail"] == exception.Internal.default_detail
    assert "SELECT" not in response.text and "Traceback" not in response.text
    (record,) = [r for r in caplog.records if r.name == "guard.middleware"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None  # no test leaves guard's filter installed
    assert response.headers["X-Openstack-Request-Id"] in record.getMessage()


def test_one_access_line_with_ids_fingerprinted(
    app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = str(uuid.uuid4())
    with caplog.at_level(logging.INFO, logger="guard.access"):
        response = app.get(f"/consumers/{consumer}?marker={consumer}&limit=5", headers=CONFIRMED)
    (record,) = [r for r in caplog.records if r.name == "guard.access"]
    line = record.getMessage()
    assert record.levelno == logging.INFO
    assert consumer not in line and consumer.replace("-", "") not in line
    assert line.startswith("GET /consumers/<id:")
    assert "?marker=<id:" in line and "&limit=5 " in line  # a number is not an id
    assert f" 200 {response.content_length} bytes " in line
    assert re.search(r" \d+ us req-", line)
    assert line.endswith(response.headers["X-Openstack-Request-Id"])


@pytest.mark.parametrize(
    ("target", "raw"),
    [
        ("/consumers/carolname", "carolname"),  # the caller's name as a path word
        ("/carolproj/servers", "carolproj"),
        ("/plainuser2/consumers?limit=5", "plainuser2"),  # a non-hex id, word-shaped
        ("/consumers?limit=4242", "4242"),  # a number that is the caller's project id
    ],
)
def test_the_callers_own_values_in_the_target_are_fingerprinted(
    app: webtest.TestApp, caplog: pytest.LogCaptureFixture, target: str, raw: str
) -> None:
    """Values the request carried are scrubbed by value, the access line's target too."""
    identity = {
        **CONFIRMED,
        "X-User-Id": "plainuser2",
        "X-Project-Id": "4242" if raw == "4242" else "plainproj2",
        "X-User-Name": "carolname",
        "X-Project-Name": "carolproj",
    }
    for _ in range(2):  # the second from the cache of recent targets
        with caplog.at_level(logging.INFO, logger="guard.access"):
            app.get(target, headers=identity, status="*")
        (record,) = [r for r in caplog.records if r.name == "guard.access"]
        line = record.getMessage()
        assert raw not in line
        assert fingerprint(raw) in line
        caplog.clear()
    with caplog.at_level(logging.INFO, logger="guard.access"):
        app.get(target, headers=CONFIRMED, status="*")  # another caller: the word is a word
    (record,) = [r for r in caplog.records if r.name == "guard.access"]
    assert raw in record.getMessage()


def test_access_line_for_a_rejected_request(
    app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="guard.access"):
        app.request("/evil\r\nINJECTED", method="GET\n", status=401)
    (record,) = [r for r in caplog.records if r.name == "guard.access"]
    assert "INJECTED" not in record.getMessage() and "\n" not in record.getMessage()
    assert record.getMessage().startswith("? /<id:")


def test_size_limit_hands_the_configured_limit_down(recorder: Recorder) -> None:
    conf = guard_conf.load()
    app = webtest.TestApp(middleware.SizeLimit(recorder, conf))
    app.put("/x", b"{}", content_type="application/json")
    assert recorder.environs[-1][ENV_MAX_BODY_SIZE] == 65536
    conf.set_override("max_request_body_size", 10, group="oslo_middleware")
    app = webtest.TestApp(middleware.SizeLimit(recorder, conf))
    app.put("/x", b"{" * 100, content_type="application/json")  # no early answer
    assert recorder.environs[-1][ENV_MAX_BODY_SIZE] == 10


def test_filter_factory_builds_the_middleware(tmp_path: Any, recorder: Recorder) -> None:
    config = tmp_path / "guard.conf"
    config.write_text("[oslo_policy]\npolicy_file = operator.yaml\n")
    with pytest.raises(PolicyFileMissing, match=r"operator\.yaml"):  # named, missing: no start
        middleware.filter_factory({"config_file": str(config)})
    (tmp_path / "operator.yaml").write_text("{}\n")  # found beside the config file
    wrapped = middleware.filter_factory({"config_file": str(config)})(recorder)
    assert isinstance(wrapped, middleware.GuardMiddleware)
    webtest.TestApp(wrapped).get("/consumers", headers={**CONFIRMED, "X-Roles": "admin"})
    assert recorder.context.can("admin", {}, fatal=False)


def test_guard_options_are_listed_for_the_generator() -> None:
    names = {(group, opt.name) for group, opts in guard_conf.list_opts() for opt in opts}
    assert {("database", "connection"), ("guard", "fingerprint_key"), ("guard", "pipeline")} <= (
        names
    )
    conf = guard_conf.load()
    assert isinstance(conf, cfg.ConfigOpts)
    assert conf.oslo_middleware.max_request_body_size == 65536
    assert conf.guard.pipeline == "main"  # fails closed without keystone settings


@pytest.mark.usefixtures("isolated_install")
def test_unexpected_error_log_is_redacted(app: webtest.TestApp, recorder: Recorder) -> None:
    guard_log.install()  # as guard serve does; later handlers get the filter too
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("guard.middleware")
    logger.addHandler(handler)
    consumer = str(uuid.uuid4())
    token = "gAAAAABredactmetoken0123456789abcdef"
    recorder.fault = RuntimeError(f"lookup of {consumer} with {token} failed")
    try:
        response = app.get(
            f"/consumers/{consumer}", headers={**CONFIRMED, "X-Auth-Token": token}, status=500
        )
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert consumer not in text and token not in text and "u-alice" not in text
    assert response.headers["X-Openstack-Request-Id"] in text


@pytest.mark.parametrize(
    "target",
    [
        "/consumers/%FF",
        "/%C3%28",
        "/healthcheck%FF",
        f"/consumers/{FIXED_UUID}?marker=%FF",
        "/consumers?project_id=%C3%28",
        "/?x=%ED%A0%80",  # a UTF-8 encoded surrogate is not UTF-8 either
    ],
)
@pytest.mark.parametrize("identity", [CONFIRMED, {}])
def test_invalid_utf8_path_or_query_is_400_in_the_contract(
    app: webtest.TestApp,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    target: str,
    identity: dict[str, str],
) -> None:
    with caplog.at_level(logging.INFO):
        response = app.get(target, headers=identity, status="*")
    assert_contract_error(response, 400, "guard.invalid_input")
    assert "UTF-8" in response.json["errors"][0]["detail"]
    assert recorder.environs == []  # nothing below saw it
    (record,) = [r for r in caplog.records if r.name == "guard.access"]
    assert " 400 " in record.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_raw_non_ascii_bytes_in_the_path_are_400() -> None:
    recorder = Recorder()
    environ = webob.Request.blank("/").environ
    environ["PATH_INFO"] = b"/consumers/\xff\xfe".decode("latin-1")
    response = webob.Request(environ).get_response(middleware.GuardMiddleware(recorder, None))
    assert response.status_int == 400
    assert response.json["errors"][0]["code"] == "guard.invalid_input"


def test_valid_utf8_is_passed_down(app: webtest.TestApp, recorder: Recorder) -> None:
    app.get("/consumers/%C3%A9t%C3%A9?x=%E2%9C%93", headers=CONFIRMED)
    assert recorder.environs[-1]["PATH_INFO"] == "/consumers/\xc3\xa9t\xc3\xa9"


class _FailingIterator:
    """An app_iter that fails after its first chunk, as a streaming app might."""

    closed = False

    def __iter__(self) -> Any:
        yield b'{"partial": '
        raise RuntimeError("the stream broke")

    def close(self) -> None:
        _FailingIterator.closed = True


def test_an_error_while_the_app_iterator_runs_is_the_generic_500(
    enforcer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def streaming(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/json")])
        return _FailingIterator()

    app = webtest.TestApp(middleware.GuardMiddleware(streaming, enforcer))
    with caplog.at_level(logging.INFO):
        response = app.get("/consumers", headers=CONFIRMED, status="*")
    assert_contract_error(response, 500, "guard.internal")
    assert "partial" not in response.text
    (record,) = [r for r in caplog.records if r.name == "guard.middleware"]
    # As exc_info, or already rendered into exc_text by guard's filter when
    # another test in this process installed it.
    assert (record.exc_info is not None and record.exc_info[0] is RuntimeError) or (
        "RuntimeError" in (record.exc_text or "")
    )


def test_an_error_in_the_context_builder_is_the_generic_500(
    app: webtest.TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(environ: dict[str, Any], enforcer: Any) -> Any:
        raise ValueError("cannot build a context")

    monkeypatch.setattr(middleware, "context_from_environ", broken)
    response = app.get("/consumers", headers=CONFIRMED, status="*")
    assert_contract_error(response, 500, "guard.internal")


def test_identity_query_values_are_fingerprinted_even_when_numeric(
    app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="guard.access"):
        app.get("/consumers?project_id=98765432&user_id=1234&limit=7", headers=CONFIRMED)
    (record,) = [r for r in caplog.records if r.name == "guard.access"]
    line = record.getMessage()
    assert "98765432" not in line and "1234" not in line.replace("limit=7", "")
    assert "project_id=<id:" in line and "user_id=<id:" in line and "limit=7" in line


def test_long_urls_stay_out_of_the_urlsplit_cache(app: webtest.TestApp) -> None:
    middleware.bound_url_cache()  # building the middleware did it already; idempotent
    short, long = f"/consumers/{uuid.uuid4()}", "/consumers/" + "x" * 100_000
    urllib.parse.urlsplit(short)
    cached = urllib.parse.urlsplit.cache_info().currsize
    assert urllib.parse.urlsplit(long).path == long
    assert urllib.parse.urlsplit.cache_info().currsize == cached  # not kept
    assert urllib.parse.urlsplit(short + "?x").query == "x"
    assert urllib.parse.urlsplit.cache_info().currsize == min(cached + 1, 128)
    urllib.parse.clear_cache()  # the standard library's own API still works


class _InnerLogger(Recorder):
    """A Recorder that logs one line, as a library below the filter would."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        logging.getLogger("guard.tests.inner").warning("inner line")
        return super().__call__(environ, start_response)


def test_log_lines_carry_the_request_id_of_their_own_request(enforcer: Any) -> None:
    """oslo.log's context formatter takes the thread's current context for
    records logged without one (alembic, SQLAlchemy, any library below): it
    must be this request's, not the first request the thread ever served."""
    from oslo_log import formatters

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatters.ContextFormatter(config=guard_conf.load()))
    loggers = [logging.getLogger("guard.tests.inner"), accesslog.ACCESS_LOG]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        app = webtest.TestApp(middleware.GuardMiddleware(_InnerLogger(), enforcer))
        answered = [
            app.get("/consumers", headers=CONFIRMED),
            app.get("/consumers", headers={**CONFIRMED, "X-User-Id": "u-bob"}),
            app.get("/"),
            app.get("/consumers/%ff", status=400),
        ]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    lines = stream.getvalue().splitlines()
    bracketed = [re.search(r"\[\S+ (req-[0-9a-f-]{36})\]", line) for line in lines]
    assert all(bracketed), lines
    expected = []
    for response in answered:
        request_id = response.headers["X-Openstack-Request-Id"]
        # The inner app's line (not reached for the undecodable path), then the access line.
        expected += [request_id] * (1 if response.status_int == 400 else 2)
    assert [match.group(1) for match in bracketed if match] == expected


@pytest.mark.usefixtures("isolated_install")
def test_the_callers_context_does_not_outlive_the_request(app: webtest.TestApp) -> None:
    """A later line of the thread (a server's, a library's) carries no caller's name or id.

    oslo.log's JSON formatter writes the thread's current context whole; the
    request's redaction scope has closed by then.
    """
    from oslo_context import context as oslo_context
    from oslo_log import formatters as oslo_formatters

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(oslo_formatters.JSONFormatter())
    later = logging.getLogger("guard.test.after_the_request")
    later.addHandler(handler)
    later.propagate = False
    guard_log.install()
    name = "alice-" + uuid.uuid4().hex[:6].replace("0", "g")
    app.get("/consumers", headers={**CONFIRMED, "X-User-Name": name, "X-User-Id": "alice"})
    later.warning("Client disconnected")
    handler.flush()
    line = stream.getvalue()
    assert "Client disconnected" in line
    assert name not in line and '"alice"' not in line
    assert oslo_context.get_current() is None


@pytest.mark.usefixtures("isolated_install")
@pytest.mark.parametrize("target", ["/consumers/%FF%FE", "/consumers?project_id=%C3%28"])
def test_a_path_refused_as_not_utf8_logs_no_callers_id_or_name(enforcer: Any, target: str) -> None:
    """The access line of a 400 for an undecodable target, under an operator's identity format.

    The caller's context must not be the thread's before the request's scrub
    scope is open (the ids here are not hex: only the scope could hide them).
    """
    from guard.logformat import ContextFormatter

    conf = guard_conf.load()
    conf.set_override(
        "logging_context_format_string",
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(user_identity)s] %(message)s",
    )
    conf.set_override(
        "logging_user_identity_format", "%(user)s %(project)s %(user_name)s %(project_name)s"
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ContextFormatter(config=conf))
    guard_log.install()
    accesslog.ACCESS_LOG.addHandler(handler)
    level = accesslog.ACCESS_LOG.level
    accesslog.ACCESS_LOG.setLevel(logging.INFO)
    identity = {
        **CONFIRMED,
        "X-User-Id": "plainuser2",
        "X-Project-Id": "plainproj2",
        "X-User-Name": "carolname",
        "X-Project-Name": "carolproj",
    }
    try:
        app = webtest.TestApp(middleware.GuardMiddleware(Recorder(), enforcer))
        response = app.get(target, headers=identity, status=400)
    finally:
        accesslog.ACCESS_LOG.removeHandler(handler)
        accesslog.ACCESS_LOG.setLevel(level)
    line = stream.getvalue()
    assert " 400 " in line and response.headers["X-Openstack-Request-Id"] in line
    for raw in ("plainuser2", "plainproj2", "carolname", "carolproj"):
        assert raw not in line
