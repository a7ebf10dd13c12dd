"""``/v1/queues``, for operators (they count and act on every user's jobs): statistics,
pause, resume and bulk operations (``POST /v1/queues/{name}/jobs:retry``, ``:cancel``,
``:remove`` by filter, with a dry run that only counts)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Caller, OperatorDep, job_queue
from api.jobs import visibility_query
from core.catalog import JOB_TYPE_OF_WORKFLOW
from core.errors import InvalidJobState, JobNotFound

router = APIRouter(prefix="/v1/queues", tags=["queues"])

# How often the stats stream looks at the counts.
STATS_EVERY_S = 1.0
# A bulk operation touches at most this many jobs per call (call again for the rest).
MAX_BULK = 10_000


@router.get("/stats")
async def all_stats(request: Request, _operator: OperatorDep) -> dict[str, dict[str, Any]]:
    """Waiting, active, delayed, completed and failed counts and the paused flag of every
    queue (every user's jobs: operators only)."""
    return await job_queue(request).get_all_queue_stats()


@router.get("/stats/stream", response_class=StreamingResponse)
async def stats_stream(request: Request, _operator: OperatorDep) -> StreamingResponse:
    """Server-Sent Events of every queue's counts, one ``stats`` event a second while they
    change (and every 15 s when they do not), for live dashboards."""
    queue = job_queue(request)

    async def events() -> AsyncIterator[str]:
        last: str | None = None
        quiet = 0.0
        while True:
            body = json.dumps(await queue.get_all_queue_stats(), sort_keys=True)
            if body != last or quiet >= 15:
                last, quiet = body, 0.0
                yield f"event: stats\ndata: {body}\n\n"
            await asyncio.sleep(STATS_EVERY_S)
            quiet += STATS_EVERY_S

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{name}/stats")
async def queue_stats(request: Request, name: str, _operator: OperatorDep) -> dict[str, Any]:
    return await job_queue(request).get_queue_stats(name)


@router.get("/{name}/history")
async def queue_history(
    request: Request,
    name: str,
    _operator: OperatorDep,
    window: Annotated[str, Query(pattern=r"^\d{1,4}[mh]$", description="e.g. 90m, 24h")] = "24h",
) -> dict[str, Any]:
    """Per-minute completed, failed and waiting counts of the last ``window`` (at most 24h),
    oldest first, for charts."""
    amount, unit = int(window[:-1]), window[-1]
    minutes = amount * 60 if unit == "h" else amount
    if not 1 <= minutes <= 24 * 60:
        raise HTTPException(422, "window: from 1m to 24h")
    points = await job_queue(request).get_queue_history(name, minutes)
    return {"queue": name, "window": window, "minutes": points}


@router.post("/{name}/pause", status_code=202)
async def pause(request: Request, name: str, _operator: OperatorDep) -> dict[str, Any]:
    """Stop dispatching the queue's jobs to every worker; running ones finish."""
    await job_queue(request).pause_queue(name)
    return {"queue": name, "paused": True}


@router.post("/{name}/resume", status_code=202)
async def resume(request: Request, name: str, _operator: OperatorDep) -> dict[str, Any]:
    await job_queue(request).resume_queue(name)
    return {"queue": name, "paused": False}


class BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["waiting", "delayed", "active", "completed", "failed"] | None = None
    type: str | None = None
    older_than_s: int | None = Field(default=None, ge=0, description="added this long ago")
    dry_run: bool = False


class BulkResult(BaseModel):
    action: str
    matched: int
    done: int
    dry_run: bool
    skipped: dict[str, str] = Field(default_factory=dict, description="job id -> why")


Action = Literal["retry", "cancel", "remove"]


async def _bulk(
    request: Request, name: str, action: Action, body: BulkFilter, caller: Caller
) -> BulkResult:
    queue = job_queue(request)
    queue._queue(name)  # an unknown queue answers 400
    state = body.state or ("failed" if action == "retry" else None)
    query = visibility_query(caller, name, state, body.type)
    if body.older_than_s is not None:
        cutoff = datetime.now(UTC) - timedelta(seconds=body.older_than_s)
        query += f' AND StartTime < "{cutoff.isoformat()}"'
    matched = done = 0
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    async for execution in queue.client.list_workflows(query, limit=MAX_BULK):
        if execution.workflow_type not in JOB_TYPE_OF_WORKFLOW or execution.id in seen:
            continue
        seen.add(execution.id)
        try:
            info = await queue.get_job(execution.id)
        except JobNotFound:
            continue
        if body.state is not None and info.state.value != body.state:
            continue
        matched += 1
        if body.dry_run:
            continue
        try:
            if action == "retry":
                await queue.retry_job(execution.id)
            elif action == "cancel":
                await queue.cancel_job(execution.id)
            else:
                await queue.remove_job(execution.id)
            done += 1
        except (InvalidJobState, JobNotFound) as exc:
            if len(skipped) < 100:
                skipped[execution.id] = str(exc)
    return BulkResult(
        action=action, matched=matched, done=done, dry_run=body.dry_run, skipped=skipped
    )


@router.post("/{name}/jobs:retry", response_model=BulkResult)
async def bulk_retry(
    request: Request, name: str, body: BulkFilter, operator: OperatorDep
) -> BulkResult:
    """Retry the queue's failed jobs matching the filter; ``dry_run`` only counts them."""
    if body.state not in (None, "failed"):
        raise HTTPException(422, "state: only failed jobs can be retried")
    return await _bulk(request, name, "retry", body, operator)


@router.post("/{name}/jobs:cancel", response_model=BulkResult)
async def bulk_cancel(
    request: Request, name: str, body: BulkFilter, operator: OperatorDep
) -> BulkResult:
    """Cancel the queue's jobs matching the filter (waiting, delayed or active ones)."""
    return await _bulk(request, name, "cancel", body, operator)


@router.post("/{name}/jobs:remove", response_model=BulkResult)
async def bulk_remove(
    request: Request, name: str, body: BulkFilter, operator: OperatorDep
) -> BulkResult:
    """Remove the queue's jobs matching the filter everywhere."""
    return await _bulk(request, name, "remove", body, operator)
