"""guard.tools.pgserver: a real throwaway PostgreSQL for the tools, gone when done."""

from __future__ import annotations

import os
import socket

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from guard.tools import pgserver


def test_throwaway_postgresql_serves_an_empty_database_and_cleans_up() -> None:
    try:
        server = pgserver.throwaway_postgresql()
        url = server.__enter__()
    except pgserver.PostgresUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {error}")
        pytest.skip(str(error))
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_database()").scalar().startswith("guard_")
            tables = conn.exec_driver_sql(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).scalar()
        engine.dispose()
        assert tables == 0
    finally:
        server.__exit__(None, None, None)
    port = make_url(url).port
    assert port is not None
    with socket.socket() as sock, pytest.raises(OSError):  # nothing listens any more
        sock.connect(("127.0.0.1", port))
