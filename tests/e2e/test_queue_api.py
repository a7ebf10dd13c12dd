"""The queue API against a real dev server, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from client.queue import JobQueue
from core.catalog import JOB_KINDS, JobKind
from core.config import Settings
from core.errors import (
    InvalidArguments,
    InvalidJobData,
    InvalidJobState,
    JobNotFound,
    JobTypeNotAvailable,
    UnknownJobType,
    UnknownQueue,
    WrongQueue,
)
from core.jobs import JobType, SeoAuditJobData
from core.queues import QueueName
from db.session import create_engine, create_sessionmaker
from db.webhooks import WebhookDeliveryStore
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import eventually, fast_catalog, make_queue, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


def data(receiver: WebhookReceiver, path: str, user: str = "user-1", **payload: object):
    return {
        "user_id": user,
        "url": receiver.url(path),
        "event_type": "job.test",
        "payload": dict(payload),
        "secret": receiver.secret,
    }


def unique_path() -> str:
    return f"/p-{uuid.uuid4().hex[:8]}"


async def count_running(job_queue: JobQueue) -> int:
    return (
        await job_queue.client.count_workflows('TaskQueue="webhooks" AND ExecutionStatus="Running"')
    ).count


# -- validation: nothing starts --------------------------------------------------------


async def test_bad_input_names_the_field_and_starts_nothing(
    job_queue: JobQueue, monkeypatch: pytest.MonkeyPatch
):
    before = await count_running(job_queue)
    with pytest.raises(InvalidJobData) as bad:
        await job_queue.add_job(
            "webhooks",
            "webhook_delivery",
            {"userId": "", "url": "ftp://x", "eventType": "a", "payload": {}, "secret": "nope"},
        )
    assert {"userId", "url", "secret"} == bad.value.problems.keys()
    assert str(bad.value).startswith("invalid data for job type 'webhook_delivery': ")
    with pytest.raises(InvalidJobData) as missing:
        await job_queue.add_job(
            "webhooks",
            "webhook_delivery",
            {"userId": "u", "url": "https://x.example", "eventType": "a", "payload": {}},
        )
    assert missing.value.problems == {"secret": "Field required"}
    with pytest.raises(InvalidJobData) as system_field:
        await job_queue.add_job(
            "webhooks",
            "webhook_delivery",
            {
                "userId": "u",
                "url": "https://x.example",
                "eventType": "a",
                "payload": {},
                "secretId": "sec_someone_elses",
            },
        )
    assert system_field.value.problems["secret_id"] == "is set by the system; give secret"
    # Bad options are options, not data.
    with pytest.raises(InvalidArguments) as options:
        await job_queue.add_job(
            "webhooks",
            "webhook_delivery",
            {"userId": "u", "url": "https://x.example", "eventType": "a", "payload": {}},
            priority=11,
            delay=-5,
            attempts=0,
            job_id="no spaces allowed",
        )
    assert options.value.problems.keys() == {"priority", "delay", "attempts", "job_id"}
    assert "1 (runs first) to 10" in options.value.problems["priority"]
    assert str(options.value).startswith("invalid options for add_job: ")
    # A payload over the job data limit is refused by name, before Temporal sees it.
    for size in (300 * 1024, 3 * 1024 * 1024):
        with pytest.raises(InvalidJobData) as too_big:
            await job_queue.add_job(
                "webhooks",
                "webhook_delivery",
                {
                    "userId": "u",
                    "url": "https://x.example",
                    "eventType": "a",
                    "payload": {"blob": "x" * size},
                    "secret": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
                },
            )
        assert list(too_big.value.problems) == ["payload"]
        assert "over the limit of 262,144" in too_big.value.problems["payload"]
    with pytest.raises(UnknownQueue, match="'mail'"):
        await job_queue.add_job("mail", "webhook_delivery", {})
    with pytest.raises(UnknownJobType, match="'send_fax'"):
        await job_queue.add_job("webhooks", "send_fax", {})
    with pytest.raises(WrongQueue, match="runs on queue 'webhooks'"):
        await job_queue.add_job("email", "webhook_delivery", {})
    # Every job type of the PRD runs now; one that is only declared is refused, unstarted.
    declared = JobKind(JobType.SEO_AUDIT, QueueName.SEO, SeoAuditJobData)
    monkeypatch.setitem(JOB_KINDS, JobType.SEO_AUDIT, declared)
    with pytest.raises(JobTypeNotAvailable):
        await job_queue.add_job("seo", "seo_audit", {"userId": "u", "url": "https://example.com/"})
    assert await count_running(job_queue) == before


async def test_camel_and_snake_case_both_accepted(
    settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    camel = {
        "userId": "u-9",
        "url": receiver.url("/c"),
        "eventType": "x.y",
        "payload": {},
        "secret": receiver.secret,
    }
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        a = await job_queue.add_job("webhooks", "webhook_delivery", camel)
        b = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, "/c"))
        for job in (a, b):
            info = await eventually(
                functools.partial(job_queue.get_job, job.id),
                lambda i: i.state is JobState.COMPLETED,
            )
            assert info.user_id in ("u-9", "user-1")


# -- dedup, delay, priority ------------------------------------------------------------


async def test_dedup_by_job_id_while_running_and_after_completion(
    settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    path = unique_path()
    job_id = f"order-{uuid.uuid4().hex}"
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        first = await job_queue.add_job(
            "webhooks", "webhook_delivery", data(receiver, path), job_id=job_id
        )
        again = await job_queue.add_job(
            "webhooks", "webhook_delivery", data(receiver, path), job_id=job_id
        )
        assert not first.deduplicated and again.deduplicated and again.id == first.id
        await eventually(lambda: job_queue.get_job(job_id), lambda i: i.state is JobState.COMPLETED)
        later = await job_queue.add_job(
            "webhooks", "webhook_delivery", data(receiver, path), job_id=job_id
        )
        assert later.deduplicated
        # Concurrent adds of a new id: exactly one starts.
        racing = f"race-{uuid.uuid4().hex}"
        jobs = await asyncio.gather(
            *(
                job_queue.add_job(
                    "webhooks", "webhook_delivery", data(receiver, path), job_id=racing
                )
                for _ in range(8)
            )
        )
        assert sum(not j.deduplicated for j in jobs) == 1
        await eventually(lambda: job_queue.get_job(racing), lambda i: i.state is JobState.COMPLETED)
    assert len(receiver.requests(path)) == 2


async def test_delay(settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver):
    path = unique_path()
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        job = await job_queue.add_job(
            "webhooks", "webhook_delivery", data(receiver, path), delay=timedelta(seconds=2)
        )
        added = (await job_queue.get_job(job.id)).added_at
        assert (await job_queue.get_job(job.id)).state is JobState.DELAYED
        assert (await job_queue.get_queue_stats("webhooks"))["delayed"] >= 1
        [request] = await receiver.wait_for_requests(path, 1, timeout=15)
        await eventually(lambda: job_queue.get_job(job.id), lambda i: i.state is JobState.COMPLETED)
    assert added is not None
    assert (request.received_at - added).total_seconds() >= 1.9


async def test_priority_order_of_paused_backlog(settings: Settings, receiver: WebhookReceiver):
    # One activity slot, so the dispatch order is the delivery order.
    catalog = fast_catalog(concurrency=1)
    queue = await make_queue(settings, catalog)
    path = unique_path()
    try:
        async with running_workers(settings, [QueueName.WEBHOOKS], catalog):
            await queue.pause_queue("webhooks")
            priorities = list(range(1, 11))
            random.Random(7).shuffle(priorities)
            jobs = []
            for p in priorities:
                jobs.append(
                    await queue.add_job(
                        "webhooks", "webhook_delivery", data(receiver, path, priority=p), priority=p
                    )
                )

            # Every job's activity is in the paused backlog before we resume.
            async def scheduled() -> int:
                n = 0
                for job in jobs:
                    desc = await queue.client.get_workflow_handle(job.id).describe()
                    n += len(desc.raw_description.pending_activities)
                return n

            await eventually(scheduled, lambda n: n == len(jobs))
            assert receiver.requests(path) == []
            stats = await queue.get_queue_stats("webhooks")
            assert stats["paused"] is True and stats["waiting"] >= 10
            await queue.resume_queue("webhooks")
            received = await receiver.wait_for_requests(path, 10, timeout=30)
        order = [__import__("json").loads(r.body)["data"]["priority"] for r in received]
        assert order == sorted(order)
    finally:
        await queue.resume_queue("webhooks")
        await queue.close()


# -- operations ------------------------------------------------------------------------


async def test_cancel_waiting_and_running_jobs(
    settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    slow = unique_path()
    receiver.script(slow, [ScriptedResponse(delay_s=8)])
    patient = settings.model_copy(update={"webhook_timeout_seconds": 10.0})
    async with running_workers(patient, [QueueName.WEBHOOKS]):
        delayed = await job_queue.add_job(
            "webhooks", "webhook_delivery", data(receiver, unique_path()), delay=60_000
        )
        await job_queue.cancel_job(delayed.id)
        info = await job_queue.get_job(delayed.id)
        assert (info.state, info.failure_reason) == (JobState.FAILED, "cancelled")
        # Cancelled, not terminated, in Temporal's own tools too.
        desc = await job_queue.client.get_workflow_handle(delayed.id).describe()
        assert desc.status == WorkflowExecutionStatus.CANCELED

        running = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, slow))
        await eventually(
            lambda: job_queue.get_job(running.id), lambda i: i.state is JobState.ACTIVE
        )
        started = asyncio.get_running_loop().time()
        await job_queue.cancel_job(running.id)
        # The activity saw the cancel at its next heartbeat, well before the POST would end.
        assert asyncio.get_running_loop().time() - started < 6
        info = await job_queue.get_job(running.id)
        assert (info.state, info.failure_reason) == (JobState.FAILED, "cancelled")
        desc = await job_queue.client.get_workflow_handle(running.id).describe()
        assert desc.status == WorkflowExecutionStatus.CANCELED
        # ...and cleaned up: its attempt is on record as cancelled, not left open.
        attempts = await WebhookDeliveryStore(
            create_sessionmaker(create_engine(settings.database_url))
        ).list_attempts(running.id)
        assert [(a.outcome, a.error) for a in attempts] == [("failed", "cancelled")]
        with pytest.raises(InvalidJobState):
            await job_queue.cancel_job(running.id)
    with pytest.raises(JobNotFound):
        await job_queue.cancel_job("no-such-job")


async def test_retry_failed_job_and_remove(
    settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    path = unique_path()
    receiver.script(path, [ScriptedResponse(status=400)])
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        job = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
        await eventually(lambda: job_queue.get_job(job.id), lambda i: i.state is JobState.FAILED)
        with pytest.raises(JobNotFound):
            await job_queue.retry_job(f"{job.id}-missing")
        retried = await job_queue.retry_job(job.id)
        assert retried.id == job.id
        assert retried.run_id is not None and retried.run_id != job.run_id
        new_run = await job_queue.client.get_workflow_handle(job.id).describe()
        assert new_run.run_id == retried.run_id
        info = await eventually(
            lambda: job_queue.get_job(job.id), lambda i: i.state is JobState.COMPLETED
        )
        assert info.result["status_code"] == 200
        with pytest.raises(InvalidJobState):
            await job_queue.retry_job(job.id)
    assert len(receiver.requests(path)) == 2
    await job_queue.remove_job(job.id)
    with pytest.raises(JobNotFound):
        await job_queue.get_job(job.id)


async def test_stats_and_per_user_visibility(
    settings: Settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        job = await job_queue.add_job(
            "webhooks", "webhook_delivery", data(receiver, "/s", user="alice")
        )
        await eventually(lambda: job_queue.get_job(job.id), lambda i: i.state is JobState.COMPLETED)
    assert (await job_queue.get_job(job.id, user_id="alice")).id == job.id
    with pytest.raises(JobNotFound):
        await job_queue.get_job(job.id, user_id="mallory")
    with pytest.raises(JobNotFound):
        await job_queue.get_job_events(job.id, user_id="mallory")
    assert await job_queue.get_job_events(job.id, user_id="alice")
    every = await job_queue.get_all_queue_stats()
    assert set(every) == {q.value for q in QueueName}
    for stats in every.values():
        assert set(stats) == {
            "waiting",
            "active",
            "completed",
            "failed",
            "delayed",
            "paused",
            "available",
        }
    events = await job_queue.get_job_events(job.id)
    names = [fields["event"] for _, fields in events]
    assert names == ["added", "started", "completed"] or names == ["started", "completed"]
    # Offsets let a late subscriber resume exactly after what it has seen.
    first_offset = events[0][0]
    assert [e[0] for e in await job_queue.get_job_events(job.id, after=first_offset)] == [
        e[0] for e in events[1:]
    ]


async def test_connect_email_account(job_queue: JobQueue):
    from datetime import UTC, datetime

    from core.errors import InvalidArguments

    expires = datetime(2026, 12, 1, tzinfo=UTC)
    user = f"user-{uuid.uuid4().hex[:8]}"
    account_id = await job_queue.connect_email_account(
        user, "gmail", "Demo@Example.com", "access-1", "refresh-1", expires
    )
    again = await job_queue.connect_email_account(
        user, "gmail", "demo@example.com", "access-2", "refresh-2", expires
    )
    assert again == account_id
    assert job_queue.accounts is not None
    account = await job_queue.accounts.get(account_id)
    assert (account.access_token, account.state) == ("access-2", "active")
    with pytest.raises(InvalidArguments) as bad:
        await job_queue.connect_email_account(
            "",
            "yahoo",
            "not-an-email",
            "",
            "SECRET-refresh",
            datetime(2026, 12, 1),  # noqa: DTZ001
        )
    assert {"user_id", "provider", "email_address", "access_token", "expires_at"} <= set(
        bad.value.problems
    )
    assert "SECRET" not in str(bad.value)
