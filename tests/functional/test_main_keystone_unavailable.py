"""The ``main`` pipeline when keystone cannot check a token: 503, not 401 nor the server's 500.

With ``delay_auth_decision`` keystonemiddleware marks a token it could not
validate (keystone refusing connections, answering 500) exactly as a token
keystone rejected, so a caller with a valid token was told 401 (authenticate
again) while keystone was down; a keystone that accepted the connection and
never answered made auth_token raise above the guard filter (the server's
plain-text 500). Now: 503 ``guard.unavailable`` in the contract's JSON, while
a token keystone rejects is still 401 and a request without one still 401.

Real parts: keystonemiddleware's auth_token talks over loopback HTTP to a
listener standing in for keystone (tests/functional/keystone_stub.py: a
valid token, a 404 for an unknown one, then 500s, then no answer at all, or
a port where nothing listens); the pipeline is guard's own assembly and the
shipped api-paste.ini loaded by PasteDeploy, on a real SQLite file.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import webtest
from paste.deploy import loadapp

from guard import conf as guard_conf
from guard import deploy
from guard.db import migration
from guard.middleware import IDENTITY_UNAVAILABLE
from tests.functional.keystone_stub import KeystoneStub, keystone_stub, refusing_port
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
) -> None:
    app = make_app(_write_conf(tmp_path, stub.authtoken_options()))
    # keystone answers: a valid token is served, an unknown one is 401.
    known = stub.add_token("user-known", PROJECT, ["member", "reader"])
    assert _get(app, known).status_int == 200
    _unauthorized(_get(app, "not-a-token"))

    stub.mode = trouble
    fresh = stub.add_token("user-fresh", PROJECT, ["member", "reader"])
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
