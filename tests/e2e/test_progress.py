"""Progress reported from workflow code and from activities reaches get_job and the event log."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from client.queue import JobQueue
from core.config import Settings
from tests.support import eventually, tracked_worker
from tracking.progress import report_progress, report_workflow_progress
from tracking.store import JobState
from worker import PASSTHROUGH_MODULES

pytestmark = pytest.mark.integration


class Step(BaseModel):
    done: int


@activity.defn(name="progress_step")
async def progress_step(step: Step) -> None:
    await report_progress(step.done)


@workflow.defn(name="progress-probe")
class ProgressProbe:
    @workflow.run
    async def run(self) -> str:
        report_workflow_progress(10)
        await workflow.execute_activity(
            progress_step, Step(done=40), start_to_close_timeout=timedelta(seconds=10)
        )
        report_workflow_progress(95)
        return "ok"


async def test_progress_from_workflow_and_activity(settings: Settings, job_queue: JobQueue):
    queue = f"progress-{uuid.uuid4().hex[:8]}"
    job_id = f"progress-{uuid.uuid4().hex}"
    async with tracked_worker(
        settings,
        queue,
        workflows=[ProgressProbe],
        activities=[progress_step],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                *PASSTHROUGH_MODULES, "tests"
            )
        ),
    ) as client:
        await client.execute_workflow(ProgressProbe.run, id=job_id, task_queue=queue)
        await eventually(lambda: job_queue.get_job(job_id), lambda i: i.state is JobState.COMPLETED)
    events = [fields for _, fields in await job_queue.get_job_events(job_id)]
    progress = [int(e["progress"]) for e in events if e["event"] == "progress"]
    assert progress == [10, 40, 95]
    assert [e["event"] for e in events] == [
        "progress",
        "started",
        "progress",
        "progress",
        "completed",
    ]
    assert (await job_queue.get_job(job_id)).progress == 100
