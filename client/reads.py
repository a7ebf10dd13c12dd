"""Reading jobs: a job's state, result and failure reason, and its lifecycle events.

The Redis record answers first (fast, exact while Redis is up); Temporal answers when Redis
has no record or cannot be reached, and always supplies a finished job's result.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from client.base import JobInfo, QueueBase
from core import temporal
from core.catalog import job_type_name
from core.errors import JobNotFound
from core.failures import failure_reason
from tracking.store import JobState

CLOSED_STATE = {
    WorkflowExecutionStatus.COMPLETED: JobState.COMPLETED,
    WorkflowExecutionStatus.FAILED: JobState.FAILED,
    WorkflowExecutionStatus.CANCELED: JobState.FAILED,
    WorkflowExecutionStatus.TERMINATED: JobState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobState.FAILED,
}


def ms_to_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(float(value)) / 1000, UTC)


def state_from_description(desc: WorkflowExecutionDescription) -> JobState:
    if desc.status in CLOSED_STATE:
        return CLOSED_STATE[desc.status]
    pending = desc.raw_description.pending_activities
    if any(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in pending):
        return JobState.ACTIVE
    if any(a.attempt > 1 for a in pending):
        return JobState.DELAYED
    if desc.execution_time and desc.execution_time > datetime.now(UTC):
        return JobState.DELAYED
    return JobState.WAITING


class Reads(QueueBase):
    async def _removed(self, job_id: str) -> bool:
        if self.tracker is None or not self.tracker.reachable:
            return False
        try:
            return await self.tracker.is_removed(job_id)
        except (RedisError, OSError):
            return False

    async def get_job(self, job_id: str, *, user_id: str | None = None) -> JobInfo:
        """The job's state; with ``user_id``, only that user's jobs are visible."""
        record = await self._record(job_id)
        desc = None
        if record is None:
            # The server deletes removed jobs in the background; until it has, the
            # tombstone hides them.
            if await self._removed(job_id):
                raise JobNotFound(job_id)
            desc = await self._describe(job_id)
            if desc is None:
                raise JobNotFound(job_id)
        if record is not None:
            state = JobState(record["state"])
            queue = record.get("queue", "")
            kind = record.get("type", "")
            owner = record.get("user_id")
            info = JobInfo(
                id=job_id,
                queue=queue,
                type=kind,
                state=state,
                progress=int(record.get("progress", 0)),
                attempts_made=int(record.get("attempts", 0)),
                result=None,
                failure_reason=record.get("failed_reason") or None,
                added_at=ms_to_dt(record.get("added_at")),
                started_at=ms_to_dt(record.get("started_at")),
                finished_at=ms_to_dt(record.get("finished_at")),
                user_id=owner,
            )
        else:
            assert desc is not None
            state = state_from_description(desc)
            attrs = desc.typed_search_attributes
            owner = attrs.get(temporal.USER_ID_ATTRIBUTE)
            pending = desc.raw_description.pending_activities
            info = JobInfo(
                id=job_id,
                queue=desc.task_queue,
                type=job_type_name(desc.workflow_type),
                state=state,
                progress=100 if state is JobState.COMPLETED else 0,
                attempts_made=max((a.attempt for a in pending), default=0),
                result=None,
                failure_reason=None,
                added_at=desc.start_time,
                started_at=None,
                finished_at=desc.close_time,
                user_id=owner,
            )
        if user_id is not None and info.user_id != user_id:
            raise JobNotFound(job_id)
        if info.state in (JobState.COMPLETED, JobState.FAILED):
            result, reason = await self._outcome(job_id, info.state)
            info = replace(info, result=result, failure_reason=info.failure_reason or reason)
        return info

    async def _outcome(self, job_id: str, state: JobState) -> tuple[Any, str | None]:
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(job_id)
        try:
            return await handle.result(follow_runs=False), None
        except WorkflowFailureError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return None, failure_reason(cause)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None, None
            raise
        except Exception as exc:  # terminated or timed out runs end without a failure cause
            return None, failure_reason(exc) if state is JobState.FAILED else None

    async def get_job_events(
        self, job_id: str, after: str = "-", *, user_id: str | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """The job's lifecycle events after offset ``after``, oldest first (replayable).

        With ``user_id``, another user's job is not found (JobNotFound), as in get_job.
        """
        if user_id is not None:
            await self.get_job(job_id, user_id=user_id)
        if self.tracker is None:
            return []
        return await self.tracker.events(job_id, after)
