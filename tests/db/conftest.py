"""Database fixtures: each store test runs on SQLite and on the session's PostgreSQL database
(``postgres_url`` from tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.migrate import upgrade_database
from db.session import create_engine, create_sessionmaker
from devtools.scratch import create_postgres_database, drop_postgres_database


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """Async URL of a fresh, unmigrated database (for migration tests)."""
    name, url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Async URL of a migrated SQLite file private to this test."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'jobs.db'}"
    upgrade_database(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest_asyncio.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    """Ids unique across tests, since the PostgreSQL database is shared by the session."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex}"
