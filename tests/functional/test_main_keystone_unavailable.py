"""The ``main`` pipeline when keystone cannot check a token: 503, not 401 nor the server's 500.

With ``delay_auth_decision`` keystonemiddleware marks a token it could not
validate (keystone refusing connections, answering 500) exactly as a token
keystone rejected, so a caller with a valid token was told 401 (authenticate
again) while keystone was down; a keystone that accepted the connection and
never answered made auth_token raise above the guard filter (a 500 from
whatever caught it: ``guard serve``'s last-resort handler, a server's own
page). Now: 503 ``guard.unavailable`` in the contract's JSON, while
a token keystone rejects is still 401 and a request without one still 401.

Real parts: keystonemiddleware's auth_token talks over loopback HTTP to a
listener standing in for keystone (tests/functional/keystone_stub.py: a
valid token, a 404 for an unknown one, then 500s, then no answer at all, or
a port where nothing listens); the pipeline is guard's own assembly and the
shipped api-paste.ini loaded by PasteDeploy, on a real SQLite file.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st
from paste.deploy import loadapp

from guard import conf as guard_conf
from guard import deploy
from guard.db import migration
from guard.middleware import IDENTITY_UNAVAILABLE
from tests.fixtures.logleak import LogLeakDetector
from tests.functional.keystone_stub import (
    SERVICE_PASSWORD,
    KeystoneStub,
    keystone_stub,
    refusing_port,
)
from tests.functional.processes import guard_serve, serving_url, stop
from tests.functional.support import check_error

PASTE_INI = Path(__file__).resolve().parents[2] / "etc" / "guard" / "api-paste.ini"
PROJECT = "proj-keystone-down"


def _write_conf(tmp_path: Path, options: str) -> str:
    database = f"sqlite:///{tmp_path / 'guard.sqlite'}"
    migration.upgrade(database)  # loading an app never migrates
    config = tmp_path / "guard.conf"
    config.write_text(f"[database]\nconnection = {database}\n{options}")
    return str(config)


def _built(config: str) -> webtest.TestApp:
    services = deploy.build_services(guard_conf.load([config]))
    return webtest.TestApp(deploy.build_pipeline(services, "main"))


def _pasted(config: str) -> webtest.TestApp:
    return webtest.TestApp(
        loadapp(f"config:{PASTE_INI}", name="main", global_conf={"config_file": config})
    )


MAKERS: dict[str, Callable[[str], webtest.TestApp]] = {"built": _built, "paste": _pasted}


@pytest.fixture
def stub() -> Iterator[KeystoneStub]:
    with keystone_stub() as running:
        yield running


@pytest.fixture(params=sorted(MAKERS))
def make_app(request: pytest.FixtureRequest) -> Callable[[str], webtest.TestApp]:
    return MAKERS[request.param]


def _get(
    app: webtest.TestApp, token: str | None, path: str = "/consumers"
) -> webtest.TestResponse:
    headers = {"X-Auth-Token": token} if token else {}
    return app.get(path, headers=headers, status="*")


def _unavailable(response: webtest.TestResponse, token: str | None = None) -> None:
    error = check_error(
        response.status_int, response.headers, response.body, 503, "guard.unavailable"
    )
    assert error["detail"] == IDENTITY_UNAVAILABLE
    assert "WWW-Authenticate" not in response.headers  # not "authenticate again"
    if token:
        assert token not in response.text


def _unauthorized(response: webtest.TestResponse) -> None:
    check_error(response.status_int, response.headers, response.body, 401, "guard.unauthorized")


@pytest.mark.parametrize("trouble", ["error", "hang"])
def test_a_token_keystone_cannot_check_is_503_and_a_rejected_one_401(
    tmp_path: Path,
    stub: KeystoneStub,
    make_app: Callable[[str], webtest.TestApp],
    trouble: str,
    log_leaks: LogLeakDetector,
) -> None:
    app = make_app(_write_conf(tmp_path, stub.authtoken_options()))
    # keystone answers: a valid token is served, an unknown one is 401.
    known = stub.add_token("user-known", PROJECT, ["member", "reader"])
    log_leaks.sensitive(known, SERVICE_PASSWORD)
    assert _get(app, known).status_int == 200
    _unauthorized(_get(app, "not-a-token"))

    stub.mode = trouble
    fresh = stub.add_token("user-fresh", PROJECT, ["member", "reader"])
    log_leaks.sensitive(fresh)
    _unavailable(_get(app, fresh), fresh)
    _unavailable(_get(app, fresh, f"/consumers/{uuid.uuid4()}"), fresh)
    _unavailable(_get(app, "not-a-token"))  # keystone cannot say it is invalid either
    _unauthorized(_get(app, None))  # no token: nothing to check, anonymous
    # The public paths answer whoever asks.
    assert _get(app, fresh, "/").status_int == 200
    assert _get(app, fresh, "/healthcheck").json == {"status": "ok"}
    # auth_token's cache still vouches for a token keystone validated before.
    assert _get(app, known).status_int == 200

    stub.mode = "ok"
    assert _get(app, fresh).status_int == 200
    _unauthorized(_get(app, "not-a-token"))


def test_a_keystone_refusing_connections_is_503(
    tmp_path: Path, stub: KeystoneStub, make_app: Callable[[str], webtest.TestApp]
) -> None:
    token = stub.add_token("user-refused", PROJECT, ["member", "reader"])
    with refusing_port() as nowhere:
        app = make_app(_write_conf(tmp_path, stub.authtoken_options(auth_url=nowhere)))
        _unavailable(_get(app, token), token)
        _unavailable(_get(app, "not-a-token"))
        _unauthorized(_get(app, None))


def _status(url: str, token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_guard_serve_answers_a_keystone_that_never_answers_503(
    tmp_path: Path, stub: KeystoneStub, log_leaks: LogLeakDetector
) -> None:
    """A real ``guard serve --pipeline main`` (waitress): no plain-text 500 from the server."""
    config = _write_conf(tmp_path, stub.authtoken_options())
    token = stub.add_token("user-served", PROJECT, ["member", "reader"])
    log_leaks.sensitive(token, SERVICE_PASSWORD)
    process = guard_serve(tmp_path, "--config-file", config, "--pipeline", "main", "--port", "0")
    try:
        url = serving_url(process) + "/consumers"
        assert _status(url, "not-a-token")[0] == 401
        stub.mode = "hang"
        status, document = _status(url, token)
        stub.mode = "ok"
        assert _status(url, token)[0] == 200
    finally:
        stderr = stop(process)
    log_leaks.scan_text(stderr)
    assert status == 503, document
    assert document["errors"][0]["code"] == "guard.unavailable"  # type: ignore[index]
    assert "keystone did not answer a token validation (ConnectTimeout)" in stderr
    assert "Traceback" not in stderr


def test_no_token_is_let_through_or_told_401_while_keystone_fails(
    tmp_path: Path, stub: KeystoneStub
) -> None:
    """Whatever token a client sends while keystone answers 500: 503, never 2xx nor 401."""
    app = _built(_write_conf(tmp_path, stub.authtoken_options()))
    stub.add_token("user-any", PROJECT, ["admin", "member", "reader"])
    stub.mode = "error"
    forged = {"X-Identity-Status": "Confirmed", "X-User-Id": "u", "X-Roles": "admin"}

    @settings(max_examples=30, deadline=None)
    @given(
        token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
        path=st.sampled_from(["/consumers", f"/consumers/{uuid.uuid4()}", "/nowhere"]),
    )
    def check(token: str, path: str) -> None:
        response = app.get(path, headers={"X-Auth-Token": token, **forged}, status="*")
        _unavailable(response)

    check()
