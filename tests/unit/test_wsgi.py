"""guard.wsgi: the WSGI entry point reads the environment's configuration, builds per process."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from oslo_config import cfg

from guard import conf as guard_conf
from guard import deploy, wsgi
from guard.db import migration
from guard.testing import Persona

READER = Persona("rita", "project-r", ("reader",))


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """build_from sets up this process's logging (oslo.log); undo it after each test.

    oslo.log replaces the root logger's handlers and sets the levels of the
    loggers it names, so both are put back as they were.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'g.sqlite'}"
    migration.upgrade(url)  # as `guard db upgrade` does, once, before the workers
    path = tmp_path / "guard.conf"
    # main: it could not start here (no keystone settings), so only GUARD_PIPELINE helps.
    path.write_text(f"[database]\nconnection = {url}\n[guard]\npipeline = main\n")
    return str(path)


def test_the_environment_names_the_file_and_the_pipeline(
    config_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(wsgi.CONFIG_FILE_ENV, config_file)
    monkeypatch.setenv(wsgi.PIPELINE_ENV, "trusted")
    built = wsgi.build_from_environment()
    try:
        app = webtest.TestApp(built.app)
        assert app.get("/consumers", status=401).json["errors"][0]["code"] == (
            "guard.unauthorized"
        )
        assert app.get("/consumers", headers=READER.headers()).json == {
            "consumers": [],
            "next_marker": None,
        }
    finally:
        built.close()


def test_the_configured_pipeline_applies_without_the_override(
    config_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(wsgi.CONFIG_FILE_ENV, config_file)
    monkeypatch.delenv(wsgi.PIPELINE_ENV, raising=False)
    with pytest.raises(deploy.PipelineError):  # main, without [keystone_authtoken]
        wsgi.build_from_environment()


def test_a_missing_config_file_stops_the_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(wsgi.CONFIG_FILE_ENV, str(tmp_path / "absent.conf"))
    with pytest.raises(cfg.ConfigFilesNotFoundError):
        wsgi.build_from_environment()


def test_an_application_is_built_once_per_process(config_file: str) -> None:
    conf_calls: list[int] = []

    def builder() -> deploy.Deployment:
        conf_calls.append(os.getpid())
        return wsgi.build_from(guard_conf.load([config_file]), pipeline="trusted")

    application = wsgi.ForkSafeApplication(builder).prepare()
    try:
        app = webtest.TestApp(application)
        assert app.get("/").status_int == 200
        assert app.get("/consumers", headers=READER.headers()).status_int == 200
        assert conf_calls == [os.getpid()]  # prepared once, then reused

        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: a worker forked after the parent built
            try:
                os.close(read)
                ok = webtest.TestApp(application).get("/", expect_errors=True).status_int == 200
                os.write(write, f"{len(conf_calls)} {int(ok)}".encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            answer = pipe.read()
        os.waitpid(child, 0)
        assert answer == "2 1"  # the worker built its own, and served with it
        assert conf_calls == [os.getpid()]  # the parent's is untouched
    finally:
        application.close()


def test_the_module_has_no_other_attribute() -> None:
    with pytest.raises(AttributeError):
        _ = wsgi.not_an_application


@pytest.mark.parametrize(
    ("has_threads", "options", "refused"),
    [
        (True, {"disable-logging": True}, None),  # --disable-logging on the command line
        (True, {"disable-logging": b"true"}, None),  # disable-logging = true in an ini file
        (True, {"disable-logging": [b"false", b"on"]}, None),  # given twice: the last counts
        (True, {"disable-logging": b"True"}, None),  # uWSGI reads its words in any case
        (True, {"disable-logging": b"YES"}, None),
        (True, {"disable-logging": b"Off"}, "add --disable-logging"),
        # uWSGI logs these requests' lines in spite of disable-logging (uWSGI 2.0.30: a 404
        # of GET /consumers/{uuid} under --disable-logging --log-4xx, raw uuid in its log).
        (True, {"disable-logging": True, "log-4xx": True}, "remove log-4xx"),
        (True, {"disable-logging": True, "log-zero": b"true"}, "remove log-zero"),
        (True, {"disable-logging": True, "log-big": b"1"}, "remove log-big"),
        (True, {"disable-logging": True, "log-5xx": b"True"}, "remove log-5xx"),
        (True, {"disable-logging": True, "log-slow": b"0", "log-4xx": b"false"}, None),
        (False, {"disable-logging": True}, "add --enable-threads"),
        (True, {}, "add --disable-logging"),
        (True, {"disable-logging": b"false"}, "add --disable-logging"),
    ],
)
def test_uwsgi_without_threads_or_with_its_request_log_is_refused(
    has_threads: bool, options: dict, refused: str | None
) -> None:
    if refused is None:
        wsgi.check_uwsgi(has_threads, options)
    else:
        with pytest.raises(deploy.PipelineError, match=refused):
            wsgi.check_uwsgi(has_threads, options)
