"""Async engine and sessionmaker construction for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Result, Table, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

from db.base import utcnow

# Seconds a SQLite writer waits for the database lock before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 15.0


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the parent directory of a file-backed SQLite database."""
    url = make_url(database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine for ``postgresql+psycopg://`` or ``sqlite+aiosqlite://`` URLs."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_directory(database_url)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers run while one writer commits; foreign keys are off by default.
            if url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # Workers are many processes; a small pool each keeps the server's connection count sane.
    # No pre-ping: it costs a round trip per checkout on the hot path, and a statement that
    # fails on a connection the server dropped fails its activity, which Temporal retries.
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_timeout=30, pool_recycle=1800)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Records are copied out after commit; expiring them would force a reload per attribute.
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(
    session: AsyncSession, model: type[DeclarativeBase] | Table
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with ``on_conflict_do_*`` for the session's backend."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    # Settings only accept these two; anything else is a programming error.
    raise ValueError(f"unsupported database backend {name!r}")


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT, UPDATE or DELETE touched."""
    return cast(CursorResult[Any], result).rowcount


async def delete_expired(
    sessionmaker: async_sessionmaker[AsyncSession],
    key: InstrumentedAttribute[str],
    expiry: InstrumentedAttribute[datetime],
    *,
    limit: int,
) -> int:
    """Delete up to ``limit`` rows whose ``expiry`` has passed, oldest first (a bounded
    batch, so a large backlog never becomes one long transaction); how many went."""
    table = key.class_
    expired = select(key).where(expiry < utcnow()).order_by(expiry).limit(limit)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(table)
            .where(key.in_(expired.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)
