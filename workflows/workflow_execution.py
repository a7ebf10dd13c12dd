"""WORKFLOW_EXECUTION: run a saved browser workflow (US-006, FR-018, FR-034, FR-043).

The job checks the saved definition and records an execution (its id is in the result, for
``get_workflow_execution``), then runs the steps in one activity attempt per browser
session: each attempt starts from step 1 in a fresh session, so a failed attempt is retried
whole after the queue's backoff (3 attempts, 2 s). While every browser slot is taken the job
waits in line, woken by the job that gives one back, with a re-check every
``SLOT_RECHECKS`` in case nobody does. The step results, variables and screenshots live in
the database, never in this history.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows import policies
from workflows.slots import SlotLine, raise_if_cancelled

with workflow.unsafe.imports_passed_through():
    from activities.browser import (
        BeginExecutionInput,
        BrowserActivities,
        FinishExecutionInput,
        RunStepsInput,
        StepFailure,
    )
    from core.catalog import WORKFLOW_NAMES
    from core.errors import STEP_FAILED
    from core.jobs import JobType, WorkflowExecutionJobData
    from core.runs import JobRun
    from core.signals import SLOT_FREED

# A job in line for a browser asks again after these waits (the last repeats); woken, at once.
SLOT_RECHECKS = (timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=30))
# Asks per run before continuing as new, so a long wait never grows one history unbounded.
ASKS_PER_RUN = 200


class WorkflowExecutionInput(JobRun[WorkflowExecutionJobData]):
    """The job's input; a run continued while waiting for a browser keeps its execution."""

    execution_id: str | None = None


class WorkflowExecutionResult(BaseModel):
    execution_id: str
    status: str
    workflow_id: str
    workflow_version: int
    steps_total: int
    steps_succeeded: int


@workflow.defn(name=WORKFLOW_NAMES[JobType.WORKFLOW_EXECUTION])
class WorkflowExecutionWorkflow:
    def __init__(self) -> None:
        self._line = SlotLine(SLOT_RECHECKS, ASKS_PER_RUN)

    @workflow.signal(name=SLOT_FREED)
    def slot_freed(self) -> None:
        self._line.woken()

    @workflow.run
    async def run(self, job: WorkflowExecutionInput) -> WorkflowExecutionResult:
        data = job.data
        job_id = workflow.info().workflow_id
        execution_id = job.execution_id or f"exec_{workflow.uuid4().hex}"
        begun = await workflow.execute_activity_method(
            BrowserActivities.begin_execution,
            BeginExecutionInput(
                job_id=job_id,
                execution_id=execution_id,
                user_id=data.user_id,
                workflow_id=data.workflow_id,
                workflow_version=data.workflow_version,
                trigger_id=data.trigger_id,
                context=data.context,
                secret_context_id=data.secret_context_id,
            ),
            **policies.db_step(job.run),
        )
        steps = RunStepsInput(
            job_id=job_id,
            execution_id=execution_id,
            user_id=data.user_id,
            workflow_id=data.workflow_id,
            workflow_version=begun.workflow_version,
            context=data.context,
            secret_context_id=data.secret_context_id,
        )
        try:
            while True:
                self._line.asking()
                ran = await workflow.execute_activity_method(
                    BrowserActivities.run_steps, steps, **policies.long_step(job.run)
                )
                raise_if_cancelled()
                if ran.started:
                    break
                await self._line.wait(lambda: job.model_copy(update={"execution_id": execution_id}))
        except BaseException as error:
            if is_cancelled_exception(error):
                await self._finish(job, execution_id, "cancelled", error="cancelled")
                raise
            if not isinstance(error, ActivityError):
                raise
            failure = _step_failure(error)
            reason = (
                f"step {failure.step_index} ({failure.action}) failed: {failure.error}"
                if failure is not None
                else _reason(error)
            )
            await self._finish(
                job,
                execution_id,
                "failed",
                error=reason,
                failed_step=failure.step_index if failure else None,
            )
            if failure is not None:
                raise ApplicationError(
                    reason,
                    failure,
                    type=STEP_FAILED,
                    non_retryable=True,
                ) from None
            raise
        await self._finish(job, execution_id, "completed")
        return WorkflowExecutionResult(
            execution_id=execution_id,
            status="completed",
            workflow_id=data.workflow_id,
            workflow_version=begun.workflow_version,
            steps_total=begun.steps_total,
            steps_succeeded=ran.steps_succeeded,
        )

    async def _finish(
        self,
        job: WorkflowExecutionInput,
        execution_id: str,
        status: str,
        *,
        error: str | None = None,
        failed_step: int | None = None,
    ) -> None:
        await workflow.execute_activity_method(
            BrowserActivities.finish_execution,
            FinishExecutionInput(
                execution_id=execution_id,
                status=status,
                error=error[:1000] if error else None,
                failed_step=failed_step,
            ),
            **policies.db_step(job.run),
        )


def _step_failure(error: ActivityError) -> StepFailure | None:
    cause = error.cause
    if not isinstance(cause, ApplicationError) or cause.type != STEP_FAILED or not cause.details:
        return None
    detail = cause.details[0]
    return StepFailure.model_validate(detail) if isinstance(detail, dict) else None


def _reason(error: ActivityError) -> str:
    cause = error.cause or error
    return str(getattr(cause, "message", None) or cause)
