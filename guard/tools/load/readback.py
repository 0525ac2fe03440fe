"""The database's final rows, read back read-only to check acknowledged writes."""

from __future__ import annotations

from collections.abc import Iterable

from guard.tools.load.invariants import StoredConsumer
from guard.tools.load.target import LoadError


def read_stored(database_url: str, uuids: Iterable[str]) -> dict[str, StoredConsumer]:
    """Read the consumers ``uuids`` back from the database, in a read-only transaction.

    Uses SQLAlchemy Core over guard's models; it never writes (the session is
    read-only on PostgreSQL and ``query_only`` on SQLite).
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from guard.db.models import Consumer, Project

    consumers, projects = Consumer.__table__, Project.__table__
    wanted = sorted(set(uuids))
    found: dict[str, StoredConsumer] = {}
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            for start in range(0, len(wanted), 500):
                query = (
                    sa.select(consumers.c.uuid, projects.c.external_id, consumers.c.generation)
                    .join(projects, projects.c.id == consumers.c.project_id)
                    .where(consumers.c.uuid.in_(wanted[start : start + 500]))
                )
                for consumer_uuid, project_id, generation in conn.execute(query):
                    found[consumer_uuid] = StoredConsumer(project_id, generation)
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        # The class name only: the driver's message may carry the URL's credentials.
        raise LoadError(f"cannot read the database back ({type(exc).__name__})") from exc
    finally:
        engine.dispose()
    return found
