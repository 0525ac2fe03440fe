"""A throwaway PostgreSQL server for guard's tools and its test suite.

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` in a private temporary
directory and serves on a free loopback port with trust authentication; it
can be stopped and started again (the suite's outage tests do) and is removed
by :meth:`PostgresServer.close`. PostgreSQL refuses to run as root, so as root
it runs as the unprivileged ``postgres`` (or ``nobody``) user through
``runuser``. Durability is off (``fsync``, ``synchronous_commit``): the data
is thrown away, and a benchmark of reads should not measure the disk.
:func:`throwaway_postgresql` is the one-database form the benchmarks use.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_TIMEOUT_S = 120


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed, or cannot run here."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise PostgresUnavailable("initdb not found: install the PostgreSQL server (postgresql-15)")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable("running as root, and no unprivileged user to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL server in a temporary directory, started now, removed on :meth:`close`."""

    def __init__(self) -> None:
        self.bin_dir = find_pg_bin()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="guard-pg-"))
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_file = self.base / "server.log"
        self.run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self.superuser = self.run_as or pwd.getpwuid(os.geteuid()).pw_name
        self.socket_dir.mkdir()
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            self.base.chmod(0o755)
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.superuser,
                "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            self.start()
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        # The server's own programs, with arguments this class builds.
        subprocess.run(command, check=True, capture_output=True, timeout=_TIMEOUT_S)  # noqa: S603

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects clients, ``immediate`` aborts)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """An SQLAlchemy URL (psycopg 3 driver) for ``database`` on this server."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "guard_test") -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        """Stop the server (if running) and remove its files."""
        with contextlib.suppress(subprocess.SubprocessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgresql() -> Iterator[str]:
    """Start a private PostgreSQL; yield the SQLAlchemy URL of one empty database."""
    server = PostgresServer()
    try:
        yield server.create_database("guard")
    finally:
        server.close()
