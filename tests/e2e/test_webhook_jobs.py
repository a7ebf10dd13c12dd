"""Webhook delivery jobs end to end: real dev server, Redis, PostgreSQL and a local receiver."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from client.queue import JobQueue
from core.config import Settings
from core.queues import QueueName
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import eventually, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


def webhook_data(
    receiver: WebhookReceiver, path: str = "/hook", **extra: object
) -> dict[str, object]:
    return {
        "userId": "user-1",
        "url": receiver.url(path),
        "eventType": "lead.created",
        "payload": {"lead": "L-1"},
        "secret": receiver.secret,
        **extra,
    }


async def test_add_and_complete(settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver):
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        job = await job_queue.add_job("webhooks", "webhook_delivery", webhook_data(receiver))
        info = await eventually(
            lambda: job_queue.get_job(job.id), lambda i: i.state is JobState.COMPLETED
        )
    [request] = receiver.requests("/hook")
    assert request.signature_valid
    assert request.headers["webhook-id"] == job.id
    assert info.progress == 100
    assert info.attempts_made == 1
    assert info.result["status_code"] == 200
    stats = await job_queue.get_queue_stats("webhooks")
    assert stats["completed"] >= 1 and stats["available"] is True


async def _finished(job_queue: JobQueue, job_id: str, timeout: float = 30.0):
    return await eventually(
        lambda: job_queue.get_job(job_id),
        lambda i: i.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=timeout,
    )


@pytest.fixture
async def webhook_worker(settings: Settings) -> AsyncIterator[None]:
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        yield


@pytest.fixture
def store(settings: Settings):
    from db.session import create_engine, create_sessionmaker
    from db.webhooks import WebhookDeliveryStore

    return WebhookDeliveryStore(create_sessionmaker(create_engine(settings.database_url)))


async def test_server_error_then_success_retries(
    webhook_worker: None, job_queue: JobQueue, receiver: WebhookReceiver, store
):
    path = f"/flaky-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse(status=503)])
    job = await job_queue.add_job("webhooks", "webhook_delivery", webhook_data(receiver, path))
    info = await _finished(job_queue, job.id)
    assert info.state is JobState.COMPLETED
    first, second = receiver.requests(path)
    # Same message id and body on every attempt, so receivers can deduplicate.
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == job.id
    assert first.body == second.body and first.signature_valid and second.signature_valid
    # The webhooks queue backs off 2 s before the second attempt.
    assert (second.received_at - first.received_at).total_seconds() >= 1.9
    attempts = await store.list_attempts(job.id)
    assert [(a.attempt, a.status_code, a.outcome) for a in attempts] == [
        (1, 503, "retry"),
        (2, 200, "delivered"),
    ]
    delivery = await store.get_delivery(job.id)
    assert delivery is not None and delivery.status == "delivered"


async def test_client_error_fails_permanently_at_once(
    webhook_worker: None, job_queue: JobQueue, receiver: WebhookReceiver, store
):
    path = f"/gone-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse(status=404)])
    job = await job_queue.add_job("webhooks", "webhook_delivery", webhook_data(receiver, path))
    info = await _finished(job_queue, job.id)
    assert info.state is JobState.FAILED
    assert info.failure_reason is not None and "404" in info.failure_reason
    assert len(receiver.requests(path)) == 1
    delivery = await store.get_delivery(job.id)
    assert delivery is not None and delivery.status == "failed"
    assert [a.outcome for a in await store.list_attempts(job.id)] == ["failed"]


async def test_rate_limited_honours_retry_after(
    webhook_worker: None, job_queue: JobQueue, receiver: WebhookReceiver
):
    path = f"/busy-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse(status=429, headers={"Retry-After": "4"})])
    job = await job_queue.add_job("webhooks", "webhook_delivery", webhook_data(receiver, path))
    info = await _finished(job_queue, job.id)
    assert info.state is JobState.COMPLETED
    first, second = receiver.requests(path)
    # Retry-After (4 s) replaces the 2 s backoff of the queue.
    assert (second.received_at - first.received_at).total_seconds() >= 3.9


@pytest.mark.parametrize("failure", ["status-408", "status-425", "timeout", "refused"])
async def test_transient_failures_exhaust_attempts(
    webhook_worker: None, job_queue: JobQueue, receiver: WebhookReceiver, store, failure: str
):
    path = f"/down-{uuid.uuid4().hex[:6]}"
    if failure == "timeout":
        # The test settings give the client 2 s; the receiver answers after 3 s.
        receiver.script(path, [ScriptedResponse(delay_s=3), ScriptedResponse(delay_s=3)])
        url = receiver.url(path)
    elif failure == "refused":
        from devtools.devserver import free_port

        url = f"http://127.0.0.1:{free_port()}/nobody-home"
    else:
        status = int(failure.split("-")[1])
        receiver.script(path, [ScriptedResponse(status=status)] * 2)
        url = receiver.url(path)
    data = {**webhook_data(receiver, path), "url": url}
    job = await job_queue.add_job("webhooks", "webhook_delivery", data, attempts=2)
    info = await _finished(job_queue, job.id)
    assert info.state is JobState.FAILED
    attempts = await store.list_attempts(job.id)
    assert [a.outcome for a in attempts] == ["retry", "failed"]
    assert info.attempts_made == 2
    delivery = await store.get_delivery(job.id)
    assert delivery is not None and delivery.status == "failed" and delivery.failed_at is not None


async def test_redirect_is_not_followed(
    webhook_worker: None, job_queue: JobQueue, receiver: WebhookReceiver
):
    path = f"/moved-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse.redirect(receiver.url("/elsewhere"))])
    job = await job_queue.add_job("webhooks", "webhook_delivery", webhook_data(receiver, path))
    info = await _finished(job_queue, job.id)
    assert info.state is JobState.FAILED
    assert receiver.requests("/elsewhere") == []


async def test_private_target_refused_unless_allowed(
    settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver, store
):
    strict = settings.model_copy(update={"webhook_allow_private_targets": False})
    path = f"/private-{uuid.uuid4().hex[:6]}"
    async with running_workers(strict, [QueueName.WEBHOOKS]):
        job = await job_queue.add_job("webhooks", "webhook_delivery", webhook_data(receiver, path))
        info = await _finished(job_queue, job.id)
    assert info.state is JobState.FAILED
    assert info.failure_reason is not None and "TargetForbidden" in info.failure_reason
    # Refused on the resolved address, before any connection was made.
    assert receiver.requests(path) == []
    assert [a.outcome for a in await store.list_attempts(job.id)] == ["failed"]


async def test_bookkeeping_failure_after_a_2xx_never_posts_again(
    session_env: dict[str, str], receiver: WebhookReceiver
):
    """The delivery log is away while the receiver answers 200: the job completes with one
    POST, and the attempt is recorded once the database is back."""
    import sqlalchemy as sa

    from db.migrate import upgrade_database
    from db.session import create_engine
    from devtools.scratch import create_postgres_database, drop_postgres_database
    from tests.support import make_queue, settings_from

    name, url = create_postgres_database("bj_bookkeeping")
    try:
        upgrade_database(url)
        settings = settings_from({**session_env, "DATABASE_URL": url})
        engine = create_engine(url)
        queue = await make_queue(settings)
        path = f"/flaky-db-{uuid.uuid4().hex[:6]}"
        # Hold the answer long enough to take the attempts table away meanwhile.
        receiver.script(path, [ScriptedResponse(status=200, delay_s=1.0)])
        try:
            async with running_workers(settings, [QueueName.WEBHOOKS]):
                job = await queue.add_job(
                    "webhooks", "webhook_delivery", webhook_data(receiver, path)
                )
                await receiver.wait_for_requests(path, 1, timeout=15)
                async with engine.begin() as conn:
                    await conn.execute(
                        sa.text("ALTER TABLE webhook_delivery_attempts RENAME TO attempts_away")
                    )

                async def recording_step() -> bool:
                    desc = await queue.client.get_workflow_handle(job.id).describe()
                    return any(
                        a.activity_type.name == "record_webhook_attempts"
                        for a in desc.raw_description.pending_activities
                    )

                # The delivery handed its attempt on; the database step is retrying it.
                await eventually(recording_step, bool, timeout=30)
                async with engine.begin() as conn:
                    await conn.execute(
                        sa.text("ALTER TABLE attempts_away RENAME TO webhook_delivery_attempts")
                    )
                info = await _finished(queue, job.id, timeout=60)
            assert info.state is JobState.COMPLETED, info.failure_reason
            assert len(receiver.requests(path)) == 1
            from db.session import create_sessionmaker
            from db.webhooks import WebhookDeliveryStore

            attempts = await WebhookDeliveryStore(create_sessionmaker(engine)).list_attempts(job.id)
            assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
                (1, "delivered", 200)
            ]
        finally:
            await queue.close()
            await engine.dispose()
    finally:
        drop_postgres_database(name)
