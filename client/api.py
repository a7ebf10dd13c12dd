"""Module-level functions of the job API, backed by one lazily connected ``JobQueue``.

``from client import add_job, get_queue_stats`` is all a producer needs; configuration
comes from the environment (``core.config``). Tests and services that manage their own
connections call ``use_queue()`` with a ``JobQueue`` they built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from client.queue import Job, JobInfo, JobQueue
from core.jobs import (
    EmailDraftJobData,
    EmailSyncJobData,
    JobData,
    JobType,
    LeadEnrichmentJobData,
    VoiceCallJobData,
    WebhookDeliveryJobData,
    WorkflowExecutionJobData,
)
from core.queues import QUEUE_OF_JOB_TYPE

_queue: JobQueue | None = None
_lock = asyncio.Lock()

Data = JobData | Mapping[str, Any]
Delay = int | timedelta | None


async def get_queue() -> JobQueue:
    global _queue
    if _queue is None:
        async with _lock:
            if _queue is None:
                _queue = await JobQueue.connect()
    return _queue


def use_queue(queue: JobQueue | None) -> None:
    """Make ``queue`` the one the module-level functions use (None forgets it)."""
    global _queue
    _queue = queue


async def add_job(
    queue_name: str,
    job_type: str | JobType,
    data: Data,
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await (await get_queue()).add_job(
        queue_name,
        job_type,
        data,
        delay=delay,
        priority=priority,
        attempts=attempts,
        job_id=job_id,
    )


async def _add_typed(
    job_type: JobType,
    data: Data,
    delay: Delay,
    priority: int | None,
    attempts: int | None,
    job_id: str | None,
) -> Job:
    return await add_job(
        QUEUE_OF_JOB_TYPE[job_type].value,
        job_type,
        data,
        delay=delay,
        priority=priority,
        attempts=attempts,
        job_id=job_id,
    )


async def add_email_sync_job(
    data: EmailSyncJobData | Mapping[str, Any],
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await _add_typed(JobType.EMAIL_SYNC, data, delay, priority, attempts, job_id)


async def add_email_draft_job(
    data: EmailDraftJobData | Mapping[str, Any],
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await _add_typed(JobType.EMAIL_DRAFT, data, delay, priority, attempts, job_id)


async def add_voice_call_job(
    data: VoiceCallJobData | Mapping[str, Any],
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await _add_typed(JobType.VOICE_CALL, data, delay, priority, attempts, job_id)


async def add_lead_enrichment_job(
    data: LeadEnrichmentJobData | Mapping[str, Any],
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await _add_typed(JobType.LEAD_ENRICHMENT, data, delay, priority, attempts, job_id)


async def add_workflow_execution_job(
    data: WorkflowExecutionJobData | Mapping[str, Any],
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await _add_typed(JobType.WORKFLOW_EXECUTION, data, delay, priority, attempts, job_id)


async def add_webhook_delivery_job(
    data: WebhookDeliveryJobData | Mapping[str, Any],
    *,
    delay: Delay = None,
    priority: int | None = None,
    attempts: int | None = None,
    job_id: str | None = None,
) -> Job:
    return await _add_typed(JobType.WEBHOOK_DELIVERY, data, delay, priority, attempts, job_id)


async def connect_email_account(
    user_id: str,
    provider: str,
    email_address: str,
    access_token: str,
    refresh_token: str,
    expires_at: datetime,
) -> str:
    return await (await get_queue()).connect_email_account(
        user_id, provider, email_address, access_token, refresh_token, expires_at
    )


async def set_vip_senders(user_id: str, addresses: list[str]) -> None:
    await (await get_queue()).set_vip_senders(user_id, addresses)


async def get_job(job_id: str, *, user_id: str | None = None) -> JobInfo:
    return await (await get_queue()).get_job(job_id, user_id=user_id)


async def get_job_events(
    job_id: str, after: str = "-", *, user_id: str | None = None
) -> list[tuple[str, dict[str, str]]]:
    return await (await get_queue()).get_job_events(job_id, after, user_id=user_id)


async def get_queue_stats(queue_name: str) -> dict[str, Any]:
    return await (await get_queue()).get_queue_stats(queue_name)


async def get_all_queue_stats() -> dict[str, dict[str, Any]]:
    return await (await get_queue()).get_all_queue_stats()


async def pause_queue(queue_name: str) -> None:
    await (await get_queue()).pause_queue(queue_name)


async def resume_queue(queue_name: str) -> None:
    await (await get_queue()).resume_queue(queue_name)


async def cancel_job(job_id: str) -> None:
    await (await get_queue()).cancel_job(job_id)


async def retry_job(job_id: str) -> Job:
    return await (await get_queue()).retry_job(job_id)


async def remove_job(job_id: str) -> None:
    await (await get_queue()).remove_job(job_id)


async def shutdown_queues() -> None:
    """Close every connection the job API opened (idempotent)."""
    global _queue
    queue, _queue = _queue, None
    if queue is not None:
        await queue.close()


async def shutdown_queue_events() -> None:
    """Close the event-log readers. They share the queue's Redis pool, so this closes it."""
    await shutdown_queues()
