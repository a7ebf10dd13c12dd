"""Database fixtures: a private PostgreSQL database per test session, SQLite files per test.

The PostgreSQL server is shared with other test runs, so every session creates its own
uniquely named database and drops it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.migrate import upgrade_database
from db.session import create_engine, create_sessionmaker

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _create_postgres_database() -> str:
    """Create an empty database; returns its name."""
    name = f"bj_test_{uuid.uuid4().hex}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_postgres_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _async_url(name: str) -> str:
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Async URL of a migrated database private to this test session."""
    name = _create_postgres_database()
    try:
        url = _async_url(name)
        upgrade_database(url)
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """Async URL of a fresh, unmigrated database (for migration tests)."""
    name = _create_postgres_database()
    try:
        yield _async_url(name)
    finally:
        _drop_postgres_database(name)


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
