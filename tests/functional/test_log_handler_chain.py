"""One record through several handlers: what a formatter sets on it stays redacted.

oslo.log's JSONFormatter sets the thread's context values on the record it
formats, raw (the caller's ids and names), after guard's filter has redacted
the record. A later handler's filter saw the record marked as done and let
it pass, so a plain ``logging.Formatter`` naming those values
(``%(user_name)s``, ``%(user_identity)s``, as operators copy from oslo's
formats) wrote them raw on every line but guard's own. A real ``guard
serve`` with a ``logging.conf`` of two handlers; plain substring checks.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from guard.testing import http
from tests.functional.live_server import live_guard

TAG = uuid.uuid4().hex[:6]
CALLER = {
    "X-Identity-Status": "Confirmed",
    "X-User-Id": f"ldap-user-{TAG}",
    "X-Project-Id": f"ldap-project-{TAG}",
    "X-User-Name": f"alice.smith.{TAG}",
    "X-Project-Name": f"finance.team.{TAG}",
    "X-Roles": "member,reader",
}


def test_a_plain_handler_after_oslos_json_one_shows_no_raw_value(tmp_path: Path) -> None:
    ctx_log, json_log, plain_log = (tmp_path / f"{name}.log" for name in ("ctx", "json", "plain"))
    logging_conf = tmp_path / "logging.conf"
    logging_conf.write_text(
        # guard's ContextFormatter first: oslo's formatters give every record
        # the keys the plain format names ("" without a context).
        "[loggers]\nkeys = root\n[handlers]\nkeys = ctx, json, plain\n"
        "[formatters]\nkeys = ctx, json, plain\n"
        "[logger_root]\nlevel = DEBUG\nhandlers = ctx, json, plain\n"
        f"[handler_ctx]\nclass = FileHandler\nargs = ({str(ctx_log)!r},)\nformatter = ctx\n"
        f"[handler_json]\nclass = FileHandler\nargs = ({str(json_log)!r},)\nformatter = json\n"
        f"[handler_plain]\nclass = FileHandler\nargs = ({str(plain_log)!r},)\n"
        "formatter = plain\n"
        "[formatter_ctx]\nclass = guard.logformat.ContextFormatter\n"
        "[formatter_json]\nclass = oslo_log.formatters.JSONFormatter\n"
        "[formatter_plain]\n"
        "format = %(name)s %(message)s [%(user_identity)s %(user_name)s %(project_name)s]\n"
    )
    conf = tmp_path / "guard.conf"
    conf.write_text(
        f"[DEFAULT]\nlog_config_append = {logging_conf}\n[guard]\nfingerprint_key = k\n"
    )
    with live_guard(tmp_path, "--config-file", str(conf)) as server:
        assert http("GET", f"{server.url}/consumers/{uuid.uuid4()}", CALLER)[0] == 404
        assert http("GET", f"{server.url}/consumers", CALLER)[0] == 200
    plain = plain_log.read_text()
    lines = [line for line in plain.splitlines() if "[<id:" in line]
    assert any(not line.startswith("guard.") for line in lines), plain[-2000:]  # others' lines
    for name in ("X-User-Id", "X-Project-Id", "X-User-Name", "X-Project-Name"):
        value = CALLER[name]
        assert value not in plain, [line for line in plain.splitlines() if value in line][:2]
        assert value not in json_log.read_text() + ctx_log.read_text()
