"""An operator's reordered ``main`` pipeline: the guard filter in front of authtoken.

There it believed the identity headers any client sends (auth_token sets
them only for what comes after it; with ``delay_auth_decision`` it passes a
request without a token on): a forged ``X-Identity-Status: Confirmed`` with
``X-Roles: admin`` listed every consumer. Loading such a pipeline must fail,
naming the order; the shipped order still loads. Real PasteDeploy loading of
an edited copy of ``etc/guard/api-paste.ini``, keystonemiddleware's real
auth_token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest
from paste.deploy import loadapp

from guard.db import migration
from tests.functional.test_paste import PASTE_INI, write_guard_conf

pytestmark = pytest.mark.usefixtures("isolated_install")

SHIPPED = "pipeline = request_id sizelimit authtoken guard consumers"
FORGED = {
    "X-Identity-Status": "Confirmed",
    "X-User-Id": "u",
    "X-Project-Id": "p",
    "X-Roles": "admin",
}


def _load(tmp_path: Path, database: str, pipeline: str) -> webtest.TestApp:
    text = PASTE_INI.read_text()
    assert SHIPPED in text
    ini = tmp_path / "api-paste.ini"
    ini.write_text(text.replace(SHIPPED, f"pipeline = {pipeline}"))
    config = write_guard_conf(tmp_path, database)
    return webtest.TestApp(
        loadapp(f"config:{ini}", name="main", global_conf={"config_file": str(config)})
    )


@pytest.mark.parametrize(
    "pipeline",
    [
        "request_id sizelimit guard authtoken consumers",
        "guard request_id sizelimit authtoken consumers",
        "request_id guard sizelimit authtoken guard consumers",
    ],
)
def test_guard_in_front_of_authtoken_refuses_to_load(
    tmp_path: Path, sqlite_url: str, pipeline: str
) -> None:
    migration.upgrade(sqlite_url)
    with pytest.raises(ValueError, match="must come after authtoken"):
        _load(tmp_path, sqlite_url, pipeline)


def test_the_shipped_order_loads_and_ignores_forged_headers(
    tmp_path: Path, sqlite_url: str
) -> None:
    migration.upgrade(sqlite_url)
    app = _load(tmp_path, sqlite_url, SHIPPED.removeprefix("pipeline = "))
    assert app.get("/consumers", headers=FORGED, status=401).json["errors"][0]["status"] == 401
