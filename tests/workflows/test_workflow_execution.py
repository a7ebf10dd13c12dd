"""WORKFLOW_EXECUTION on the time-skipping server with scripted activities: the 3 attempts
with 2 s and 4 s between them (FR-034), a failed step reported with its index, the wait in
line for a browser and the wake-up, and a cancel recorded on the execution."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.browser import (
    BeginExecutionInput,
    BeginExecutionResult,
    FinishExecutionInput,
    RunStepsInput,
    RunStepsResult,
    StepFailure,
)
from core.errors import RESOURCE_NOT_FOUND, STEP_FAILED
from core.jobs import JobType, WorkflowExecutionJobData
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import run_options
from core.signals import SLOT_FREED
from tests.workflows.conftest import assert_waits, record_history
from worker import workflow_runner
from workflows.workflow_execution import (
    SLOT_RECHECKS,
    WorkflowExecutionInput,
    WorkflowExecutionWorkflow,
)

pytestmark = pytest.mark.workflow


@dataclass
class FakeBrowser:
    """Scripted run_steps answers, in order (the last repeats): an int is a run that ends
    with that many steps done, a StepFailure a failed attempt, None no free browser."""

    runs: list[int | StepFailure | None]
    missing: bool = False
    hold: asyncio.Event | None = None
    calls: list[tuple[str, Any, datetime]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _called(self, name: str, input: Any) -> None:
        self.calls.append((name, input, activity.info().started_time))
        self.changed.set()

    def inputs(self, name: str) -> list[Any]:
        return [input for called, input, _ in self.calls if called == name]

    def times(self, name: str) -> list[datetime]:
        return [when for called, _, when in self.calls if called == name]

    async def seen(self, name: str, times: int = 1) -> None:
        async with asyncio.timeout(10):
            while len(self.inputs(name)) < times:
                self.changed.clear()
                await self.changed.wait()

    @activity.defn(name="begin_execution")
    async def begin(self, input: BeginExecutionInput) -> BeginExecutionResult:
        self._called("begin_execution", input)
        if self.missing:
            raise ApplicationError("not found", type=RESOURCE_NOT_FOUND, non_retryable=True)
        return BeginExecutionResult(workflow_version=input.workflow_version or 2, steps_total=4)

    @activity.defn(name="run_steps")
    async def run_steps(self, input: RunStepsInput) -> RunStepsResult:
        self._called("run_steps", input)
        if self.hold is not None:
            # A long run that heartbeats, so a cancel reaches it.
            while not self.hold.is_set():
                activity.heartbeat()
                await asyncio.sleep(0.05)
        answer = self.runs.pop(0) if len(self.runs) > 1 else self.runs[0]
        if answer is None:
            return RunStepsResult(started=False)
        if isinstance(answer, StepFailure):
            raise ApplicationError(f"step {answer.step_index} failed", answer, type=STEP_FAILED)
        return RunStepsResult(started=True, steps_succeeded=answer)

    @activity.defn(name="finish_execution")
    async def finish(self, input: FinishExecutionInput) -> None:
        self._called("finish_execution", input)


def browser_job(queue: str, **data: Any) -> WorkflowExecutionInput:
    run = run_options(DEFAULT_CATALOG[QueueName.WORKFLOW], JobType.WORKFLOW_EXECUTION)
    return WorkflowExecutionInput(
        data=WorkflowExecutionJobData.model_validate(
            {"userId": "u-1", "workflowId": "bw_1", "context": {"site": "http://x"}, **data}
        ),
        run=run.model_copy(update={"queue": queue}),
    )


async def start(
    env: WorkflowEnvironment, fake: FakeBrowser
) -> tuple[WorkflowHandle[Any, Any], Worker]:
    queue = f"browser-test-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[WorkflowExecutionWorkflow],
        activities=[fake.begin, fake.run_steps, fake.finish],
        workflow_runner=workflow_runner(),
    )
    handle = await env.client.start_workflow(
        WorkflowExecutionWorkflow.run,
        browser_job(queue),
        id=f"workflow_execution-{uuid.uuid4().hex}",
        task_queue=queue,
    )
    return handle, worker


async def test_a_run_records_its_execution_and_returns_its_id(time_env: WorkflowEnvironment):
    fake = FakeBrowser(runs=[4])
    handle, worker = await start(time_env, fake)
    async with worker:
        result = await handle.result()
        await record_history(handle, "workflow_execution_completed")
    [begun] = fake.inputs("begin_execution")
    [ran] = fake.inputs("run_steps")
    [finished] = fake.inputs("finish_execution")
    assert result.execution_id == begun.execution_id == ran.execution_id
    assert result.execution_id.startswith("exec_")
    assert (result.status, result.steps_total, result.steps_succeeded) == (
        "completed", 4, 4
    )  # fmt: skip
    assert ran.workflow_version == 2 and ran.context == {"site": "http://x"}
    assert (finished.status, finished.execution_id) == ("completed", begun.execution_id)


async def test_three_attempts_two_and_four_seconds_apart_then_the_failed_step(
    time_env: WorkflowEnvironment,
):
    failure = StepFailure(step_index=2, action="assert", error="assertion failed: text 'x'")
    fake = FakeBrowser(runs=[failure])
    handle, worker = await start(time_env, fake)
    async with worker:
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        await record_history(handle, "workflow_execution_failed_step")
    assert_waits(fake.times("run_steps"), [2.0, 4.0])
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == STEP_FAILED
    assert cause.message == "step 2 (assert) failed: assertion failed: text 'x'"
    assert cause.non_retryable
    [finished] = fake.inputs("finish_execution")
    assert (finished.status, finished.failed_step) == ("failed", 2)
    assert "assertion failed" in (finished.error or "")


async def test_a_job_waits_in_line_for_a_browser_and_is_woken(time_env: WorkflowEnvironment):
    fake = FakeBrowser(runs=[None, None, 3])
    handle, worker = await start(time_env, fake)
    async with worker:
        await fake.seen("run_steps")
        # In line: the next ask is the first re-check, unless someone wakes the job first.
        await handle.signal(SLOT_FREED)
        await fake.seen("run_steps", 2)
        result = await handle.result()
    starts = fake.times("run_steps")
    assert (starts[1] - starts[0]) < SLOT_RECHECKS[0]  # woken, not re-checked
    assert (starts[2] - starts[1]) >= SLOT_RECHECKS[0]  # nobody woke it: re-checked
    assert result.steps_succeeded == 3


async def test_a_cancel_mid_run_is_recorded_on_the_execution(time_env: WorkflowEnvironment):
    fake = FakeBrowser(runs=[4], hold=asyncio.Event())
    handle, worker = await start(time_env, fake)
    async with worker:
        await fake.seen("run_steps")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    [finished] = fake.inputs("finish_execution")
    assert finished.status == "cancelled"


async def test_a_missing_workflow_fails_at_once_without_a_browser(time_env: WorkflowEnvironment):
    fake = FakeBrowser(runs=[4], missing=True)
    handle, worker = await start(time_env, fake)
    async with worker:
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert fake.inputs("run_steps") == [] and len(fake.inputs("begin_execution")) == 1


def test_the_default_policy_is_three_attempts_two_seconds_apart():
    run = run_options(DEFAULT_CATALOG[QueueName.WORKFLOW], JobType.WORKFLOW_EXECUTION)
    assert (run.retry.maximum_attempts, run.retry.initial_interval_ms) == (3, 2000)
    assert timedelta(milliseconds=run.heartbeat_ms or 0) == timedelta(seconds=30)
