"""Keeps the Redis job records and statistics in line with Temporal, the source of truth.

Redis can lose data (it keeps nothing on disk here) and a worker can die between finishing
a job and recording it. The reconciler, run by the workers under a Redis lock so one
process does the work, compares each queue's open jobs with Temporal visibility:

* open in Redis but closed in Temporal: recorded as completed or failed;
* running in Temporal but unknown to Redis: recorded as waiting or delayed (workers then
  re-assert the jobs they are running as active);
* after Redis lost its data (the epoch key is gone), finished jobs within the retention
  window are counted again from visibility, and the paused flags are copied from the server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from redis.exceptions import RedisError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core import temporal
from core.catalog import job_type_name
from core.logging import get_logger
from core.queues import QueueName, QueueSpec
from tracking.interceptor import JobTrackingInterceptor
from tracking.store import JobState, JobTracker, Transition

log = get_logger("jobs.reconcile")

RECONCILE_CHECK_S = 5.0
RECONCILE_FULL_S = 60.0

_FAILED_STATUSES = (
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
)


def _ms(when: datetime | None) -> int:
    return int((when or datetime.now(UTC)).timestamp() * 1000)


class Reconciler:
    LOCK_TTL_S = 60

    def __init__(
        self,
        client: Client,
        tracker: JobTracker,
        namespace: str,
        catalog: Mapping[QueueName, QueueSpec],
    ) -> None:
        self.client = client
        self.tracker = tracker
        self.namespace = namespace
        self.catalog = catalog

    async def current_epoch(self) -> str | None:
        value = await self.tracker.redis.get(self.tracker.keys.epoch)
        return None if value is None else str(value)

    async def run_once(self, queues: Iterable[str], *, force_rebuild: bool = False) -> bool:
        """Reconcile ``queues`` if this process wins the lock; True if it did the work."""
        redis = self.tracker.redis
        token = uuid.uuid4().hex
        if not await redis.set(
            self.tracker.keys.reconcile_lock, token, nx=True, ex=self.LOCK_TTL_S
        ):
            return False
        try:
            rebuild = force_rebuild or await self.current_epoch() is None
            for queue in queues:
                await self.reconcile_queue(queue, rebuild=rebuild)
            if rebuild:
                await redis.set(self.tracker.keys.epoch, uuid.uuid4().hex)
                log.info("stats.rebuilt", queues=list(queues))
            return True
        finally:
            # Release only our own lock.
            if await redis.get(self.tracker.keys.reconcile_lock) == token:
                await redis.delete(self.tracker.keys.reconcile_lock)

    async def reconcile_queue(self, queue: str, *, rebuild: bool) -> None:
        keys, redis = self.tracker.keys, self.tracker.redis
        running = {
            wf.id: wf
            async for wf in self.client.list_workflows(
                f'TaskQueue="{queue}" AND ExecutionStatus="Running"'
            )
        }
        open_ids = {str(member) for member in await redis.zrange(keys.open(queue), 0, -1)}
        fixes: list[Transition] = []

        for job_id in open_ids - running.keys():
            try:
                desc = await self.client.get_workflow_handle(job_id).describe()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                await self.tracker.remove(job_id, queue)
                continue
            if desc.status == WorkflowExecutionStatus.RUNNING:
                continue  # visibility lags behind; it is still open
            failed = desc.status in _FAILED_STATUSES
            reason = (desc.status.name.lower() if desc.status else "failed") if failed else ""
            fixes.append(
                Transition(
                    job_id=job_id,
                    queue=queue,
                    state=JobState.FAILED if failed else JobState.COMPLETED,
                    event="failed" if failed else "completed",
                    fields=(
                        {"failed_reason": reason, "finished_at": _ms(desc.close_time)}
                        if failed
                        else {"progress": 100, "finished_at": _ms(desc.close_time)}
                    ),
                )
            )

        now = datetime.now(UTC)
        for job_id in running.keys() - open_ids:
            wf = running[job_id]
            delayed = wf.execution_time is not None and wf.execution_time > now
            user_id = wf.typed_search_attributes.get(temporal.USER_ID_ATTRIBUTE)
            fields: dict[str, str | int | float] = {
                "type": job_type_name(wf.workflow_type),
                "added_at": _ms(wf.start_time),
                "attempts": 0,
                "progress": 0,
            }
            if user_id:
                fields["user_id"] = user_id
            fixes.append(
                Transition(
                    job_id=job_id,
                    queue=queue,
                    state=JobState.DELAYED if delayed else JobState.WAITING,
                    event="added",
                    fields=fields,
                    due_ms=_ms(wf.execution_time) if delayed else None,
                    mode="add",
                )
            )

        if fixes:
            await self.tracker.apply(*fixes)
            log.info("stats.reconciled", queue=queue, fixed=len(fixes))
        if rebuild:
            await self._recount_finished(queue)
        rate = await temporal.get_queue_rate(self.client, self.namespace, queue)
        await self.tracker.set_paused(queue, rate.paused)

    async def _recount_finished(self, queue: str) -> None:
        """Re-add jobs finished within the retention window to the finished sets."""
        spec = self.catalog[QueueName(queue)]
        keys, redis = self.tracker.keys, self.tracker.redis
        now = datetime.now(UTC)
        done_since = (now - spec.keep_completed_for).isoformat()
        failed_since = (now - spec.keep_failed_for).isoformat()
        completed = {
            wf.id: _ms(wf.close_time)
            async for wf in self.client.list_workflows(
                f'TaskQueue="{queue}" AND ExecutionStatus="Completed" '
                f'AND CloseTime > "{done_since}"',
                limit=spec.keep_completed_count,
            )
        }
        failed = {
            wf.id: _ms(wf.close_time)
            async for wf in self.client.list_workflows(
                f'TaskQueue="{queue}" AND ExecutionStatus IN '
                f'("Failed","Canceled","Terminated","TimedOut") AND CloseTime > "{failed_since}"'
            )
        }
        try:
            async with redis.pipeline(transaction=False) as pipe:
                if completed:
                    pipe.zadd(keys.completed(queue), completed, nx=True)
                if failed:
                    pipe.zadd(keys.failed(queue), failed, nx=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("stats.recount_failed", queue=queue, error=type(exc).__name__)


async def reconcile_loop(
    reconciler: Reconciler, interceptor: JobTrackingInterceptor, queues: list[str]
) -> None:
    """Rebuild Redis statistics when Redis lost them, and check open jobs every minute."""
    seen_epoch: str | None = None
    last_full = 0.0
    while True:
        try:
            epoch = await reconciler.current_epoch()
            due = time.monotonic() - last_full >= RECONCILE_FULL_S
            if epoch is None or due:
                if await reconciler.run_once(queues):
                    last_full = time.monotonic()
                epoch = await reconciler.current_epoch()
            if epoch is not None and epoch != seen_epoch:
                if seen_epoch is not None:
                    await interceptor.reassert_running()
                seen_epoch = epoch
        except Exception as exc:  # Redis or Temporal briefly away: try again next round
            log.warning("stats.reconcile_failed", error=type(exc).__name__)
        await asyncio.sleep(RECONCILE_CHECK_S)
