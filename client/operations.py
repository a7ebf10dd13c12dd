"""Operating on jobs and queues: pause and resume a queue; cancel, retry and remove a job."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError
from temporalio.api.common.v1 import WorkflowExecution as WorkflowExecutionRef
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    Priority,
    RawValue,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from client.base import Job, QueueBase
from client.reads import CLOSED_STATE
from core import temporal
from core.catalog import job_type_name
from core.errors import InvalidJobState, JobNotFound
from core.logging import get_logger
from tracking.store import JobState, Transition, now_ms

log = get_logger("jobs.client")


class Operations(QueueBase):
    async def pause_queue(self, queue_name: str) -> None:
        """Stop dispatch of the queue to every worker; running jobs finish, nothing is lost."""
        queue = self._queue(queue_name)
        await temporal.set_queue_rate(
            self.client, self.settings.temporal_namespace, queue.value, 0.0, temporal.PAUSED_REASON
        )
        await self._set_paused_flag(queue.value, True)
        log.info("queue.paused", queue=queue.value)

    async def resume_queue(self, queue_name: str) -> None:
        queue = self._queue(queue_name)
        await temporal.set_queue_rate(
            self.client,
            self.settings.temporal_namespace,
            queue.value,
            self.catalog[queue].rate_per_second,
            "resumed",
        )
        await self._set_paused_flag(queue.value, False)
        log.info("queue.resumed", queue=queue.value)

    async def _set_paused_flag(self, queue: str, paused: bool) -> None:
        if self.tracker is None:
            return
        try:
            await self.tracker.set_paused(queue, paused)
        except (RedisError, OSError) as exc:
            # The reconciler copies the server's state back into Redis.
            self.tracker.mark_down(exc, "pause")

    async def _finish(self, job_id: str, queue: str, state: JobState, reason: str) -> None:
        if self.tracker is None:
            return
        await self.tracker.apply(
            Transition(
                job_id=job_id,
                queue=queue,
                state=state,
                event="failed",
                fields={"failed_reason": reason, "finished_at": now_ms()},
            )
        )

    async def cancel_job(self, job_id: str) -> None:
        """Cancel a waiting, delayed or running job; it ends failed with reason 'cancelled'
        (Canceled in Temporal).

        A running job's activity sees the cancel through its heartbeat and cleans up; one
        that has not finished after JOB_CANCEL_GRACE_SECONDS is terminated.
        """
        desc = await self._describe(job_id)
        if desc is None:
            raise JobNotFound(job_id)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise InvalidJobState(f"job {job_id!r} is not waiting or running")
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(job_id)
        # A job in its start delay or retry backoff ends at once: nothing runs to clean up.
        await handle.cancel()
        try:
            await asyncio.wait_for(
                handle.result(follow_runs=False), self.settings.job_cancel_grace_seconds
            )
        except TimeoutError:
            log.warning("job.cancel_grace_expired", job_id=job_id, queue=desc.task_queue)
            try:
                await handle.terminate(reason="cancelled")
            except RPCError as exc:
                # It ended (cancelled) just as the grace ran out: nothing left to terminate.
                if exc.status != RPCStatusCode.NOT_FOUND and "already completed" not in str(exc):
                    raise
        except WorkflowFailureError:
            pass  # the expected end of a cancelled job
        await self._finish(job_id, desc.task_queue, JobState.FAILED, "cancelled")
        log.info("job.cancelled", job_id=job_id, queue=desc.task_queue)

    async def retry_job(self, job_id: str) -> Job:
        """Run a failed job again under the same id, with its original input and options."""
        desc = await self._describe(job_id)
        if desc is None:
            raise JobNotFound(job_id)
        if desc.status is None or CLOSED_STATE.get(desc.status) is not JobState.FAILED:
            raise InvalidJobState(f"only failed jobs can be retried; {job_id!r} is not failed")
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(
            job_id, run_id=desc.run_id
        )
        started = None
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                started = event.workflow_execution_started_event_attributes
            break
        if started is None:
            raise InvalidJobState(f"job {job_id!r} has no start event to retry from")
        payloads = list(started.input.payloads)
        codec = self.client.data_converter.payload_codec
        if codec is not None:
            payloads = await codec.decode(payloads)
        priority = started.priority if started.HasField("priority") else None
        retried = await self.client.start_workflow(
            desc.workflow_type,
            RawValue(payloads[0]),
            id=job_id,
            task_queue=desc.task_queue,
            priority=(
                Priority(
                    priority_key=priority.priority_key or None,
                    fairness_key=priority.fairness_key or None,
                )
                if priority is not None
                else Priority.default
            ),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=desc.typed_search_attributes,
        )
        if self.tracker is not None:
            await self.tracker.apply(
                Transition(
                    job_id=job_id,
                    queue=desc.task_queue,
                    state=JobState.WAITING,
                    event="retried",
                    fields={"attempts": 0, "progress": 0, "failed_reason": "", "finished_at": ""},
                    mode="force",
                )
            )
        log.info("job.retried", job_id=job_id, queue=desc.task_queue)
        return Job(
            job_id,
            desc.task_queue,
            self._job_type(job_type_name(desc.workflow_type)),
            run_id=retried.first_execution_run_id,
        )

    async def remove_job(self, job_id: str) -> None:
        """Forget a job everywhere: a running one is terminated first."""
        desc = await self._describe(job_id)
        record = await self._record(job_id)
        if desc is None and record is None:
            raise JobNotFound(job_id)
        queue = desc.task_queue if desc is not None else (record or {}).get("queue", "")
        if desc is not None:
            if desc.status == WorkflowExecutionStatus.RUNNING:
                await self.client.get_workflow_handle(job_id).terminate(reason="removed")
            try:
                await self.client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=self.settings.temporal_namespace,
                        workflow_execution=WorkflowExecutionRef(workflow_id=job_id),
                    )
                )
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        if self.tracker is not None and queue:
            await self.tracker.remove(job_id, queue)
        if self.job_keys is not None:
            await self.job_keys.release(job_id)
        if self.inputs is not None:
            await self.inputs.remove(job_id)
        if self.enrichment is not None:
            await self.enrichment.clear(job_id)
        log.info("job.removed", job_id=job_id, queue=queue)
