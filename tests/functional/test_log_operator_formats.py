"""The logs of a real ``guard serve`` under the formats operators configure.

oslo.log's JSON formatter (``log_config_append`` with a ``logging.conf``, the
usual choice for a log collector) writes the thread's current context whole
into every line: the caller's ids and names included, the access line's too.
A root logger at INFO also turns on SQLAlchemy's statement log, whose
parameters are ids of any shape, and at DEBUG its row log (another project's
ids, listed by an admin). A client may spell an identity parameter
percent-encoded (``project%5Fid``), which the API decodes. No raw id or name
may reach the file any of these ways; the checks are plain substring tests.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

from tests.fixtures.pgcluster import free_port
from tests.functional.processes import guard, serving_url, stop


def _put(url: str, headers: dict[str, str], body: dict[str, object]) -> int:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={**headers, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_json_formatter_lines_carry_no_raw_id_or_name(tmp_path: Path) -> None:
    level = "DEBUG"  # every line the INFO level writes, and SQLAlchemy's row log
    home = tmp_path / "home"
    home.mkdir()
    log_file = tmp_path / "guard.json.log"
    logging_conf = tmp_path / "logging.conf"
    logging_conf.write_text(
        "[loggers]\nkeys = root\n[handlers]\nkeys = file\n[formatters]\nkeys = json\n"
        f"[logger_root]\nlevel = {level}\nhandlers = file\n"
        f"[handler_file]\nclass = FileHandler\nargs = ({str(log_file)!r},)\nformatter = json\n"
        "[formatter_json]\nclass = oslo_log.formatters.JSONFormatter\n"
    )
    conf = tmp_path / "guard.conf"
    conf.write_text(
        f"[DEFAULT]\nlog_config_append = {logging_conf}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'json.sqlite'}\n"
        f"[guard]\npipeline = trusted\nfingerprint_key = k\n[api]\nbind_port = {free_port()}\n"
    )
    upgrade = guard(home, "db", "upgrade", "--config-file", str(conf))
    assert upgrade.wait(timeout=120) == 0, upgrade.communicate()[1]
    # Keystone ids need not be hex (LDAP users, names as ids): none is id-shaped here.
    tag = uuid.uuid4().hex[:6]
    user, project = f"ldap-user-{tag}", f"ldap-project-{tag}"
    user_name, project_name = f"alice.smith.{tag}", f"finance.team.{tag}"
    numeric_project = f"4711{int(tag, 16)}"
    # Domains too: the JSON context holds their names, its user_identity their ids.
    domains = {
        "X-User-Domain-Id": f"users-domain-{tag}",
        "X-User-Domain-Name": f"Users.Domain.{tag}",
        "X-Project-Domain-Id": f"projects-domain-{tag}",
        "X-Project-Domain-Name": f"Projects.Domain.{tag}",
    }
    other_project, other_user = f"other-project-{tag}", f"other-user-{tag}"
    headers = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": user,
        "X-User-Name": user_name,
        "X-Project-Id": project,
        "X-Project-Name": project_name,
        "X-Roles": "member,reader",
        **domains,
    }
    admin = {**headers, "X-Roles": "admin,member,reader"}
    body = {"project_id": other_project, "user_id": other_user, "consumer_generation": None}
    process = guard(home, "serve", "--config-file", str(conf))
    try:
        url = serving_url(process)
        assert _get(f"{url}/consumers", headers) == 200
        assert _get(f"{url}/consumers/{uuid.uuid4()}", headers) == 404
        # The API reads project%5Fid as project_id: its value is an id.
        assert _get(f"{url}/consumers?project%5Fid={numeric_project}&limit=5", headers) == 200
        # An admin writes and reads another project's row: SQL parameters and rows.
        assert _put(f"{url}/consumers/{uuid.uuid4()}", admin, body) == 201
        assert _get(f"{url}/consumers", admin) == 200
    finally:
        stop(process)
    lines = log_file.read_text().splitlines()
    access = [json.loads(line) for line in lines if '"guard.access"' in line]
    assert len(access) == 5, lines[-5:]
    assert all(line["context"]["request_id"].startswith("req-") for line in access)
    assert "limit=5" in access[2]["message"]  # the API's own numbers stay readable
    assert access[0]["context"]["user_domain_name"].startswith("<id:")  # shown, redacted
    text = "\n".join(lines)
    for raw in (
        user,
        project,
        user_name,
        project_name,
        numeric_project,
        other_project,
        other_user,
        *domains.values(),
    ):
        assert raw not in text, [line for line in lines if raw in line][:2]
