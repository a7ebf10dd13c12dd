"""EMAIL_SYNC end to end against the Gmail and Graph emulators, with the real dev server,
PostgreSQL and Redis: full then incremental syncs, cursor expiry, sync history rows, progress,
and one auto-draft per new important message."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from client.queue import JobQueue
from core.queues import QueueName
from db.models import EmailMessage, EmailSyncRun
from db.session import create_engine
from tests.e2e.conftest import Providers
from tests.support import eventually, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


def finished(job_queue: JobQueue, job_id: str, timeout: float = 60):
    return eventually(
        functools.partial(job_queue.get_job, job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=timeout,
    )


async def sync(job_queue: JobQueue, user: str, account_id: str, provider: str):
    job = await job_queue.add_job(
        "email",
        "email_sync",
        {"userId": user, "accountId": account_id, "emailProvider": provider},
    )
    info = await finished(job_queue, job.id)
    assert info.state is JobState.COMPLETED, info.failure_reason
    return job, info


async def rows(database_url: str, sql: sa.Select[Any]) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            count: int = (await conn.execute(sql)).scalar_one()
            return count
    finally:
        await engine.dispose()


async def test_gmail_full_then_incremental_with_history_and_auto_drafts(
    providers: Providers, job_queue: JobQueue
):
    # 1,200 messages over three 500-id pages; every 400th is labelled IMPORTANT.
    box = await providers.mailbox(job_queue, messages=1200, important_every=400)
    user, address, account_id = box.user, box.address, box.account_id
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        first, info = await sync(job_queue, user, account_id, "gmail")
        assert (info.result["fetched"], info.result["stored"]) == (1200, 1200)
        assert info.result["full_sync"] is True and info.result["cursor"]
        important = info.result["drafts_started"]
        assert important >= 3
        events = await job_queue.get_job_events(first.id)
        progress = [int(e["progress"]) for _, e in events if e.get("event") == "progress"]
        assert progress == [5, 10, 20, 40, 95]
        assert (await job_queue.get_job(first.id)).progress == 100

        providers.google.add_message(address, subject="URGENT: contract", body="Need it today")
        providers.google.add_message(address, subject="lunch?")
        second, info = await sync(job_queue, user, account_id, "gmail")
        assert info.result["full_sync"] is False
        assert (info.result["fetched"], info.result["stored"]) == (2, 2)
        assert info.result["drafts_started"] == 1

        # The provider forgets the cursor: a full pass again, storing nothing twice.
        providers.google.expire_history(10**9)
        third, info = await sync(job_queue, user, account_id, "gmail")
        assert info.result["full_sync"] is True
        assert (info.result["stored"], info.result["skipped"]) == (0, 1202)
        assert info.result["drafts_started"] == 0

        await eventually(
            lambda: _count(providers.google.drafts_for(address)),
            lambda n: n == important + 1,
            timeout=60,
        )
    database = providers.settings.database_url
    assert (
        await rows(
            database,
            sa.select(sa.func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.account_id == account_id),
        )
        == 1202
    )
    for job in (first, second, third):
        assert (
            await rows(
                database,
                sa.select(sa.func.count())
                .select_from(EmailSyncRun)
                .where(EmailSyncRun.job_id == job.id, EmailSyncRun.status == "completed"),
            )
            == 1
        )
    # Each important message was drafted exactly once, across all three syncs.
    assert len(providers.anthropic.requests) == important + 1


async def _count(items: Sequence[object]) -> int:
    return len(items)


async def test_outlook_delta_sync(providers: Providers, job_queue: JobQueue):
    box = await providers.mailbox(job_queue, "outlook", messages=1100)
    user, user_address, account_id = box.user, box.address, box.account_id
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        _, info = await sync(job_queue, user, account_id, "outlook")
        assert (info.result["fetched"], info.result["stored"]) == (1100, 1100)
        providers.microsoft.add_message(user_address, subject="new one")
        _, info = await sync(job_queue, user, account_id, "outlook")
        assert (info.result["full_sync"], info.result["stored"]) == (False, 1)


async def test_revoked_account_ends_the_sync_failed_in_history(
    providers: Providers, job_queue: JobQueue
):
    box = await providers.mailbox(
        job_queue, messages=3, expires_in=-timedelta(minutes=1), revoked=True
    )
    user, account_id = box.user, box.account_id
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job = await job_queue.add_job(
            "email",
            "email_sync",
            {"userId": user, "accountId": account_id, "emailProvider": "gmail"},
        )
        info = await finished(job_queue, job.id)
    assert info.state is JobState.FAILED
    assert info.failure_reason is not None and "ReauthRequired" in info.failure_reason
    assert job_queue.accounts is not None
    assert (await job_queue.accounts.get(account_id)).state == "needs_reauth"


async def test_rate_limited_page_waits_for_retry_after(providers: Providers, job_queue: JobQueue):
    from emulators.server import Fault

    box = await providers.mailbox(job_queue, messages=10)
    user, account_id = box.user, box.account_id
    providers.google.faults.add("messages.list", Fault(status=429, headers={"Retry-After": "5"}))
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job, info = await sync(job_queue, user, account_id, "gmail")
    assert info.result["stored"] == 10
    events = [fields for _, fields in await job_queue.get_job_events(job.id)]
    retry = next(i for i, e in enumerate(events) if e["event"] == "retrying")
    restart = next(e for e in events[retry:] if e["event"] == "started")
    # Retry-After (5 s) replaced the email queue's 2 s backoff.
    assert int(restart["ts"]) - int(events[retry]["ts"]) >= 4900


async def history_row(database_url: str, job_id: str) -> tuple[str, int, int, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        EmailSyncRun.status,
                        EmailSyncRun.fetched,
                        EmailSyncRun.stored,
                        EmailSyncRun.skipped,
                    ).where(EmailSyncRun.job_id == job_id)
                )
            ).one()
            return (row.status, row.fetched, row.stored, row.skipped)
    finally:
        await engine.dispose()


async def test_counts_add_up_across_a_retried_page(providers: Providers, job_queue: JobQueue):
    from emulators.server import Fault

    box = await providers.mailbox(job_queue, messages=1200)
    user, account_id = box.user, box.account_id
    # The first list page answers, the second answers 429 once: the attempt that stored
    # page one fails, and the retry resumes at page two.
    providers.google.faults.add(
        "messages.list", Fault(status=200), Fault(status=429, headers={"Retry-After": "1"})
    )
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job, info = await sync(job_queue, user, account_id, "gmail")
    events = [fields["event"] for _, fields in await job_queue.get_job_events(job.id)]
    assert "retrying" in events
    assert providers.google.calls["messages.list"] == 4  # page 1, 429, page 2, page 3
    assert (info.result["fetched"], info.result["stored"], info.result["skipped"]) == (
        1200,
        1200,
        0,
    )
    assert await history_row(providers.settings.database_url, job.id) == (
        "completed",
        1200,
        1200,
        0,
    )


async def test_killed_worker_resumes_from_the_heartbeated_page(
    providers: Providers, session_env: dict[str, str], tmp_path
):
    import signal
    from dataclasses import replace

    from emulators.server import Fault
    from tests.support import WorkerProcess, make_queue

    settings = providers.settings
    env = {**session_env, **providers.env}
    # A short heartbeat timeout so the lost attempt is noticed in seconds, not 30.
    from core.queues import load_catalog

    catalog = load_catalog({})
    catalog[QueueName.EMAIL] = replace(catalog[QueueName.EMAIL], heartbeat=timedelta(seconds=4))
    queue = await make_queue(settings, catalog)
    doomed = WorkerProcess(env, "email", log_dir=tmp_path)
    rescuer = WorkerProcess(env, "email", log_dir=tmp_path)
    try:
        # Six pages of 500, two important messages on each.
        box = await providers.mailbox(queue, messages=3000, important_every=250)
        user, address, account_id = box.user, box.address, box.account_id
        # Every page takes a second to list, so the kill lands mid-sync.
        providers.google.faults.add("messages.list", *[Fault(status=200, delay_s=1.0)] * 20)
        doomed.start()
        await doomed.wait_ready()
        job = await queue.add_job(
            "email",
            "email_sync",
            {"userId": user, "accountId": account_id, "emailProvider": "gmail"},
        )

        async def listed() -> int:
            return providers.google.calls["messages.list"]

        # Heartbeats reach the server at most every 0.8 x 4 s, so let a few pages pass first.
        await eventually(listed, lambda n: n >= 4, timeout=60)
        listed_before_kill = providers.google.calls["messages.list"]
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        await doomed.wait_exit()
        rescuer.start()
        await rescuer.wait_ready()
        info = await finished(queue, job.id, timeout=90)
        assert info.state is JobState.COMPLETED, info.failure_reason
        # Counts add up across the killed attempt and the one that resumed it...
        assert (info.result["fetched"], info.result["stored"], info.result["skipped"]) == (
            3000,
            3000,
            0,
        )
        assert await history_row(settings.database_url, job.id) == ("completed", 3000, 3000, 0)
        # ...and every important message got exactly one draft, including those on the pages
        # the killed attempt stored before it died.
        assert info.result["drafts_started"] == 12
        await eventually(
            lambda: _count(providers.google.drafts_for(address)), lambda n: n == 12, timeout=60
        )
    finally:
        doomed.stop()
        rescuer.stop()
        await queue.close()
    # Resumed from the heartbeated page token: the first page was not listed again, and the
    # full pass's starting point (the profile) was not taken again either.
    assert providers.google.calls["messages.list"] < listed_before_kill + 6
    assert providers.google.calls["profile"] == 1
    assert len(providers.anthropic.requests) == 12
    drafted = sa.select(sa.func.count()).where(
        EmailMessage.account_id == account_id,
        EmailMessage.important,
        EmailMessage.draft_job_id.is_not(None),
    )
    assert await rows(settings.database_url, drafted) == 12
    assert (
        await rows(
            settings.database_url,
            sa.select(sa.func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.account_id == account_id),
        )
        == 3000
    )


async def test_large_mailbox_continues_as_new(
    providers: Providers, job_queue: JobQueue, monkeypatch: pytest.MonkeyPatch
):
    from temporalio.client import WorkflowExecutionStatus

    import activities.email
    import workflows.email_sync

    # One page per activity call and one call per run: 1,200 messages take three runs.
    monkeypatch.setattr(activities.email, "PAGES_PER_CALL", 1)
    monkeypatch.setattr(workflows.email_sync, "BATCHES_PER_RUN", 1)
    box = await providers.mailbox(job_queue, messages=1200)
    user, account_id = box.user, box.account_id
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job, info = await sync(job_queue, user, account_id, "gmail")
    assert (info.result["fetched"], info.result["stored"]) == (1200, 1200)
    first_run = job_queue.client.get_workflow_handle(job.id, run_id=job.run_id)
    assert (await first_run.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    # Progress stayed one sequence across the runs.
    events = [e for _, e in await job_queue.get_job_events(job.id)]
    assert [int(e["progress"]) for e in events if e["event"] == "progress"] == [5, 10, 20, 40, 95]


async def test_vip_sender_gets_an_auto_draft(providers: Providers, job_queue: JobQueue):
    box = await providers.mailbox(job_queue)
    user, address, account_id = box.user, box.address, box.account_id
    providers.google.add_message(address, sender="Someone <someone@example.com>", subject="hi")
    await job_queue.set_vip_senders(user, ["Boss@Client.example"])
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        _, info = await sync(job_queue, user, account_id, "gmail")
        assert info.result["drafts_started"] == 0
        providers.google.add_message(address, sender="The Boss <boss@client.example>", subject="hi")
        _, info = await sync(job_queue, user, account_id, "gmail")
        assert (info.result["stored"], info.result["drafts_started"]) == (1, 1)


async def test_unexpected_401_refreshes_once_and_continues(
    providers: Providers, job_queue: JobQueue
):
    box = await providers.mailbox(job_queue, messages=20)
    user, account_id, access = box.user, box.account_id, box.access
    # The provider dropped the token although we believe it valid for another hour.
    providers.google.expire_access_token(access)
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        _, info = await sync(job_queue, user, account_id, "gmail")
    assert info.result["stored"] == 20
    assert job_queue.accounts is not None
    assert (await job_queue.accounts.get(account_id)).access_token != access
