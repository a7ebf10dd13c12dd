"""EMAIL_DRAFT end to end: real dev server, PostgreSQL and Redis, Google, Microsoft and
Anthropic emulators on loopback."""

from __future__ import annotations

import email
import functools
from datetime import UTC, datetime, timedelta

import pytest

from client.queue import JobQueue
from core.queues import QueueName
from emulators import anthropic as anthropic_emulator
from tests.e2e.conftest import Providers
from tests.support import eventually, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


def finished(job_queue: JobQueue, job_id: str):
    return eventually(
        functools.partial(job_queue.get_job, job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=30,
    )


async def test_gmail_draft_is_written_stored_and_created(providers: Providers, job_queue: JobQueue):
    # An expired access token: the job refreshes it first.
    box = await providers.mailbox(job_queue, messages=1, expires_in=-timedelta(minutes=5))
    user, address, account_id, access = box.user, box.address, box.account_id, box.access
    [message_id] = box.message_ids
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job = await job_queue.add_job(
            "email",
            "email_draft",
            {
                "userId": user,
                "threadId": message_id,
                "context": "Can we move our call to Thursday at 3pm?",
                "tone": "friendly",
                "accountId": account_id,
                "replyToMessageId": message_id,
            },
        )
        info = await finished(job_queue, job.id)
    assert info.state is JobState.COMPLETED, info.failure_reason
    assert info.result["tone"] == "friendly" and info.result["provider"] == "gmail"
    assert info.result["input_tokens"] > 0
    [draft] = providers.google.drafts_for(address)
    assert draft.id == info.result["provider_draft_id"]
    mime = email.message_from_bytes(draft.raw)
    assert mime["Subject"].startswith("Re:") and mime["In-Reply-To"]
    [request] = providers.anthropic.requests
    assert "friendly" in str(request.system).lower()
    # The refreshed token was stored (encrypted) for the next job.
    assert job_queue.accounts is not None
    stored = await job_queue.accounts.get(account_id)
    assert stored.access_token != access and stored.expires_at > datetime.now(UTC)


async def test_outlook_reply_draft_and_retry_keeps_the_tone(
    providers: Providers, job_queue: JobQueue
):
    box = await providers.mailbox(job_queue, "outlook", messages=1)
    user, account_id = box.user, box.account_id
    [message_id] = box.message_ids
    # The first answer from Claude is a 529: the job retries and must ask the same way.
    providers.anthropic.faults.add("messages", anthropic_emulator.overloaded())
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job = await job_queue.add_job(
            "email",
            "email_draft",
            {
                "userId": user,
                "threadId": "conv-1",
                "context": "Please send the signed contract by Friday.",
                "tone": "professional",
                "accountId": account_id,
                "replyToMessageId": message_id,
            },
        )
        info = await finished(job_queue, job.id)
    assert info.state is JobState.COMPLETED, info.failure_reason
    assert info.attempts_made >= 1
    first, second = providers.anthropic.requests
    assert first.body == second.body  # same tone, prompt and settings on the retry
    [draft] = providers.microsoft.drafts_for(message_id)
    assert draft.id == info.result["provider_draft_id"]
    assert draft.comment.strip()


async def test_revoked_account_fails_without_retry_and_needs_reauth(
    providers: Providers, job_queue: JobQueue
):
    box = await providers.mailbox(
        job_queue, messages=1, expires_in=-timedelta(minutes=1), revoked=True
    )
    user, address, account_id = box.user, box.address, box.account_id
    [message_id] = box.message_ids
    async with running_workers(providers.settings, [QueueName.EMAIL]):
        job = await job_queue.add_job(
            "email",
            "email_draft",
            {
                "userId": user,
                "threadId": message_id,
                "context": "Thanks!",
                "accountId": account_id,
                "replyToMessageId": message_id,
            },
        )
        info = await finished(job_queue, job.id)
    assert info.state is JobState.FAILED
    assert info.failure_reason is not None and "ReauthRequired" in info.failure_reason
    assert job_queue.accounts is not None
    assert (await job_queue.accounts.get(account_id)).state == "needs_reauth"
    # The draft text was stored once; the mailbox got nothing.
    assert providers.google.drafts_for(address) == []
    assert len(providers.anthropic.requests) == 1
