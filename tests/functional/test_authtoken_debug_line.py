"""keystonemiddleware's DEBUG line naming the caller, in the ``main`` pipeline.

auth_token logs ``Received request from user: user_id X, project_id Y, ...``
before the guard middleware knows the caller, and keystone ids need not be
hex (LDAP users without id mapping). With DEBUG on (a ``logging.conf`` whose
root is at DEBUG), the ids must still come out fingerprinted. Real
auth_token, its ``AuthTokenFixture`` standing in for keystone, a real
SQLite file; the check is a plain substring test on a handler's output.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from keystonemiddleware import fixture as ksm_fixture

from guard import conf as guard_conf
from guard import deploy


@pytest.fixture
def debug_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("keystonemiddleware")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_the_callers_ids_in_auth_tokens_debug_line_are_fingerprinted(
    tmp_path: Path,
    sqlite_url: str,
    tokens: ksm_fixture.AuthTokenFixture,
    debug_output: io.StringIO,
) -> None:
    config = tmp_path / "guard.conf"
    config.write_text(
        f"[database]\nconnection = {sqlite_url}\n[guard]\nfingerprint_key = k\n"
        "[keystone_authtoken]\nwww_authenticate_uri = https://keystone.example/identity\n"
    )
    services = deploy.build_services(guard_conf.load([str(config)]), migrate=True)
    try:
        app = webtest.TestApp(deploy.build_pipeline(services, "main"))
        tag = uuid.uuid4().hex[:6]
        user, project = f"ldap-user-{tag}", f"ldap-project-{tag}"
        token = uuid.uuid4().hex
        tokens.add_token_data(
            token_id=token,
            user_id=user,
            project_id=project,
            role_list=["member", "reader"],
            user_domain_id="default",
            project_domain_id="default",
        )
        assert app.get("/consumers", headers={"X-Auth-Token": token}).status_int == 200
    finally:
        services.close()
    text = debug_output.getvalue()
    assert "Received request from user: user_id <id:" in text
    assert "roles member,reader" in text  # the rest of the line is kept
    assert user not in text and project not in text
