"""``authtoken`` taken out of the ``main`` pipeline: detected, refused, never trusted.

An operator who edits ``etc/guard/api-paste.ini`` and drops ``authtoken``
from ``main`` left the guard filter believing whatever identity headers a
client sends (``X-Identity-Status: Confirmed``, ``X-Roles: admin``): every
consumer was listed to anyone. ``main``'s guard filter now requires
keystonemiddleware's auth_token in front of it (``require_authtoken =
true``): with guard's own filters above it the pipeline refuses to load;
with none, every request is refused (500 ``guard.internal``) and one log
line tells the operator. The ``trusted`` pipeline, whose point is to trust a
proxy's headers, is unchanged. Real PasteDeploy loading of edited copies of
the shipped file, a real SQLite file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st
from paste.deploy import loadapp

from guard.db import migration
from guard.deploy import PipelineError
from tests.functional.support import check_error
from tests.functional.test_paste import PASTE_INI, write_guard_conf

pytestmark = pytest.mark.usefixtures("isolated_install")

SHIPPED = "pipeline = request_id sizelimit authtoken guard consumers"
FORGED = {
    "X-Identity-Status": "Confirmed",
    "X-User-Id": "forger",
    "X-Project-Id": "forged-project",
    "X-Roles": "admin,member,reader",
}


def _load(
    tmp_path: Path, database: str, pipeline: str, name: str = "main", text: str = ""
) -> webtest.TestApp:
    migration.upgrade(database)
    text = text or PASTE_INI.read_text()
    assert SHIPPED in text
    ini = tmp_path / "api-paste.ini"
    ini.write_text(text.replace(SHIPPED, f"pipeline = {pipeline}"))
    config = write_guard_conf(tmp_path, database)
    return webtest.TestApp(
        loadapp(f"config:{ini}", name=name, global_conf={"config_file": str(config)})
    )


@pytest.mark.parametrize(
    "pipeline",
    [
        "request_id sizelimit guard consumers",
        "request_id guard consumers",
    ],
)
def test_main_without_authtoken_refuses_to_load(
    tmp_path: Path, sqlite_url: str, pipeline: str
) -> None:
    with pytest.raises(ValueError, match="requires keystonemiddleware's authtoken in front of it"):
        _load(tmp_path, sqlite_url, pipeline)


@pytest.mark.parametrize("pipeline", ["guard consumers", "sizelimit guard consumers"])
def test_main_without_request_id_above_guard_refuses_every_request_and_says_so_once(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture, pipeline: str
) -> None:
    app = _load(tmp_path, sqlite_url, pipeline)
    with caplog.at_level(logging.INFO):
        for path in ("/consumers", "/consumers?project_id=forged-project", "/", "/healthcheck"):
            response = app.get(path, headers=FORGED, status="*")
            error = check_error(
                response.status_int, response.headers, response.body, 500, "guard.internal"
            )
            assert error["detail"] == "The server could not complete the request."
        # Nor is anything written on the forged identity's word.
        response = app.delete(
            "/consumers/0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77", headers=FORGED, status="*"
        )
        assert response.status_int == 500
    told = [
        record
        for record in caplog.records
        if "requires keystonemiddleware's authtoken" in record.getMessage()
    ]
    assert len(told) == 1, [record.getMessage() for record in told]
    assert told[0].levelno == logging.ERROR
    assert "put authtoken back" not in told[0].getMessage()  # the load-time wording is another
    assert "authtoken is back before guard in the pipeline" in told[0].getMessage()


IDENTITY_HEADERS = (
    "X-Identity-Status",
    "X-User-Id",
    "X-Project-Id",
    "X-Roles",
    "X-Service-Roles",
    "X-Is-Admin-Project",
    "OpenStack-System-Scope",
    "X-Auth-Token",
)
_VALUES = st.one_of(
    st.sampled_from(["Confirmed", "admin", "admin,member,reader", "service", "all", "True"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
)


def test_no_forged_identity_gets_an_answer_from_main_without_authtoken(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Whatever identity headers, method and path a client sends: 500 guard.internal."""
    app = _load(tmp_path, sqlite_url, "guard consumers")

    @settings(max_examples=60, deadline=None)
    @given(
        headers=st.dictionaries(st.sampled_from(IDENTITY_HEADERS), _VALUES, max_size=8),
        method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]),
        path=st.sampled_from(
            ["/", "/healthcheck", "/consumers", "/consumers/0b7c3a52-5c1e-4b7e-9a51-2f0d8e6b1a77"]
        ),
    )
    def check(headers: dict[str, str], method: str, path: str) -> None:
        response = app.request(path, method=method, headers=headers, status="*")
        assert response.status_int == 500
        if method != "HEAD":
            check_error(
                response.status_int, response.headers, response.body, 500, "guard.internal"
            )

    check()


def test_authtoken_above_sizelimit_loads_and_authenticates(
    tmp_path: Path, sqlite_url: str
) -> None:
    """authtoken is in front of guard, with guard's sizelimit between: not 'has none'."""
    main = _load(tmp_path, sqlite_url, "request_id authtoken sizelimit guard consumers")
    check_error(
        *_answer(main.get("/consumers", headers=FORGED, status="*")), 401, "guard.unauthorized"
    )


def test_the_shipped_main_and_trusted_pipelines_still_load(
    tmp_path: Path, sqlite_url: str
) -> None:
    main = _load(tmp_path, sqlite_url, SHIPPED.removeprefix("pipeline = "))
    check_error(
        *_answer(main.get("/consumers", headers=FORGED, status="*")), 401, "guard.unauthorized"
    )
    trusted = _load(tmp_path, sqlite_url, SHIPPED.removeprefix("pipeline = "), name="trusted")
    assert trusted.get("/consumers", headers=FORGED).status_int == 200


@pytest.mark.parametrize("value", ["yes please", "", "2"])
def test_a_require_authtoken_that_is_not_a_boolean_refuses_to_load(
    tmp_path: Path, sqlite_url: str, value: str
) -> None:
    text = PASTE_INI.read_text()
    assert "require_authtoken = true\n" in text
    text = text.replace("require_authtoken = true\n", f"require_authtoken = {value}\n")
    with pytest.raises(ValueError, match="require_authtoken must be true or false"):
        _load(tmp_path, sqlite_url, SHIPPED.removeprefix("pipeline = "), text=text)


def _answer(response: webtest.TestResponse) -> tuple[int, object, bytes]:
    return response.status_int, response.headers, response.body


DELAY = "delay_auth_decision = true\n"


@pytest.mark.parametrize("line", ["delay_auth_decision = false\n", ""], ids=["false", "deleted"])
def test_authtoken_deciding_itself_refuses_to_load(
    tmp_path: Path, sqlite_url: str, line: str
) -> None:
    """auth_token would answer 401s in its own JSON ({"error": ...}), a keystone down in HTML."""
    text = PASTE_INI.read_text()
    assert DELAY in text
    with pytest.raises(PipelineError, match="set delay_auth_decision = true"):
        _load(
            tmp_path,
            sqlite_url,
            SHIPPED.removeprefix("pipeline = "),
            text=text.replace(DELAY, line),
        )


def test_delay_auth_decision_in_guard_conf_is_enough(tmp_path: Path, sqlite_url: str) -> None:
    text = PASTE_INI.read_text().replace(DELAY, "")
    config = write_guard_conf(tmp_path, sqlite_url)
    config.write_text(config.read_text() + DELAY)  # [keystone_authtoken] is its last section
    migration.upgrade(sqlite_url)
    ini = tmp_path / "api-paste.ini"
    ini.write_text(text)
    app = webtest.TestApp(
        loadapp(f"config:{ini}", name="main", global_conf={"config_file": str(config)})
    )
    response = app.get("/consumers", headers=FORGED, status="*")
    check_error(response.status_int, response.headers, response.body, 401, "guard.unauthorized")
