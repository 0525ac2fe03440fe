"""Another project's row and a missing one cost the same work: no timing oracle.

The answers were already equal (status, body, headers). The work was not: an
invisible row was decided (a policy decision and its decision-log line), a
missing one was answered before any decision, and over loopback HTTP that
made a missing row's 404 40-70 us faster, enough for a client to tell, by
averaging, whether a uuid exists in another project. Wall-clock assertions
would be flaky; what is held equal is the work the timing came from: one
decision each, logged alike. A real ``guard serve``, its real decision log.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

from guard.api.environ import identity_headers
from guard.testing import http
from tests.functional.live_server import live_guard
from tests.functional.test_decision_log import audit_lines

JSON = {"Content-Type": "application/json"}


def _answer(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> tuple:
    status, response_headers, payload = http(method, url, headers, body)
    request_id = response_headers["X-Openstack-Request-Id"]
    shown = sorted(
        (name.lower(), value)
        for name, value in response_headers.items()
        if name.lower() not in ("date", "x-openstack-request-id")
    )
    return request_id, (status, shown, payload.replace(request_id.encode(), b"req-id"))


def test_a_missing_row_is_decided_as_an_invisible_one(tmp_path: Path) -> None:
    owner = identity_headers("oracle-owner", "oracle-p1", ["admin", "member", "reader"])
    stranger = identity_headers("oracle-stranger", "oracle-p2", ["member", "reader"])
    owned, missing = str(uuid.uuid4()), str(uuid.uuid4())
    update = json.dumps(
        {"project_id": "oracle-p2", "user_id": "oracle-stranger", "consumer_generation": 0}
    ).encode()
    requests = [
        ("GET", "", None),
        ("PUT", "", update),
        ("DELETE", "", None),
        ("DELETE", "?consumer_generation=0", None),
    ]
    with live_guard(tmp_path) as server:
        create = json.dumps(
            {"project_id": "oracle-p1", "user_id": "oracle-owner", "consumer_generation": None}
        ).encode()
        url = f"{server.url}/consumers"
        assert http("PUT", f"{url}/{owned}", {**owner, **JSON}, create)[0] == 201
        pairs = []
        for method, query, body in requests:
            headers = {**stranger, **JSON} if body else stranger
            invisible = _answer(method, f"{url}/{owned}{query}", headers, body)
            absent = _answer(method, f"{url}/{missing}{query}", headers, body)
            assert invisible[1] == absent[1]  # the same answer
            assert invisible[1][0] == 404
            pairs.append((invisible[0], absent[0]))
        assert server.stop(signal.SIGTERM) == 0  # writes the queued decisions
    by_request: dict[object, list[tuple]] = {}
    for line in audit_lines(server.stderr()):
        by_request.setdefault(line["request_id"], []).append(
            (line["action"], line["allowed"], line["branch"], line["roles"])
        )
    for invisible_id, absent_id in pairs:
        assert by_request.get(invisible_id), "an invisible row is decided"
        assert by_request.get(absent_id) == by_request[invisible_id]
