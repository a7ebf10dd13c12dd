"""Module-level functions of the job API, backed by one lazily connected ``JobQueue``.

``from client import add_job, get_queue_stats`` is all a producer needs; configuration
comes from the environment (``core.config``). Tests and services that manage their own
connections call ``use_queue()`` with a ``JobQueue`` they built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from client.base import Job, JobInfo
from client.queue import JobQueue
from core.catalog import QUEUE_OF_JOB_TYPE
from core.jobs import (
    AdAnalysisJobData,
    AdAutomationJobData,
    EmailDraftJobData,
    EmailSyncJobData,
    JobData,
    JobType,
    KeywordAnalysisJobData,
    LeadEnrichmentJobData,
    MemoryCleanupJobData,
    MemoryConsolidationJobData,
    SeoAuditJobData,
    VoiceCallJobData,
    WebhookDeliveryJobData,
    WorkflowExecutionJobData,
)

_queue: JobQueue | None = None
_lock = asyncio.Lock()

Data = JobData | Mapping[str, Any]
Delay = int | timedelta | None
DataT = TypeVar("DataT", bound=JobData)
DataT_contra = TypeVar("DataT_contra", bound=JobData, contravariant=True)


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


class AddTypedJob(Protocol[DataT_contra]):
    """``add_<job type>_job(data, *, delay, priority, attempts, job_id)``: add_job with the
    queue and job type filled in."""

    async def __call__(
        self,
        data: DataT_contra | Mapping[str, Any],
        *,
        delay: Delay = None,
        priority: int | None = None,
        attempts: int | None = None,
        job_id: str | None = None,
    ) -> Job: ...


def typed_helper(job_type: JobType, _model: type[DataT]) -> AddTypedJob[DataT]:
    """The typed add helper of ``job_type`` (its data model only types the signature)."""
    queue = QUEUE_OF_JOB_TYPE[job_type].value

    async def add(
        data: DataT | Mapping[str, Any],
        *,
        delay: Delay = None,
        priority: int | None = None,
        attempts: int | None = None,
        job_id: str | None = None,
    ) -> Job:
        return await add_job(
            queue, job_type, data, delay=delay, priority=priority, attempts=attempts, job_id=job_id
        )

    add.__name__ = add.__qualname__ = f"add_{job_type.value}_job"
    add.__doc__ = f"Add a {job_type.value} job to the {queue} queue (see add_job)."
    return add


T = JobType
add_email_sync_job = typed_helper(T.EMAIL_SYNC, EmailSyncJobData)
add_email_draft_job = typed_helper(T.EMAIL_DRAFT, EmailDraftJobData)
add_voice_call_job = typed_helper(T.VOICE_CALL, VoiceCallJobData)
add_seo_audit_job = typed_helper(T.SEO_AUDIT, SeoAuditJobData)
add_keyword_analysis_job = typed_helper(T.KEYWORD_ANALYSIS, KeywordAnalysisJobData)
add_ad_analysis_job = typed_helper(T.AD_ANALYSIS, AdAnalysisJobData)
add_ad_automation_job = typed_helper(T.AD_AUTOMATION, AdAutomationJobData)
add_lead_enrichment_job = typed_helper(T.LEAD_ENRICHMENT, LeadEnrichmentJobData)
add_workflow_execution_job = typed_helper(T.WORKFLOW_EXECUTION, WorkflowExecutionJobData)
add_memory_cleanup_job = typed_helper(T.MEMORY_CLEANUP, MemoryCleanupJobData)
add_memory_consolidation_job = typed_helper(T.MEMORY_CONSOLIDATION, MemoryConsolidationJobData)
add_webhook_delivery_job = typed_helper(T.WEBHOOK_DELIVERY, WebhookDeliveryJobData)


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
