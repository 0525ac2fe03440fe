"""The suite's PostgreSQL cluster is real: it answers SQL and survives a restart."""

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError


def _port_and_user(url: str) -> tuple[int, str]:
    netloc = url.split("//", 1)[1].split("/", 1)[0]
    user, hostport = netloc.split("@")
    return int(hostport.rsplit(":", 1)[1]), user


def test_fresh_databases_are_separate(postgresql_cluster):
    first = create_engine(postgresql_cluster.create_database())
    second = create_engine(postgresql_cluster.create_database())
    with first.begin() as conn:
        conn.execute(text("CREATE TABLE marker (id integer)"))
    with second.connect() as conn:
        found = conn.execute(text("SELECT to_regclass('marker')")).scalar()
    assert found is None
    first.dispose()
    second.dispose()


def test_restart_refuses_then_accepts_connections(postgresql_cluster):
    url = postgresql_cluster.create_database()
    port, user = _port_and_user(url)
    postgresql_cluster.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                host="127.0.0.1", port=port, user=user, dbname="postgres", connect_timeout=2
            )
    finally:
        postgresql_cluster.start()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    except OperationalError:  # pragma: no cover - fails the test with context
        pytest.fail("cluster did not come back after restart")
    finally:
        engine.dispose()
