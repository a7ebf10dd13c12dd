"""Browser workflows: saving step lists, and reading a WORKFLOW_EXECUTION run's results
(US-006, AC-005)."""

from __future__ import annotations

from typing import Any

from client.base import QueueBase
from core.browser import MAX_NAME_LENGTH, InvalidSteps, check_for_job, dump_steps, parse_steps
from core.errors import InvalidArguments, InvalidJobData, NotFound
from core.jobs import JobType, WorkflowExecutionJobData
from db.browser import BrowserWorkflowStore, ExecutionStore


def _execution_id_problem(execution_id: object) -> dict[str, str]:
    if not isinstance(execution_id, str) or not execution_id.strip():
        return {"execution_id": "must be a non-empty string"}
    return {}


class BrowserWorkflows(QueueBase):
    def _stores(self) -> tuple[BrowserWorkflowStore, ExecutionStore]:
        if self.browser_workflows is None or self.executions is None:
            raise RuntimeError("this JobQueue has no database for browser workflows")
        return self.browser_workflows, self.executions

    async def save_browser_workflow(self, user_id: str, name: str, steps: list[Any]) -> str:
        """Store ``steps`` as a new version of the user's workflow ``name``; its workflow id
        (the same for every version of the name). Raises InvalidArguments naming each bad
        step argument (``steps[2].selector``); nothing is stored then."""
        problems: dict[str, str] = {}
        if not isinstance(user_id, str) or not user_id.strip():
            problems["user_id"] = "must be a non-empty string"
        if not isinstance(name, str) or not name.strip():
            problems["name"] = "must be a non-empty string"
        elif len(name) > MAX_NAME_LENGTH:
            problems["name"] = f"must be at most {MAX_NAME_LENGTH} characters"
        try:
            parsed = parse_steps(steps)
        except InvalidSteps as exc:
            problems.update(exc.problems)
        if problems:
            raise InvalidArguments("save_browser_workflow", problems)
        workflows, _ = self._stores()
        saved = await workflows.save(user_id.strip(), name.strip(), dump_steps(parsed))
        return saved.workflow_id

    async def get_browser_workflow(
        self, workflow_id: str, *, user_id: str, version: int | None = None
    ) -> dict[str, Any] | None:
        """A saved version (the newest by default): id, version, name, steps; None when the
        user has none of that id."""
        workflows, _ = self._stores()
        saved = await workflows.get(workflow_id, user_id=user_id, version=version)
        if saved is None:
            return None
        return {
            "workflow_id": saved.workflow_id,
            "version": saved.version,
            "name": saved.name,
            "steps": saved.steps,
            "created_at": saved.created_at,
        }

    async def _pin_browser_workflow(
        self, data: WorkflowExecutionJobData
    ) -> WorkflowExecutionJobData:
        """The job's data with the version it runs pinned, after checking that the user has
        that workflow and that the job's context fills every placeholder."""
        workflows, _ = self._stores()
        saved = await workflows.get(
            data.workflow_id, user_id=data.user_id, version=data.workflow_version
        )
        job_type = JobType.WORKFLOW_EXECUTION.value
        if saved is None:
            field = "workflow_version" if data.workflow_version is not None else "workflow_id"
            raise InvalidJobData(job_type, {field: "names no saved workflow of this user"})
        try:
            values = {**(data.secret_context or {}), **data.context}
            check_for_job(parse_steps(saved.steps), values)
        except InvalidSteps as exc:
            raise InvalidJobData(job_type, exc.problems) from None
        return data.model_copy(update={"workflow_version": saved.version})

    async def get_workflow_execution(
        self, execution_id: str, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """A run of a browser workflow: ``status`` (queued, running, completed, failed,
        cancelled), ``steps`` (index, action, status, output, error, duration_ms,
        screenshot), ``variables`` (what extract steps found), the failed step and error.
        With ``user_id``, another user's execution is not found (NotFound)."""
        problems = _execution_id_problem(execution_id)
        if problems:
            raise InvalidArguments("get_workflow_execution", problems)
        _, executions = self._stores()
        found = await executions.get(execution_id, user_id=user_id)
        if found is None:
            raise NotFound("workflow execution", execution_id)
        row, steps = found
        return {
            "execution_id": row.id,
            "job_id": row.job_id,
            "user_id": row.user_id,
            "workflow_id": row.workflow_id,
            "workflow_version": row.workflow_version,
            "trigger_id": row.trigger_id,
            "status": row.status,
            "attempt": row.attempt,
            "steps_total": row.steps_total,
            "steps": [
                {
                    "index": step.step_index,
                    "action": step.action,
                    "status": step.status,
                    "output": step.output,
                    "error": step.error,
                    "duration_ms": step.duration_ms,
                    "screenshot": step.screenshot_id,
                }
                for step in steps
            ],
            "variables": dict(row.variables or {}),
            "error": row.error,
            "failed_step": row.failed_step,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
        }

    async def list_workflow_executions(
        self, job_id: str, *, user_id: str | None = None
    ) -> list[str]:
        """The execution ids of a WORKFLOW_EXECUTION job, newest first: one per run, so a
        job retried by hand has one per try."""
        _, executions = self._stores()
        return await executions.of_job(job_id, user_id=user_id)

    async def get_screenshot(self, screenshot_id: str, *, user_id: str | None = None) -> bytes:
        """The PNG a screenshot step stored (its id is the step result's ``screenshot``)."""
        _, executions = self._stores()
        png = await executions.screenshot(screenshot_id, user_id=user_id)
        if png is None:
            raise NotFound("screenshot", screenshot_id)
        return png
