"""A worker process and the client on a brand-new database, as a new user runs them: no
manual step on SQLite or PostgreSQL, and a clear refusal when migrating is someone else's job.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.queue import JobQueue
from core.errors import SchemaNotReady
from db.schema import current_revision, schema_head
from db.session import create_engine
from devtools.scratch import create_postgres_database, drop_postgres_database
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import WorkerProcess, eventually, settings_from
from tracking.store import JobState

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    name, url = create_postgres_database("bj_fresh")
    try:
        yield url
    finally:
        drop_postgres_database(name)


def hook(receiver: WebhookReceiver, path: str) -> dict[str, object]:
    return {
        "userId": "fresh-user",
        "url": receiver.url(path),
        "eventType": "fresh.start",
        "payload": {"n": 1},
        "secret": receiver.secret,
    }


async def use_from_scratch(env: dict[str, str], receiver: WebhookReceiver, tmp_path: Path) -> None:
    """Start a worker and a JobQueue at once on the empty database, then run two jobs."""
    worker = WorkerProcess(env, "webhooks", log_dir=tmp_path)
    worker.start()
    try:
        queue, _ = await asyncio.gather(
            JobQueue.connect(settings_from(env)), worker.wait_ready(timeout=60)
        )
        try:
            ok, gone = f"/ok-{uuid.uuid4().hex[:6]}", f"/gone-{uuid.uuid4().hex[:6]}"
            receiver.script(gone, [ScriptedResponse(status=410)])
            delivered = await queue.add_job(
                "webhooks", "webhook_delivery", hook(receiver, ok), job_id=f"fresh-{uuid.uuid4()}"
            )
            rejected = await queue.add_job("webhooks", "webhook_delivery", hook(receiver, gone))
            for job, state in ((delivered, JobState.COMPLETED), (rejected, JobState.FAILED)):
                info = await eventually(
                    functools.partial(queue.get_job, job.id),
                    lambda i: i.state in (JobState.COMPLETED, JobState.FAILED),
                    timeout=30,
                )
                assert info.state is state, info.failure_reason
            # One request each: nothing was POSTed again because of missing tables.
            assert len(receiver.requests(ok)) == 1 and receiver.requests(ok)[0].signature_valid
            assert len(receiver.requests(gone)) == 1
        finally:
            await queue.close()
    finally:
        worker.stop()
    # Whichever of the two came first migrated; the other found the schema at head.
    engine = create_engine(settings_from(env).database_url)
    try:
        assert await current_revision(engine) == schema_head()
    finally:
        await engine.dispose()


async def test_new_sqlite_file(session_env, receiver: WebhookReceiver, tmp_path: Path):
    database = tmp_path / "brand-new" / "jobs.db"
    env = {**session_env, "DATABASE_URL": f"sqlite:///{database}"}
    await use_from_scratch(env, receiver, tmp_path)
    assert database.exists()


async def test_new_postgres_database(
    session_env, receiver: WebhookReceiver, tmp_path: Path, fresh_postgres: str
):
    env = {**session_env, "DATABASE_URL": fresh_postgres}
    await use_from_scratch(env, receiver, tmp_path)


async def test_migrating_elsewhere_refuses_with_the_command(
    session_env, tmp_path: Path, fresh_postgres: str
):
    env = {**session_env, "DATABASE_URL": fresh_postgres, "DB_MIGRATE_ON_START": "false"}
    with pytest.raises(SchemaNotReady) as refused:
        await JobQueue.connect(settings_from(env))
    assert "python -m db.migrate" in str(refused.value)
    assert f"needs revision {schema_head()}" in str(refused.value)
    worker = WorkerProcess(env, "webhooks", log_dir=tmp_path)
    worker.start()
    try:
        assert await worker.wait_exit(timeout=30) == 3
    finally:
        worker.stop()
    assert "python -m db.migrate" in worker.output()
    assert "worker.ready" not in worker.output()
