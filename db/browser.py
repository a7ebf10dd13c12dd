"""Browser workflows: saved definitions by version, and the executions of WORKFLOW_EXECUTION
jobs with their step results, extracted variables and screenshots.

A save of a name the user already has adds a version under the same workflow id; a job runs
the version that was the newest when it was added. An execution is one run of a job; each
attempt of it starts from step 1, so ``begin_attempt`` clears the step results of the one
before, and step results are written as each step ends (a failed run keeps the results of the
steps before the one that failed). Every read takes the user id: another user's workflow or
execution is not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import BrowserExecution, BrowserScreenshot, BrowserStepResult, BrowserWorkflow
from db.session import dialect_insert


@dataclass(frozen=True, slots=True)
class SavedWorkflow:
    workflow_id: str
    version: int
    user_id: str
    name: str
    steps: list[dict[str, Any]]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StepOutcome:
    index: int
    action: str
    status: str
    output: str | None
    error: str | None
    duration_ms: int
    screenshot_id: str | None = None


def _saved(row: BrowserWorkflow) -> SavedWorkflow:
    return SavedWorkflow(row.id, row.version, row.user_id, row.name, row.steps, row.created_at)


class BrowserWorkflowStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def save(self, user_id: str, name: str, steps: list[dict[str, Any]]) -> SavedWorkflow:
        """Store ``steps`` as the next version of the user's workflow ``name``."""
        for _ in range(5):
            async with self._sessionmaker() as session:
                latest = await session.execute(
                    select(BrowserWorkflow.id, func.max(BrowserWorkflow.version))
                    .where(BrowserWorkflow.user_id == user_id, BrowserWorkflow.name == name)
                    .group_by(BrowserWorkflow.id)
                )
                found = latest.first()
                workflow_id, version = (
                    (found[0], found[1] + 1) if found else (f"bw_{uuid.uuid4().hex}", 1)
                )
                row = BrowserWorkflow(
                    id=workflow_id,
                    version=version,
                    user_id=user_id,
                    name=name,
                    steps=steps,
                    created_at=utcnow(),
                )
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError:
                    # Two saves of one name at once: the loser takes the next version.
                    await session.rollback()
                    continue
                return _saved(row)
        raise RuntimeError(f"could not save a new version of workflow {name!r}")

    async def get(
        self, workflow_id: str, *, user_id: str, version: int | None = None
    ) -> SavedWorkflow | None:
        """A version of the user's workflow (the newest when ``version`` is None)."""
        query = select(BrowserWorkflow).where(
            BrowserWorkflow.id == workflow_id, BrowserWorkflow.user_id == user_id
        )
        if version is not None:
            query = query.where(BrowserWorkflow.version == version)
        async with self._sessionmaker() as session:
            row = await session.scalar(query.order_by(BrowserWorkflow.version.desc()).limit(1))
            return _saved(row) if row is not None else None


class ExecutionStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def create(
        self,
        execution_id: str,
        *,
        job_id: str,
        user_id: str,
        workflow: SavedWorkflow,
        trigger_id: str | None,
    ) -> None:
        """Record a new execution (again: nothing changes)."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                dialect_insert(session, BrowserExecution)
                .values(
                    id=execution_id,
                    job_id=job_id,
                    user_id=user_id,
                    workflow_id=workflow.workflow_id,
                    workflow_version=workflow.version,
                    trigger_id=trigger_id,
                    status="queued",
                    attempt=0,
                    steps_total=len(workflow.steps),
                    variables={},
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )

    async def begin_attempt(self, execution_id: str, attempt: int) -> None:
        """Start ``attempt`` from step 1: the step results, variables and screenshots of the
        attempt before are dropped."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                delete(BrowserStepResult).where(BrowserStepResult.execution_id == execution_id)
            )
            await session.execute(
                delete(BrowserScreenshot).where(BrowserScreenshot.execution_id == execution_id)
            )
            await session.execute(
                update(BrowserExecution)
                .where(BrowserExecution.id == execution_id)
                .values(
                    status="running",
                    attempt=attempt,
                    variables={},
                    error=None,
                    failed_step=None,
                    started_at=func.coalesce(BrowserExecution.started_at, utcnow()),
                    finished_at=None,
                )
            )

    async def record_step(
        self,
        execution_id: str,
        outcome: StepOutcome,
        *,
        variables: dict[str, Any] | None = None,
        screenshot: tuple[str, bytes] | None = None,
        user_id: str,
    ) -> None:
        """One step's outcome, with the variables as they stand after it and its PNG."""
        async with self._sessionmaker() as session, session.begin():
            if screenshot is not None:
                screenshot_id, content = screenshot
                session.add(
                    BrowserScreenshot(
                        id=screenshot_id,
                        execution_id=execution_id,
                        user_id=user_id,
                        step_index=outcome.index,
                        content=content,
                        created_at=utcnow(),
                    )
                )
            values = {
                "action": outcome.action,
                "status": outcome.status,
                "output": outcome.output,
                "error": outcome.error,
                "duration_ms": outcome.duration_ms,
                "screenshot_id": outcome.screenshot_id,
            }
            await session.execute(
                dialect_insert(session, BrowserStepResult)
                .values(execution_id=execution_id, step_index=outcome.index, **values)
                .on_conflict_do_update(index_elements=["execution_id", "step_index"], set_=values)
            )
            if variables is not None:
                await session.execute(
                    update(BrowserExecution)
                    .where(BrowserExecution.id == execution_id)
                    .values(variables=variables)
                )

    async def finish(
        self,
        execution_id: str,
        status: str,
        *,
        error: str | None = None,
        failed_step: int | None = None,
    ) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(BrowserExecution)
                .where(BrowserExecution.id == execution_id)
                .values(status=status, error=error, failed_step=failed_step, finished_at=utcnow())
            )

    async def get(
        self, execution_id: str, *, user_id: str | None = None
    ) -> tuple[BrowserExecution, Sequence[BrowserStepResult]] | None:
        """The execution and its step results in step order (None: not the user's)."""
        async with self._sessionmaker() as session:
            row = await session.get(BrowserExecution, execution_id)
            if row is None or (user_id is not None and row.user_id != user_id):
                return None
            steps = await session.scalars(
                select(BrowserStepResult)
                .where(BrowserStepResult.execution_id == execution_id)
                .order_by(BrowserStepResult.step_index)
            )
            return row, steps.all()

    async def of_job(self, job_id: str, *, user_id: str | None = None) -> list[str]:
        """The ids of a job's executions, newest first (one per run: a retry adds one)."""
        query = select(BrowserExecution.id).where(BrowserExecution.job_id == job_id)
        if user_id is not None:
            query = query.where(BrowserExecution.user_id == user_id)
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                query.order_by(BrowserExecution.created_at.desc(), BrowserExecution.id)
            )
            return list(rows.all())

    async def purge_finished(self, before: datetime, batch: int) -> int:
        """Delete up to ``batch`` executions that finished before ``before``, with their step
        results and screenshots; how many."""
        async with self._sessionmaker() as session, session.begin():
            ids = list(
                (
                    await session.scalars(
                        select(BrowserExecution.id)
                        .where(BrowserExecution.finished_at < before)
                        .limit(batch)
                    )
                ).all()
            )
            if not ids:
                return 0
            for model in (BrowserScreenshot, BrowserStepResult):
                await session.execute(delete(model).where(model.execution_id.in_(ids)))
            await session.execute(delete(BrowserExecution).where(BrowserExecution.id.in_(ids)))
            return len(ids)

    async def screenshot(self, screenshot_id: str, *, user_id: str | None = None) -> bytes | None:
        async with self._sessionmaker() as session:
            row = await session.get(BrowserScreenshot, screenshot_id)
            if row is None or (user_id is not None and row.user_id != user_id):
                return None
            return row.content
