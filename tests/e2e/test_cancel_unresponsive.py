"""A job whose activity ignores the cancel is terminated after the grace period."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from client.queue import JobQueue
from core.config import Settings
from tests.support import eventually, tracked_worker
from tracking.store import JobState

pytestmark = pytest.mark.integration

RELEASE = asyncio.Event()


@activity.defn(name="stubborn")
async def stubborn() -> None:
    # Never heartbeats, so a cancel cannot reach it; it only ends when the test releases it.
    await asyncio.shield(RELEASE.wait())


@workflow.defn(name="stubborn-job", sandboxed=False)
class StubbornJob:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            stubborn,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


async def test_unresponsive_job_is_terminated_after_grace(settings: Settings, job_queue: JobQueue):
    queue = f"stubborn-{uuid.uuid4().hex[:8]}"
    job_id = f"stubborn-{uuid.uuid4().hex}"
    async with tracked_worker(
        settings,
        queue,
        workflows=[StubbornJob],
        activities=[stubborn],
        graceful_shutdown_timeout=timedelta(seconds=1),
    ) as client:
        await client.start_workflow(StubbornJob.run, id=job_id, task_queue=queue)
        await eventually(lambda: job_queue.get_job(job_id), lambda i: i.state is JobState.ACTIVE)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await job_queue.cancel_job(job_id)
        waited = loop.time() - started
        RELEASE.set()
    # The grace period of the test settings is 3 s.
    assert settings.job_cancel_grace_seconds <= waited < settings.job_cancel_grace_seconds + 3
    desc = await client.get_workflow_handle(job_id).describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED
    info = await job_queue.get_job(job_id)
    assert (info.state, info.failure_reason) == (JobState.FAILED, "cancelled")
