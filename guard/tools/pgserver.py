"""A throwaway PostgreSQL server for guard's tools (benchmarks, trials).

:func:`throwaway_postgresql` runs ``initdb`` and ``pg_ctl`` in a private
temporary directory, serves one empty database on a free loopback port with
trust authentication, and removes everything when the block ends. PostgreSQL
refuses to run as root, so as root it runs as the unprivileged ``postgres``
(or ``nobody``) user through ``runuser``. Durability is off (``fsync``,
``synchronous_commit``): the data is thrown away, and a benchmark of reads
should not measure the disk.
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
from collections.abc import Iterator
from pathlib import Path

DATABASE = "guard"
_TIMEOUT_S = 120


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed, or cannot run here."""


def _bin_dir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise PostgresUnavailable("initdb not found: install the PostgreSQL server (postgresql-15)")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable("running as root, and no unprivileged user to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_postgresql() -> Iterator[str]:
    """Start a private PostgreSQL; yield the SQLAlchemy URL of its empty ``guard`` database."""
    bin_dir = _bin_dir()
    run_as = _unprivileged_user() if os.geteuid() == 0 else None
    superuser = run_as or pwd.getpwuid(os.geteuid()).pw_name
    base = Path(tempfile.mkdtemp(prefix="guard-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if run_as:
        entry = pwd.getpwnam(run_as)
        base.chmod(0o755)
        for path in (base, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def run(tool: str, *args: str) -> None:
        command = [str(bin_dir / tool), *args]
        if run_as:
            command = ["runuser", "-u", run_as, "--", *command]
        # The server's own programs, with arguments this function builds.
        subprocess.run(command, check=True, capture_output=True, timeout=_TIMEOUT_S)  # noqa: S603

    port = _free_port()
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    started = False
    try:
        run("initdb", "-D", str(data), "-A", "trust", "-U", superuser, "-E", "UTF8", "--no-sync")
        log_file = str(base / "server.log")
        run("pg_ctl", "-D", str(data), "-l", log_file, "-o", options, "-w", "start")
        started = True
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", superuser, DATABASE)
        yield f"postgresql+psycopg://{superuser}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError):
                run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
