"""Job progress (FR-050/051), reported from activity code and from workflow code.

Activities write progress straight to the Redis store of the worker's tracking interceptor.
Workflows must not do I/O, so ``report_workflow_progress`` only hands the change to the
process's outbox, a thread-safe queue that the interceptor drains into Redis outside the
sandbox; it is skipped while replaying, so each step is reported once, when it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity, workflow

from core.logging import get_logger
from tracking.store import JobTracker, Transition

log = get_logger("jobs.lifecycle")

# The tracker of the activity running in this context (set by the tracking interceptor),
# with the write of its "started" event, which progress must not overtake.
_activity_tracker: contextvars.ContextVar[tuple[JobTracker, asyncio.Future[Any]] | None] = (
    contextvars.ContextVar("job_tracker", default=None)
)


@contextlib.contextmanager
def activity_tracker(tracker: JobTracker, started: asyncio.Future[Any]) -> Iterator[None]:
    """Make ``tracker`` the one report_progress writes to while an activity runs."""
    token = _activity_tracker.set((tracker, started))
    try:
        yield
    finally:
        _activity_tracker.reset(token)


@dataclass
class Outbox:
    """Transitions reported by workflow code, waiting to be written to Redis."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Transition] = field(default_factory=asyncio.Queue)

    def put(self, transition: Transition) -> None:
        # Called from workflow activation threads.
        self.loop.call_soon_threadsafe(self.queue.put_nowait, transition)


# The outbox of this process's tracking interceptor (one per worker process).
_outbox: Outbox | None = None


def install_outbox(outbox: Outbox | None) -> None:
    global _outbox
    _outbox = outbox


def _check(percent: int) -> None:
    if not 0 <= percent <= 100:
        raise ValueError(f"progress must be within 0..100, got {percent}")


def _progress(job_id: str, queue: str, percent: int, step: int | None = None) -> Transition:
    fields = {"progress": percent} if step is None else {"progress": percent, "step": step}
    return Transition(job_id=job_id, queue=queue, state=None, event="progress", fields=fields)


async def report_progress(percent: int, *, step: int | None = None) -> None:
    """Record a running activity's job progress (0..100) and append a progress event; a job
    made of steps names the step that just ended (``step``, from 0)."""
    _check(percent)
    current = _activity_tracker.get()
    info = activity.info()
    if current is None or info.workflow_id is None:
        return
    tracker, started = current
    await asyncio.shield(started)
    log.info("job.progress", job_id=info.workflow_id, queue=info.task_queue, progress=percent)
    await tracker.apply(_progress(info.workflow_id, info.task_queue, percent, step))


def report_workflow_progress(percent: int) -> None:
    """For workflow code: record the job's progress (0..100) between activities."""
    _check(percent)
    outbox = _outbox
    if outbox is None or workflow.unsafe.is_replaying():
        return
    info = workflow.info()
    outbox.put(_progress(info.workflow_id, info.task_queue, percent))
