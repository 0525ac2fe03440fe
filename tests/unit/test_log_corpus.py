"""Real OpenStack log lines: nothing ordinary is masked, every id and secret is.

The lines are as keystonemiddleware, oslo.db, SQLAlchemy, waitress and
gunicorn print them (their format strings, filled in). A redaction that
masks prose ("validate token: Could not find ...") hides what an operator
needs to read; one that misses a spelling leaks.
"""

from __future__ import annotations

import uuid

import pytest

from guard import log as guard_log

ORDINARY = [
    # keystonemiddleware.auth_token
    "Starting Keystone auth_token middleware",
    "Authenticating user token",
    "Authenticating service token",
    "Unable to validate token: Could not find versioned identity endpoints when attempting "
    "to authenticate. Please check that your auth_url is correct.",
    "Token validation failure.",
    "Rejecting request",
    "Invalid user token. Token validation failed.",
    "The Keystone service is temporarily unavailable.",
    "Using the default auth plugin (password) to fetch an admin token",
    "Storing token in cache",
    "Cached token is marked unauthorized",
    "Fetching token from cache",
    "Identity server rejected authorization necessary to fetch token data",
    "Authorization failed for token",
    "Service token is invalid.",
    "An HTTP 401 was returned: Unauthorized",
    "Invalid user / password (HTTP 401)",
    "The password for user admin has been changed",
    "Password expired for user; please change it",
    # oslo.db
    "DB exceeded retry limit.",
    "DBConnectionError exception wrapped.",
    "SQL connection failed. 10 attempts left.",
    "Database server has gone away: (pymysql.err.OperationalError) "
    "(2006, 'MySQL server has gone away')",
    "Got mysql server has gone away: (2013, 'Lost connection to MySQL server during query')",
    "Performing DB retry for function guard.repository.list",
    # SQLAlchemy
    "BEGIN (implicit)",
    "COMMIT",
    "ROLLBACK",
    "[generated in 0.00012s] ('p1', 51)",
    "SELECT consumers.uuid, projects.external_id FROM consumers JOIN projects ON "
    "projects.id = consumers.project_id WHERE projects.external_id = ? LIMIT ? OFFSET ?",
    "Pool disposed. Pool size: 5  Connections in pool: 0 Current Overflow: -5 "
    "Current Checked out connections: 0",
    "Connection <sqlite3.Connection object at 0x7f3a2c1d5e40> checked out from pool",
    "Connection <sqlite3.Connection object at 0x7f3a2c1d5e40> being returned to pool",
    "Invalidate connection <psycopg.Connection [IDLE] (host=db.example user=guard "
    "database=guard) at 0x7f3a2c1d5e40> (reason: OperationalError:server closed the "
    "connection unexpectedly)",
    # waitress
    "Serving on http://127.0.0.1:8778",
    "Task queue depth is 2",
    "Client disconnected while serving /consumers",
    "Exception while serving /consumers",
    "Exception when serving /healthcheck",
    "uncaptured python exception, closing channel <waitress.channel.HTTPChannel "
    "connected 127.0.0.1:51234 at 0x7f3a2c1d5e40>",
    # gunicorn
    "Starting gunicorn 23.0.0",
    "Listening at: http://127.0.0.1:8778 (41231)",
    "Using worker: gthread",
    "Booting worker with pid: 41232",
    "Worker exiting (pid: 41232)",
    "Handling signal: term",
    "Shutting down: Master",
    "Worker (pid:41232) was sent SIGTERM!",
    "WORKER TIMEOUT (pid:41232)",
    # guard's own
    "GET /consumers?limit=5 200 112 bytes 812 us req-0c6a3e44-5b8e-4f1c-9d3a-2f6b7c8d9e01",
    "policy file policy.yaml reloaded (revision 3fa28354c8d0b0a2)",
    "passed 3 checks, compass: north, bypass=1",
]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_lines_stay_as_they_are(line: str) -> None:
    assert guard_log.redact(line) == line


def _ids() -> tuple[str, str, str]:
    return str(uuid.uuid4()), uuid.uuid4().hex, uuid.uuid4().hex + uuid.uuid4().hex


def test_keystonemiddleware_debug_lines_keep_no_id() -> None:
    consumer, project, user64 = _ids()
    lines = [
        f"Received request from user: user_id {user64}, project_id {project}, "
        "roles admin,member,reader",
        f"Authenticating user token for user {user64} in project {project.upper()}",
        f"GET /v3/auth/tokens?nocatalog HTTP/1.1 with X-Subject-Token: gAAAAABl{user64}",
        f"Request for consumer {consumer} from user {user64}",
    ]
    text = "\n".join(guard_log.redact(line) for line in lines)
    for raw in (consumer, project, user64, consumer.replace("-", "")):
        assert raw not in text.lower()
    assert "Received request from user: user_id <id:" in text
    assert "roles admin,member,reader" in text


LIBRARY_SPELLINGS = [
    'REQ: curl -g -i -X GET http://keystone:5000/v3 -H "X-Auth-Token: {s}"',
    "{{'X-Auth-Token': b'{s}', 'Accept': 'application/json'}}",
    "headers=[(b'x-auth-token', b'{s}'), (b'accept', b'*/*')]",
    "openstack --os-username admin --os-password {s} server list",
    "connection = mysql+pymysql://guard:{s}@db.example/guard",
    "Cookie: session={s}; csrftoken=abc",
    'RESP BODY: {{"token": {{"methods": ["password"]}}, "password": "{s}"}}',
    "auth_password => {s}",
    "POST body password%3D{s}%26user%3Dadmin",
    "pass={s} user=admin",
]


@pytest.mark.parametrize("line", LIBRARY_SPELLINGS)
def test_library_spellings_of_secrets_are_masked(line: str) -> None:
    value = "Zq" + uuid.uuid4().hex[:10] + "9x"
    text = guard_log.redact(line.format(s=value))
    assert value not in text
    assert "***" in text
