"""The two services of the Placement benchmark: installed, served under gunicorn, seeded alike.

:mod:`guard.tools.bench.placement` measures and reports; this module makes what
it measures: OpenStack Placement 16.0.0 from its own virtualenv (checked here,
installed by ``make bench-placement``) and ``guard serve``, both under
gunicorn with the same workers, threads and keep-alive, each on its own
database, both holding the same 1,000 consumers created through their APIs as
the admin.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

from sqlalchemy.engine import make_url

from guard.testing import Persona
from guard.tools.bench.httpload import Served, served_process
from guard.tools.pgserver import free_port

PLACEMENT_VERSION = "16.0.0"
WORKERS = 2
THREADS = 4
KEEPALIVE_S = 5
CONSUMERS = 1000
PROJECTS = 10
#: Placement's newest microversion in 16.0.0: its answer has project, user,
#: consumer generation and type beside the allocations.
MICROVERSION = "placement 1.39"
ADMIN = Persona("bench-admin", "bench-ops", ("admin", "member", "reader"))
PLACEMENT_HEADERS = {"X-Auth-Token": "admin", "OpenStack-API-Version": MICROVERSION}


def consumer_uuids(count: int = CONSUMERS, seed: int = 14) -> list[str]:
    """The consumers both services hold: the same uuids on every run."""
    return [str(uuid.UUID(int=(seed << 64) + index, version=4)) for index in range(count)]


def owner(index: int) -> tuple[str, str]:
    """Project and user of consumer ``index``."""
    return f"bench-project-{index % PROJECTS}", f"bench-user-{index % PROJECTS}"


def placement_conf(connection: str) -> str:
    """Placement's ``placement.conf``: its database, and no keystone."""
    return f"[placement_database]\nconnection = {connection}\n\n[api]\nauth_strategy = noauth2\n"


def placement_url(sqlalchemy_url: str) -> str:
    """The same PostgreSQL database for Placement's driver (psycopg2, as Placement documents)."""
    url = make_url(sqlalchemy_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def _request(
    base_url: str, method: str, path: str, headers: Mapping[str, str], body: object = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(base_url.split("//", 1)[1], timeout=60)
    try:
        payload = None if body is None else json.dumps(body)
        sent = {**headers, **({"Content-Type": "application/json"} if payload else {})}
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _expect(status: int, body: bytes, wanted: int, what: str) -> None:
    if status != wanted:
        raise RuntimeError(f"{what}: answered {status}, not {wanted}: {body[:300]!r}")


def seed_placement(base_url: str, uuids: Sequence[str]) -> None:
    """One provider with VCPU inventory; each consumer allocates 1 VCPU of it."""
    provider = str(uuid.UUID(int=14, version=4))
    headers = PLACEMENT_HEADERS
    status, body = _request(
        base_url, "POST", "/resource_providers", headers, {"name": "bench", "uuid": provider}
    )
    _expect(status, body, 200, "Placement: create the resource provider")
    inventory = {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 100_000}}}
    status, body = _request(
        base_url, "PUT", f"/resource_providers/{provider}/inventories", headers, inventory
    )
    _expect(status, body, 200, "Placement: set the inventory")
    for start in range(0, len(uuids), 100):
        batch = {}
        for index in range(start, min(start + 100, len(uuids))):
            project_id, user_id = owner(index)
            batch[uuids[index]] = {
                "allocations": {provider: {"resources": {"VCPU": 1}}},
                "project_id": project_id,
                "user_id": user_id,
                "consumer_generation": None,
                "consumer_type": "INSTANCE",
            }
        status, body = _request(base_url, "POST", "/allocations", headers, batch)
        _expect(status, body, 204, "Placement: allocate for the consumers")


def seed_guard(base_url: str, uuids: Sequence[str]) -> None:
    """Each consumer created through guard's API (one connection, kept alive)."""
    connection = http.client.HTTPConnection(base_url.split("//", 1)[1], timeout=60)
    headers = {**ADMIN.headers(), "Content-Type": "application/json"}
    try:
        for index, consumer in enumerate(uuids):
            project_id, user_id = owner(index)
            body = {
                "project_id": project_id,
                "user_id": user_id,
                "consumer_type": "INSTANCE",
                "consumer_generation": None,
            }
            connection.request("PUT", f"/consumers/{consumer}", json.dumps(body), headers)
            response = connection.getresponse()
            _expect(response.status, response.read(), 201, "guard: create a consumer")
    finally:
        connection.close()


def placement_server(
    venv: Path, tmp: Path, url: str, env: dict[str, str]
) -> contextlib.AbstractContextManager[Served]:
    """Placement's database synced, its server starting (a context manager)."""
    config_dir = tmp / "placement"
    config_dir.mkdir()
    (config_dir / "placement.conf").write_text(placement_conf(placement_url(url)))
    env = {**env, "OS_PLACEMENT_CONFIG_DIR": str(config_dir)}
    with open(tmp / "placement-manage.log", "wb") as log:
        manage = [str(venv / "bin" / "placement-manage"), "--config-dir", str(config_dir)]
        # A program of Placement's virtualenv, with arguments built here.
        subprocess.run([*manage, "db", "sync"], env=env, stdout=log, stderr=log, check=True)  # noqa: S603
    port = free_port()
    command = [
        str(venv / "bin" / "gunicorn"), "--workers", str(WORKERS), "--threads", str(THREADS),
        "--worker-class", "gthread", "--keep-alive", str(KEEPALIVE_S), "--timeout", "60",
        "--no-control-socket", "--bind", f"127.0.0.1:{port}", "placement.wsgi.api:application",
    ]  # fmt: skip
    return served_process(command, env, tmp / "placement.log", f"http://127.0.0.1:{port}")


def guard_server(
    tmp: Path, url: str, env: dict[str, str]
) -> contextlib.AbstractContextManager[Served]:
    """``guard serve`` with gunicorn workers on ``url`` (migrated on start)."""
    conf = tmp / "guard.conf"
    conf.write_text("[DEFAULT]\n")  # nothing from /etc/guard or ~/.guard
    port = free_port()
    command = [
        sys.executable, "-m", "guard", "serve", "--config-file", str(conf),
        "--database", url, "--pipeline", "trusted", "--workers", str(WORKERS),
        "--threads", str(THREADS), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return served_process(command, env, tmp / "guard.log", f"http://127.0.0.1:{port}")


def check_installed(venv: Path) -> str | None:
    """Why Placement cannot run from ``venv`` (None when it can)."""
    missing = [
        name for name in ("placement-manage", "gunicorn") if not (venv / "bin" / name).exists()
    ]
    if missing:
        return (
            f"Placement {PLACEMENT_VERSION} is not installed in {venv} (no {', '.join(missing)}): "
            "`make bench-placement` installs it"
        )
    wanted = {"openstack-placement": PLACEMENT_VERSION, "gunicorn": version("gunicorn")}
    installed = installed_versions(venv / "bin" / "python", list(wanted))
    if installed != wanted:
        return f"{venv} holds {installed}, not {wanted}: `make bench-placement` reinstalls it"
    return None


def installed_versions(python: Path, names: Sequence[str]) -> dict[str, str]:
    """Versions of the distributions ``names`` where the interpreter ``python`` runs."""
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    # The interpreter of Placement's virtualenv, with a fixed script.
    done = subprocess.run([str(python), "-c", probe, *names], capture_output=True, text=True)  # noqa: S603
    return json.loads(done.stdout) if done.returncode == 0 else {}


def postmaster_pid(data_dir: Path) -> int:
    """The pid of the PostgreSQL server running on ``data_dir`` (its first line)."""
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
