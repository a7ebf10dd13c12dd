"""Session fixtures: a Temporal dev server on free ports, a private PostgreSQL database and a
private Redis key prefix, so concurrent test runs (and pytest-xdist workers) never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from client.queue import JobQueue
from core.config import Settings
from db.migrate import upgrade_database
from devtools.devserver import DevServer
from devtools.scratch import create_postgres_database, drop_postgres_database
from tests.support import (
    make_queue,
    new_key,
    settings_from,
    test_env,
)

MACHINE_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[DevServer]:
    server = DevServer(headless=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name, url = create_postgres_database()
    try:
        upgrade_database(url)
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture(scope="session")
def session_env(temporal_server: DevServer, postgres_url: str) -> dict[str, str]:
    return test_env(
        temporal_address=temporal_server.address,
        database_url=postgres_url,
        redis_url=MACHINE_REDIS_URL,
        prefix=f"bjtest-{uuid.uuid4().hex[:12]}:",
        key=new_key(),
    )


@pytest.fixture(scope="session")
def settings(session_env: dict[str, str]) -> Settings:
    return settings_from(session_env)


@pytest.fixture
async def job_queue(settings: Settings) -> AsyncIterator[JobQueue]:
    queue = await make_queue(settings)
    try:
        yield queue
    finally:
        await queue.close()
