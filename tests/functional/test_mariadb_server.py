"""The suite's MariaDB server is real: it answers SQL, runs unprivileged and survives a restart."""

import os
import pwd

import pymysql
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def test_fresh_databases_are_separate_and_keep_the_servers_default_collation(mariadb_server):
    first = create_engine(mariadb_server.create_database())
    second = create_engine(mariadb_server.create_database())
    try:
        with first.begin() as conn:
            conn.execute(text("CREATE TABLE marker (id integer)"))
            # The default collation ignores case and trailing spaces: guard must not rely on it.
            assert conn.execute(text("SELECT 'abc' = 'ABC '")).scalar() == 1
        with second.connect() as conn:
            tables = conn.execute(text("SHOW TABLES")).all()
        assert tables == []
    finally:
        first.dispose()
        second.dispose()


def test_the_server_runs_as_an_unprivileged_user(mariadb_server):
    if os.geteuid() != 0:
        pytest.skip("the suite does not run as root: the server runs as the suite's user")
    server_pid = int(mariadb_server.pid_file.read_text().strip())
    owner = os.stat(f"/proc/{server_pid}").st_uid
    assert owner != 0
    assert pwd.getpwuid(owner).pw_name == mariadb_server.run_as


def test_restart_refuses_then_accepts_connections(mariadb_server):
    url = make_url(mariadb_server.create_database())
    mariadb_server.stop()
    try:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            pymysql.connect(
                host="127.0.0.1", port=url.port, user=url.username, password=url.password,
                connect_timeout=2,
            )  # fmt: skip
        assert refused.value.args[0] == 2003  # can't connect
    finally:
        mariadb_server.start()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
