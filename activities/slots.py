"""Activity side of the concurrency limits held in the database (``db.slots.SlotPool``): the
slots of jobs that ended without giving theirs back are reclaimed by asking Temporal."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core.logging import get_logger
from db.slots import SlotPool

log = get_logger(__name__)


async def job_is_running(client: Client, job_id: str) -> bool:
    """Whether the job still runs (an unclear answer counts as running)."""
    try:
        description = await client.get_workflow_handle(job_id).describe()
    except RPCError as exc:
        return exc.status != RPCStatusCode.NOT_FOUND
    return description.status == WorkflowExecutionStatus.RUNNING


async def reclaim_abandoned_slots(slots: SlotPool) -> bool:
    """Free the slots of jobs that ended without giving theirs back (terminated from the Web
    UI or the CLI, so no code of theirs ran); True when one was freed."""
    try:
        client = activity.client()
    except RuntimeError:  # an activity run outside a worker has no client to ask
        return False
    freed = False
    for job_id in await slots.holders():
        if not await job_is_running(client, job_id):
            await slots.release(job_id)
            log.info("slots.reclaimed", pool=slots.pool, job_id=job_id)
            freed = True
    return freed
