"""Module-level functions of the job API, backed by one lazily connected ``JobQueue``.

``from client import add_job, get_queue_stats`` is all a producer needs; configuration
comes from the environment (``core.config``). Tests and services that manage their own
connections call ``use_queue()`` with a ``JobQueue`` they built. Each function is the
``JobQueue`` method of the same name (same signature, same documentation), called on the
shared queue; the typed ``add_<job type>_job`` helpers are ``add_job`` with the queue and
job type filled in.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from client.base import Job
from client.queue import JobQueue
from core import jobs
from core.catalog import QUEUE_OF_JOB_TYPE
from core.jobs import JobData, JobType

P = ParamSpec("P")
R = TypeVar("R")
DataT = TypeVar("DataT", bound=JobData)
DataT_contra = TypeVar("DataT_contra", bound=JobData, contravariant=True)
Delay = int | timedelta | None

_queue: JobQueue | None = None
_lock = asyncio.Lock()


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


async def shutdown_queues() -> None:
    """Close every connection the job API opened (idempotent)."""
    global _queue
    queue, _queue = _queue, None
    if queue is not None:
        await queue.close()


async def shutdown_queue_events() -> None:
    """Close the event-log readers. They share the queue's Redis pool, so this closes it."""
    await shutdown_queues()


def _on_shared_queue(
    method: Callable[Concatenate[JobQueue, P], Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return await method(await get_queue(), *args, **kwargs)

    # help() and IDEs show the method's signature without its ``self``.
    signature = inspect.signature(method)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return call


add_job = _on_shared_queue(JobQueue.add_job)
get_job = _on_shared_queue(JobQueue.get_job)
get_job_events = _on_shared_queue(JobQueue.get_job_events)
get_queue_stats = _on_shared_queue(JobQueue.get_queue_stats)
get_all_queue_stats = _on_shared_queue(JobQueue.get_all_queue_stats)
pause_queue = _on_shared_queue(JobQueue.pause_queue)
resume_queue = _on_shared_queue(JobQueue.resume_queue)
cancel_job = _on_shared_queue(JobQueue.cancel_job)
retry_job = _on_shared_queue(JobQueue.retry_job)
remove_job = _on_shared_queue(JobQueue.remove_job)
connect_email_account = _on_shared_queue(JobQueue.connect_email_account)
set_vip_senders = _on_shared_queue(JobQueue.set_vip_senders)
get_campaign_stats = _on_shared_queue(JobQueue.get_campaign_stats)
get_call = _on_shared_queue(JobQueue.get_call)
get_enrichment_results = _on_shared_queue(JobQueue.get_enrichment_results)
save_browser_workflow = _on_shared_queue(JobQueue.save_browser_workflow)
get_browser_workflow = _on_shared_queue(JobQueue.get_browser_workflow)
get_workflow_execution = _on_shared_queue(JobQueue.get_workflow_execution)
get_screenshot = _on_shared_queue(JobQueue.get_screenshot)
list_workflow_executions = _on_shared_queue(JobQueue.list_workflow_executions)
list_schedules = _on_shared_queue(JobQueue.list_schedules)
pause_schedule = _on_shared_queue(JobQueue.pause_schedule)
unpause_schedule = _on_shared_queue(JobQueue.unpause_schedule)
trigger_schedule = _on_shared_queue(JobQueue.trigger_schedule)
list_dead_webhooks = _on_shared_queue(JobQueue.list_dead_webhooks)
redeliver_webhooks = _on_shared_queue(JobQueue.redeliver_webhooks)
discard_webhooks = _on_shared_queue(JobQueue.discard_webhooks)
enable_webhook_endpoint = _on_shared_queue(JobQueue.enable_webhook_endpoint)
upload_ad_data = _on_shared_queue(JobQueue.upload_ad_data)
get_report = _on_shared_queue(JobQueue.get_report)
get_queue_history = _on_shared_queue(JobQueue.get_queue_history)
list_ad_actions = _on_shared_queue(JobQueue.list_ad_actions)


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
add_email_sync_job = typed_helper(T.EMAIL_SYNC, jobs.EmailSyncJobData)
add_email_draft_job = typed_helper(T.EMAIL_DRAFT, jobs.EmailDraftJobData)
add_voice_call_job = typed_helper(T.VOICE_CALL, jobs.VoiceCallJobData)
add_seo_audit_job = typed_helper(T.SEO_AUDIT, jobs.SeoAuditJobData)
add_keyword_analysis_job = typed_helper(T.KEYWORD_ANALYSIS, jobs.KeywordAnalysisJobData)
add_ad_analysis_job = typed_helper(T.AD_ANALYSIS, jobs.AdAnalysisJobData)
add_ad_automation_job = typed_helper(T.AD_AUTOMATION, jobs.AdAutomationJobData)
add_lead_enrichment_job = typed_helper(T.LEAD_ENRICHMENT, jobs.LeadEnrichmentJobData)
add_workflow_execution_job = typed_helper(T.WORKFLOW_EXECUTION, jobs.WorkflowExecutionJobData)
add_memory_cleanup_job = typed_helper(T.MEMORY_CLEANUP, jobs.MemoryCleanupJobData)
add_memory_consolidation_job = typed_helper(T.MEMORY_CONSOLIDATION, jobs.MemoryConsolidationJobData)
add_webhook_delivery_job = typed_helper(T.WEBHOOK_DELIVERY, jobs.WebhookDeliveryJobData)
