"""5,000 generated requests as raw bytes on a socket to a real ``guard serve``.

What a client can send that a WSGI test client cannot: invalid UTF-8 after
percent-decoding, request lines up to the server's limit, odd methods,
repeated and odd headers, bodies that lie about their type. (Methods are
upper-case tokens: waitress itself refuses others with its own plain-text
400 before any application sees the request.) For every request:

- the status equals the one a small model of the contract and of the default
  policy predicts (:func:`expected`, written from DESIGN.md, not from guard's
  code): never a 5xx;
- the body is JSON, and an error's ``request_id`` is the response's
  ``X-Openstack-Request-Id``;
- none of the callers may touch the secret row (another project's): after
  every request it is read straight from the SQLite file (owner, generation,
  existence) and must not have changed.

At the end the server's whole log is scanned for the raw ids and secrets the
requests carried. The generator is seeded (``GUARD_FUZZ_SEED`` replays a run).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from guard import testing
from guard.api.environ import identity_headers
from tests.functional.live_server import LiveGuard, live_guard

REQUESTS = 5000
CONTENT_TYPES = [
    "application/json",
    "APPLICATION/JSON",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    None,
]
SEED = int(os.environ.get("GUARD_FUZZ_SEED", random.SystemRandom().randrange(2**32)))
# waitress's default max_request_header_size is 262,144 bytes: stay under it.
LONGEST_TARGET = 200_000

SECRET_PROJECT = f"proj-secret-{uuid.uuid4().hex[:10]}"
SECRET_USER = f"user-secret-{uuid.uuid4().hex[:10]}"
SECRET_CONSUMER = str(uuid.uuid4())
OWN_PROJECT = f"proj-own-{uuid.uuid4().hex[:10]}"
OWN_USER = f"user-own-{uuid.uuid4().hex[:10]}"
STRANGER_PROJECT = f"proj-stranger-{uuid.uuid4().hex[:10]}"
TOKEN = f"Zqtok{uuid.uuid4().hex[:12]}"
UUID_RE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


@dataclass(frozen=True)
class Persona:
    """Who calls: identity headers as a proxy sets them, and what the model knows."""

    name: str
    headers: dict[str, str]
    trusted: bool
    project: str | None
    roles: frozenset[str]
    system_scope: bool = False


PERSONAS = [
    Persona("anonymous", {}, False, None, frozenset()),
    Persona(
        "unconfirmed",
        {**identity_headers(OWN_USER, OWN_PROJECT, ["admin"]), "X-Identity-Status": "confirmed"},
        False,
        None,
        frozenset(),
    ),
    Persona(
        "member",
        identity_headers(OWN_USER, OWN_PROJECT, ["member", "reader"]),
        True,
        OWN_PROJECT,
        frozenset({"member", "reader"}),
    ),
    Persona(
        "reader",
        identity_headers(OWN_USER, OWN_PROJECT, ["reader"]),
        True,
        OWN_PROJECT,
        frozenset({"reader"}),
    ),
    Persona(
        "stranger",
        identity_headers("user-stranger", STRANGER_PROJECT, ["member", "reader"]),
        True,
        STRANGER_PROJECT,
        frozenset({"member", "reader"}),
    ),
    Persona(
        "no roles", identity_headers(OWN_USER, OWN_PROJECT, []), True, OWN_PROJECT, frozenset()
    ),
    Persona(
        "system admin spoof",
        {
            **identity_headers(OWN_USER, OWN_PROJECT, ["admin", "member", "reader"]),
            "OpenStack-System-Scope": "all",
        },
        True,
        OWN_PROJECT,
        frozenset({"admin", "member", "reader"}),
        system_scope=True,
    ),
]


@dataclass
class Request:
    """One generated request: raw bytes, and what the model says about it."""

    persona: Persona
    method: str
    target: bytes  # raw, as sent on the request line
    path: str | None  # percent-decoded, None when not UTF-8
    query: list[tuple[str, str]] | None  # decoded pairs, None when not UTF-8
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None


# -- the model: DESIGN.md's order of checks and the default policy ----------------


def _is_uuid(text: str) -> bool:
    return bool(UUID_RE.fullmatch(text)) and text.count("-") in (0, 4)


def _rule_allows(persona: Persona, action: str, project: str | None) -> bool:
    """The default rules: admin, service, or a reader/member of the row's project."""
    if persona.system_scope:
        return False  # every default rule is project-scoped
    if "admin" in persona.roles or "service" in persona.roles:
        return True
    needed = "reader" if action in ("list", "show") else "member"
    return needed in persona.roles and project is not None and project == persona.project


def expected(request: Request) -> int:
    """The status the contract gives this request."""
    persona = request.persona
    if request.path is None or request.query is None:
        return 400
    path = request.path
    if not persona.trusted and path not in ("/", "/healthcheck"):
        return 401
    routes = {"/": {"GET"}, "/healthcheck": {"GET"}, "/consumers": {"GET"}}
    if path in routes:
        allowed = routes[path]
    elif (
        path.startswith("/consumers/")
        and "/" not in path[len("/consumers/") :]
        and (path != "/consumers/")
    ):
        allowed = {"GET", "PUT", "DELETE"}
    else:
        return 404
    if request.method not in allowed:
        return 405
    if path in ("/", "/healthcheck"):
        return 200
    names = [name for name, _ in request.query]
    if path == "/consumers":
        listed = {"project_id", "user_id", "consumer_type", "limit", "marker"}
        if len(set(names)) != len(names) or set(names) - listed:
            return 400
        values = dict(request.query)
        limit = values.get("limit", "50")
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 1000):
            return 400
        for name in ("project_id", "user_id"):
            if name in values and not re.fullmatch(r"[A-Za-z0-9_.@-]{1,255}", values[name]):
                return 400
        if "marker" in values and not _is_uuid(values["marker"]):
            return 400
        # 403 only when no row could ever be allowed for these credentials.
        if persona.system_scope or not ({"admin", "service", "reader"} & persona.roles):
            return 403
        return 200
    uuid_text = path[len("/consumers/") :]
    if not _is_uuid(uuid_text):
        return 400
    if request.method == "GET":
        # The only row is the secret one, invisible to every persona here:
        # missing and invisible answer alike.
        return 400 if names else 404
    if request.method == "DELETE":
        if set(names) - {"consumer_generation"} or len(names) > 1:
            return 400
        if names and not re.fullmatch(r"[0-9]{1,18}", dict(request.query)["consumer_generation"]):
            return 400
        return 404  # missing, or the secret row invisible to every persona here
    # PUT: query, content type, then the body, then visibility.
    if names:
        return 400
    media = (request.content_type or "").split(";")
    charset_ok = all(p.strip().lower() in ("charset=utf-8", 'charset="utf-8"') for p in media[1:])
    if media[0].strip().lower() != "application/json" or not charset_ok:
        return 415
    if len(request.body) > 65536:
        return 413
    try:
        document = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return 400
    keys = {"project_id", "user_id", "consumer_generation"}
    if not isinstance(document, dict) or set(document) != keys:
        return 400
    generation = document["consumer_generation"]
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        return 400
    return 404  # an integer generation for a row missing or invisible


# -- the generator ------------------------------------------------------------------


def _secret_spellings() -> list[str]:
    return [SECRET_CONSUMER, SECRET_CONSUMER.upper(), SECRET_CONSUMER.replace("-", "")]


def _segment(rng: random.Random) -> tuple[str, bytes | None]:
    """A path segment: decoded text and, for invalid UTF-8, the raw percent-encoding."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(_secret_spellings()), None
    if kind == 1:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4)), None
    if kind == 2:  # invalid UTF-8 after percent-decoding
        raw = rng.choice([b"%FF", b"%C3%28", b"%ED%A0%80", b"%80", b"%F0%28%8C%BC", b"%C0%AF"])
        return "", raw
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 12))), None
    if kind == 4:
        return rng.choice(["consumers", "healthcheck", "", "..", "%2F", "x"]), None
    if kind == 5:
        return "a" * rng.randrange(1, 2000), None
    return rng.choice(_secret_spellings())[:-1] + "g", None


def generate(rng: random.Random) -> Request:
    persona = rng.choice(PERSONAS)
    method = rng.choice(["GET", "GET", "GET", "PUT", "DELETE", "POST", "PATCH", "OPTIONS",
                         "FOO", "GET2", "M-SEARCH", "PROPFIND"])  # fmt: skip
    prefix = rng.choice(["/consumers/", "/consumers/", "/consumers", "/", "/healthcheck", "/x/"])
    decoded, raw = prefix, quote(prefix).encode()
    valid = True
    if prefix.endswith("/") and rng.random() < 0.9:
        text, invalid = _segment(rng)
        if invalid is not None:
            valid = False
            raw += invalid
        else:
            decoded += text
            raw += quote(text, safe="").encode()
    if rng.random() < 0.02:  # a request line near the server's limit
        filler = "b" * rng.randrange(LONGEST_TARGET // 2, LONGEST_TARGET)
        decoded += filler
        raw += filler.encode()
    query: list[tuple[str, str]] | None = []
    raw_query = []
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
        name = rng.choice(["project_id", "limit", "consumer_generation", "marker", "x", "user_id"])
        value = rng.choice(["1", "0", "1000", "1001", "-1", "", SECRET_PROJECT, OWN_PROJECT,
                            "98765432", "ab%", "é"])  # fmt: skip
        if rng.random() < 0.08:
            raw_query.append(f"{name}=".encode() + rng.choice([b"%FF", b"%C3%28", b"%ED%A0%80"]))
            query = None
            continue
        raw_query.append(f"{quote(name)}={quote(value, safe='')}".encode())
        if query is not None:
            query.append((name, value))
    if raw_query:
        raw += b"?" + b"&".join(raw_query)
    headers = [(k.encode(), v.encode()) for k, v in persona.headers.items()]
    if rng.random() < 0.2:
        headers.append((b"X-Auth-Token", TOKEN.encode()))
    if rng.random() < 0.1:  # repeated headers (not identity ones: the proxy owns those)
        spoofed = f"req-{uuid.UUID(int=rng.getrandbits(128), version=4)}".encode()
        headers += [(b"X-Openstack-Request-Id", spoofed), (b"X-Openstack-Request-Id", b"req-x")]
        headers += [(b"Accept", b"*/*"), (b"Accept", b"text/html")]
    if rng.random() < 0.1:
        headers.append((b"X-Odd-Header", bytes(rng.randrange(0x80, 0x100) for _ in range(20))))
    if rng.random() < 0.05:
        headers.append((b"X-Long", b"v" * rng.randrange(1000, 20_000)))
    body, content_type = b"", None
    if method == "PUT":
        content_type = rng.choice(CONTENT_TYPES)
        document: object = {
            "project_id": OWN_PROJECT,
            "user_id": OWN_USER,
            "consumer_generation": rng.choice([0, 1, 7]),
        }
        choice = rng.randrange(6)
        if choice == 0:
            body = b"\xff\xfe{"
        elif choice == 1:
            body = b'{"project_id": ' + b"[" * 5000
        elif choice == 2:
            body = b" " * 65537
        elif choice == 3:
            body = json.dumps([document]).encode()
        else:
            body = json.dumps(document).encode()
        if content_type is not None:
            headers.append((b"Content-Type", content_type.encode()))
    return Request(
        persona, method, raw, decoded if valid else None, query, headers, body, content_type
    )


# -- sending and checking -----------------------------------------------------------


def send(server: LiveGuard, request: Request) -> tuple[int, http.client.HTTPMessage, bytes]:
    lines = [request.method.encode() + b" " + request.target + b" HTTP/1.1", b"Host: fuzz"]
    lines += [name + b": " + value for name, value in request.headers]
    lines += [b"Content-Length: " + str(len(request.body)).encode(), b"Connection: close"]
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + request.body)
        response = http.client.HTTPResponse(sock, method=request.method)
        response.begin()
        return response.status, response.headers, response.read()


def secret_row(database: Path) -> tuple[object, ...] | None:
    """The secret row as stored: read from the file, not through guard."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return connection.execute(
            "SELECT c.generation, p.external_id, u.external_id FROM consumers c "
            "JOIN projects p ON p.id = c.project_id JOIN users u ON u.id = c.user_id "
            "WHERE c.uuid = ?",
            (SECRET_CONSUMER,),
        ).fetchone()


def test_raw_http_fuzz_against_a_real_server(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    admin = identity_headers("fuzz-admin", "proj-ops", ["admin", "member", "reader"])
    with live_guard(tmp_path) as server:
        body = {"project_id": SECRET_PROJECT, "user_id": SECRET_USER, "consumer_generation": None}
        status, _, _ = testing.http(
            "PUT",
            f"{server.url}/consumers/{SECRET_CONSUMER}",
            {**admin, "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )
        assert status == 201
        database = tmp_path / "guard.sqlite"
        stored = secret_row(database)
        assert stored == (0, SECRET_PROJECT, SECRET_USER)
        for number in range(REQUESTS):
            request = generate(rng)
            where = f"seed {SEED}, request {number}: {request.method} {request.target[:200]!r}"
            status, headers, payload = send(server, request)
            assert status < 500, where
            assert status == expected(request), (
                f"{where} as {request.persona.name}: {status} {payload[:300]!r}"
            )
            request_id = headers["X-Openstack-Request-Id"]
            assert re.fullmatch(r"req-[0-9a-f-]{36}", request_id), where
            document = json.loads(payload)
            if status >= 400:
                (error,) = document["errors"]
                assert error["request_id"] == request_id and error["status"] == status, where
            assert SECRET_PROJECT not in payload.decode("utf-8", "replace"), where
            assert secret_row(database) == stored, where
    log = server.stderr()
    assert "Traceback" not in log
    # A number stays readable as a limit or a generation, never as an identity's value.
    numeric_ids = ("project_id=98765432", "user_id=98765432")
    for raw in (SECRET_PROJECT, SECRET_USER, OWN_PROJECT, OWN_USER, TOKEN, *numeric_ids):
        leaked = [line for line in log.splitlines() if raw in line]
        assert not leaked, f"{raw} in the log: {leaked[:3]}"
    for match in UUID_RE.finditer(log):
        before = log[max(0, match.start() - 4) : match.start()]
        assert before == "req-", f"raw id in the log: {match.group()}"
