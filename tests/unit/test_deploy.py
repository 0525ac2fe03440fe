"""guard.deploy: the services and the pipelines, wired on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from oslo_config import cfg

from guard import conf as guard_conf
from guard import deploy, policy
from guard.testing import Persona

UUID = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
ALICE = Persona("alice", "project-a", ("member", "reader"))


def _conf(url: str | None = None) -> cfg.ConfigOpts:
    conf = guard_conf.load()
    if url is not None:
        conf.set_override("connection", url, group="database")
    return conf


@pytest.fixture
def services(tmp_path: Path) -> Iterator[deploy.Services]:
    built = deploy.build_services(_conf(f"sqlite:///{tmp_path / 'g.sqlite'}"), migrate=True)
    try:
        yield built
    finally:
        built.close()


def test_database_url_is_the_configured_one() -> None:
    url = "postgresql+psycopg://guard@db.example/guard"
    assert deploy.database_url(_conf(url)) == url


def test_database_url_defaults_to_a_sqlite_file_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert deploy.database_url(_conf()) == f"sqlite:///{tmp_path / 'var' / 'guard.sqlite'}"
    assert (tmp_path / "var").is_dir()


def test_pool_options_only_for_database_servers() -> None:
    conf = _conf()
    conf.set_override("max_pool_size", 7, group="database")
    conf.set_override("max_overflow", 2, group="database")
    assert deploy.pool_options(conf, "sqlite:////tmp/x.sqlite") == {}
    assert deploy.pool_options(conf, "postgresql+psycopg://h/guard") == {
        "pool_size": 7,
        "max_overflow": 2,
        "pool_timeout": 30.0,
    }


def test_the_services_share_one_enforcer_and_its_decision_log(
    services: deploy.Services,
) -> None:
    assert services.repository is not None
    assert services.engine.url.database.endswith("g.sqlite")
    assert services.enforcer.decision_log is services.decision_log
    services.repository.ping()  # migrated and reachable


def test_the_trusted_pipeline_serves_the_contract(services: deploy.Services) -> None:
    app = webtest.TestApp(deploy.build_pipeline(services, "trusted"))
    root = app.get("/")
    assert root.status_int == 200
    assert root.headers["X-Openstack-Request-Id"].startswith("req-")
    anonymous = app.get("/consumers", status=401)
    assert anonymous.json["errors"][0]["code"] == "guard.unauthorized"
    body = {"project_id": "project-a", "user_id": "alice", "consumer_generation": None}
    created = app.put(
        f"/consumers/{UUID}",
        json.dumps(body),
        headers={**ALICE.headers(), "Content-Type": "application/json"},
        status=201,
    )
    assert created.json["generation"] == 0
    listed = app.get("/consumers", headers=ALICE.headers())
    assert [c["uuid"] for c in listed.json["consumers"]] == [UUID]
    too_big = app.put(
        f"/consumers/{UUID}",
        b"{" + b" " * 65536 + b"}",
        headers={**ALICE.headers(), "Content-Type": "application/json"},
        status=413,
    )
    assert too_big.json["errors"][0]["code"] == "guard.too_large"


def test_an_unknown_pipeline_is_refused(services: deploy.Services) -> None:
    with pytest.raises(deploy.PipelineError, match="unknown pipeline"):
        deploy.build_pipeline(services, "open")


def test_main_without_keystone_settings_does_not_start(services: deploy.Services) -> None:
    # It could not answer a 401 properly, so it must not serve at all (fail closed).
    with pytest.raises(deploy.PipelineError, match="keystone_authtoken"):
        deploy.build_pipeline(services, "main")


def test_an_invalid_policy_file_stops_the_build(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text('"guard:consumers:show": "rule:nope"\n')
    with pytest.raises(policy.PolicyFileError):
        deploy.build_services(
            _conf(f"sqlite:///{tmp_path / 'g.sqlite'}"), policy_file=str(bad), migrate=True
        )


def test_build_is_services_and_the_named_pipeline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.sqlite'}"
    deploy.build_services(_conf(url), migrate=True).close()  # the schema, as `guard db upgrade`
    built = deploy.build(_conf(url), pipeline="trusted")
    try:
        assert webtest.TestApp(built.app).get("/consumers", status=401)
        assert built.services.conf.database.connection == url
    finally:
        built.close()
