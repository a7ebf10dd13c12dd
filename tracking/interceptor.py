"""Worker-side job tracking: lifecycle events and statistics without extra server work.

Job state is observed where it happens instead of through extra activities, timers or
search-attribute updates, which would each cost the Temporal server time on every job:

* the activity interceptor sees each attempt start, fail and get scheduled for retry;
* the workflow interceptor sees the job finish. Like the SDK's tracing interceptor it
  acts only when the workflow is not replaying, and it only hands the event to a
  thread-safe queue; a task outside the sandbox writes it to Redis and the log. Nothing
  flows back into the workflow, so determinism is untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any, ClassVar

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from core.catalog import job_type_name
from core.failures import failure_reason
from core.logging import get_logger
from tracking.progress import Outbox, activity_tracker, install_outbox
from tracking.store import JobState, JobTracker, Transition, now_ms

log = get_logger("jobs.lifecycle")


def next_retry_delay(exc: BaseException, info: activity.Info) -> timedelta | None:
    """When Temporal will run this activity again after ``exc``, or None if it will not."""
    if isinstance(exc, asyncio.CancelledError):
        # Shutdown of this worker hands the attempt to another one; a cancel ends the job.
        return timedelta(0) if activity.is_worker_shutdown() else None
    policy = info.retry_policy
    if isinstance(exc, ApplicationError):
        if exc.non_retryable:
            return None
        error_type = exc.type or type(exc).__name__
    else:
        error_type = type(exc).__name__
    if policy is None:
        return timedelta(seconds=1)
    if error_type in (policy.non_retryable_error_types or ()):
        return None
    if policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
        return None
    if isinstance(exc, ApplicationError) and exc.next_retry_delay is not None:
        return exc.next_retry_delay
    cap = policy.maximum_interval or policy.initial_interval * 100
    initial_s, cap_s = policy.initial_interval.total_seconds(), cap.total_seconds()
    # Grow step by step and stop at the cap: late attempts would overflow a power.
    delay_s = initial_s
    for _ in range(info.attempt - 1):
        delay_s *= policy.backoff_coefficient
        if delay_s >= cap_s:
            return cap
    return timedelta(seconds=min(delay_s, cap_s))


class ActiveJobs:
    """The jobs whose activity runs in this process now (job id -> queue, attempt), and those
    whose activity ended lately: a stopping worker completes the workflow tasks that these
    endings caused before it stops polling."""

    # Endings older than this have had their workflow task long since.
    RECENT_S = 5.0

    def __init__(self) -> None:
        self.running: dict[str, tuple[str, int]] = {}
        self._ended: OrderedDict[str, float] = OrderedDict()

    def start(self, job_id: str, queue: str, attempt: int) -> None:
        self.running[job_id] = (queue, attempt)

    def end(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        now = time.monotonic()
        self._ended[job_id] = now
        self._ended.move_to_end(job_id)
        while self._ended and next(iter(self._ended.values())) < now - self.RECENT_S:
            self._ended.popitem(last=False)

    def ended_since(self, moment: float) -> set[str]:
        """Jobs whose activity ended at or after ``moment`` (time.monotonic())."""
        return {job_id for job_id, at in self._ended.items() if at >= moment}


class _ActivityTracking(ActivityInboundInterceptor):
    def __init__(
        self, nxt: ActivityInboundInterceptor, tracker: JobTracker, jobs: ActiveJobs
    ) -> None:
        super().__init__(nxt)
        self._tracker = tracker
        self._jobs = jobs

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        job_id, queue = info.workflow_id, info.task_queue
        if job_id is None:
            return await super().execute_activity(input)
        started = Transition(
            job_id=job_id,
            queue=queue,
            state=JobState.ACTIVE,
            event="started",
            # The type too: a job another job started (an auto-draft) was never added
            # through add_job, which records it.
            fields={
                "attempts": info.attempt,
                "started_at": now_ms(),
                "type": job_type_name(info.workflow_type or ""),
            },
        )
        # The Redis write runs beside the activity instead of before it: a round trip less
        # on every job's path. It is awaited before the attempt ends, so "started" is always
        # recorded before whatever follows.
        recording = asyncio.ensure_future(
            self._record(started, attempt=info.attempt, activity=info.activity_type)
        )
        self._jobs.start(job_id, queue, info.attempt)
        try:
            with activity_tracker(self._tracker, recording):
                result = await super().execute_activity(input)
            await recording
            return result
        except BaseException as exc:
            await asyncio.shield(recording)
            delay = next_retry_delay(exc, info)
            if delay is not None:
                reason = failure_reason(exc)
                retrying = Transition(
                    job_id=job_id,
                    queue=queue,
                    state=JobState.DELAYED,
                    event="retrying",
                    fields={"attempts": info.attempt, "last_error": reason},
                    due_ms=now_ms() + int(delay.total_seconds() * 1000),
                )
                await self._record(
                    retrying,
                    attempt=info.attempt,
                    retry_in_s=delay.total_seconds(),
                    reason=reason,
                )
            raise
        finally:
            self._jobs.end(job_id)

    async def _record(self, transition: Transition, **details: Any) -> None:
        """One lifecycle line in the log and the same change in Redis."""
        level = log.warning if transition.state is JobState.DELAYED else log.info
        level(
            f"job.{transition.event}", job_id=transition.job_id, queue=transition.queue, **details
        )
        await self._tracker.apply(transition)


def _workflow_now_ms() -> int:
    return int(workflow.now().timestamp() * 1000)


class _WorkflowTracking(WorkflowInboundInterceptor):
    outbox: ClassVar[Outbox]

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            result = await super().execute_workflow(input)
        except workflow.ContinueAsNewError:
            raise
        except (FailureError, asyncio.CancelledError) as exc:
            # Other exceptions fail only the workflow task, which Temporal retries.
            self._finished(JobState.FAILED, {"failed_reason": failure_reason(exc)})
            raise
        self._finished(JobState.COMPLETED, {"progress": 100})
        return result

    def _finished(self, state: JobState, fields: dict[str, str | int | float]) -> None:
        if workflow.unsafe.is_replaying():
            return
        info = workflow.info()
        self.outbox.put(
            Transition(
                job_id=info.workflow_id,
                queue=info.task_queue,
                state=state,
                event=state.value,
                fields={**fields, "finished_at": _workflow_now_ms()},
            )
        )


class JobTrackingInterceptor(Interceptor):
    """Worker interceptor that keeps Redis job records and the lifecycle log current."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker
        self.jobs = ActiveJobs()
        self._outbox: Outbox | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._outbox = Outbox(asyncio.get_running_loop())
        install_outbox(self._outbox)
        self._drain = asyncio.create_task(self._drain_outbox(), name="job-tracking-outbox")

    async def stop(self) -> None:
        """Flush what the workflows reported, then stop the writer."""
        if self._outbox is None or self._drain is None:
            return
        await self._outbox.queue.join()
        self._drain.cancel()
        try:
            await self._drain
        except asyncio.CancelledError:
            pass

    async def _drain_outbox(self) -> None:
        assert self._outbox is not None
        queue = self._outbox.queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 200:
                batch.append(queue.get_nowait())
            for t in batch:
                if t.state is None:
                    log.info("job.progress", job_id=t.job_id, queue=t.queue, **t.fields)
                elif t.state is JobState.FAILED:
                    log.warning(
                        "job.failed",
                        job_id=t.job_id,
                        queue=t.queue,
                        reason=t.fields.get("failed_reason"),
                    )
                else:
                    log.info("job.completed", job_id=t.job_id, queue=t.queue)
            try:
                await self.tracker.apply(*batch)
            finally:
                for _ in batch:
                    queue.task_done()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityTracking(next, self.tracker, self.jobs)

    async def reassert_running(self) -> None:
        """Record this process's running jobs as active again (after Redis lost them)."""
        await self.tracker.apply(
            *(
                Transition(
                    job_id=job_id,
                    queue=queue,
                    state=JobState.ACTIVE,
                    fields={"attempts": attempt},
                )
                for job_id, (queue, attempt) in list(self.jobs.running.items())
            )
        )

    def workflow_interceptor_class(
        self,
        input: WorkflowInterceptorClassInput,  # noqa: ARG002 (the SDK hook signature)
    ) -> type[WorkflowInboundInterceptor]:
        if self._outbox is None:
            raise RuntimeError("JobTrackingInterceptor.start() must run before the worker")
        outbox = self._outbox
        return type("BoundWorkflowTracking", (_WorkflowTracking,), {"outbox": outbox})
