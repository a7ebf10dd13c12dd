"""``/v1/jobs``: add, read, follow (SSE), list, retry, cancel and remove jobs.

Every route takes an API key (``api/auth.py``). A ``user`` key adds jobs for its own user
only and sees only its user's jobs: another user's job id answers 404 on every route, as
if it did not exist. An ``operator`` key sees every job.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError

from api.auth import Caller, CallerDep, job_queue
from api.events import FINAL_EVENTS, stream
from client.base import JobInfo
from core.catalog import JOB_KINDS, JOB_TYPE_OF_WORKFLOW, WORKFLOW_NAMES
from core.errors import JobNotFound, UnknownJobType
from core.jobs import JobType
from core.temporal import USER_ID_ATTRIBUTE
from tracking.store import JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_PAGE = 100
# Temporal's execution status per state filter (the finer states come from Redis).
_STATUS_OF_STATE = {
    "waiting": "Running",
    "delayed": "Running",
    "active": "Running",
    "completed": "Completed",
    # A cancelled, terminated or timed-out job is failed too.
    "failed": "Failed",
    "canceled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
}
_CLOSED_FAILED = ("failed", "canceled", "terminated", "timed_out")


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay: int | None = Field(default=None, description="milliseconds before the job starts")
    priority: int | None = Field(default=None, description="1 (runs first) to 10")
    attempts: int | None = None
    job_id: str | None = Field(default=None, description="deduplicates: the same id, one job")


class NewJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions = Field(default_factory=JobOptions)


class JobView(BaseModel):
    """A job as the API shows it."""

    id: str
    queue: str
    type: str
    state: str
    progress: int
    attempts: int
    result: Any = None
    failure_reason: str | None = None
    added_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    links: dict[str, str]


class AddedJob(BaseModel):
    id: str
    queue: str
    type: str
    deduplicated: bool
    job: JobView | None = None
    links: dict[str, str]


class JobPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None


def _links(request: Request, job_id: str) -> dict[str, str]:
    settings = request.app.state.services.settings
    ui = settings.temporal_ui_url.rstrip("/")
    namespace = settings.temporal_namespace
    return {
        "self": f"/v1/jobs/{job_id}",
        "events": f"/v1/jobs/{job_id}/events",
        "temporal_ui": f"{ui}/namespaces/{namespace}/workflows/{job_id}",
    }


def view(request: Request, info: JobInfo) -> JobView:
    fields = asdict(info)
    return JobView(
        id=info.id,
        queue=info.queue,
        type=info.type,
        state=info.state.value,
        progress=info.progress,
        attempts=info.attempts_made,
        result=fields["result"],
        failure_reason=info.failure_reason,
        added_at=info.added_at,
        started_at=info.started_at,
        finished_at=info.finished_at,
        links=_links(request, info.id),
    )


async def owned_job(request: Request, caller: Caller, job_id: str) -> JobInfo:
    """The job if the caller may see it; 404 otherwise (never another user's data)."""
    try:
        return await job_queue(request).get_job(job_id, user_id=caller.owner_filter())
    except JobNotFound:
        raise HTTPException(404, f"no job with id {job_id!r}") from None


def _for_caller(caller: Caller, job_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A user key's job is its own user's: its userId is filled in, or must match."""
    if caller.is_operator:
        return data
    try:
        kind = JOB_KINDS[JobType(job_type)]
    except ValueError:
        return data  # the queue API refuses it with the list of job types
    if "user_id" not in kind.data.model_fields:
        raise HTTPException(403, f"job type {job_type!r} belongs to no user: an operator adds it")
    given = data.get("userId", data.get("user_id"))
    if given is not None and given != caller.user_id:
        raise HTTPException(403, "userId: a user key adds jobs for its own user only")
    if given is None:
        return {**data, "userId": caller.user_id}
    return data


@router.post("", status_code=202, response_model=AddedJob)
async def add_job(request: Request, body: NewJob, caller: CallerDep) -> Response:
    """Add a job: 202 with its id and Location; an existing ``job_id`` answers 200 with that
    job and ``deduplicated: true``; bad data 422 naming each field; an unknown queue or job
    type 400. Nothing is started when anything is refused."""
    queue = job_queue(request)
    data = _for_caller(caller, body.type, body.data)
    options = body.options
    job = await queue.add_job(
        body.queue,
        body.type,
        data,
        delay=options.delay,
        priority=options.priority,
        attempts=options.attempts,
        job_id=options.job_id,
    )
    links = _links(request, job.id)
    if job.deduplicated:
        existing = await owned_job(request, caller, job.id)
        added = AddedJob(
            id=job.id,
            queue=existing.queue,
            type=existing.type,
            deduplicated=True,
            job=view(request, existing),
            links=links,
        )
        return JSONResponse(added.model_dump(mode="json"), status_code=200)
    added = AddedJob(
        id=job.id, queue=job.queue, type=job.type.value, deduplicated=False, links=links
    )
    return JSONResponse(
        added.model_dump(mode="json"), status_code=202, headers={"Location": links["self"]}
    )


@router.get("/{job_id}", response_model=JobView)
async def get_job(request: Request, job_id: str, caller: CallerDep) -> JobView:
    """State, progress, attempts, result, failure reason, times and links (the job's page in
    the Temporal Web UI among them)."""
    return view(request, await owned_job(request, caller, job_id))


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def job_events(
    request: Request,
    job_id: str,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(description="an event id; Last-Event-ID wins")] = None,
) -> StreamingResponse:
    """Server-Sent Events of the job's lifecycle (added, started, progress, retrying,
    completed, failed), each with an ``id:`` that ``Last-Event-ID`` resumes after; the
    stream ends with the job. A client that comes after the end gets the history and the
    final state at once."""
    current = await owned_job(request, caller, job_id)
    queue = job_queue(request)
    offset = (last_event_id or after or "-").strip() or "-"
    if offset != "-" and not _is_offset(offset):
        raise HTTPException(422, "Last-Event-ID: not an event id of this API")
    history = await queue.get_job_events(job_id, offset)
    # A job read as ended before its log was read has its final event in the log, unless
    # the kept events ran out: then its final state closes the stream.
    ended = bool(history) and history[-1][1].get("event") in FINAL_EVENTS
    closing = None
    if current.state in (JobState.COMPLETED, JobState.FAILED) and not ended:
        closing = (
            f"event: {current.state.value}\ndata: {view(request, current).model_dump_json()}\n\n"
        )
    return StreamingResponse(
        stream(history, request.app.state.services.event_hub, job_id, offset, closing),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _is_offset(value: str) -> bool:
    ms, _, seq = value.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit())


def _cursor(token: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(token).decode() if token else None


def _token(cursor: str | None) -> bytes | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode())
    except (binascii.Error, ValueError):
        raise HTTPException(422, "cursor: not a cursor this API gave") from None


def visibility_query(
    caller: Caller, queue: str | None, state: str | None, job_type: str | None
) -> str:
    parts = []
    if queue:
        parts.append(f'TaskQueue = "{_quoted(queue)}"')
    if job_type:
        try:
            parts.append(f'WorkflowType = "{WORKFLOW_NAMES[JobType(job_type)]}"')
        except ValueError:
            raise UnknownJobType(job_type, [t.value for t in JobType]) from None
    if state == "failed":
        either = " OR ".join(f'ExecutionStatus = "{_STATUS_OF_STATE[s]}"' for s in _CLOSED_FAILED)
        parts.append(f"({either})")
    elif state:
        parts.append(f'ExecutionStatus = "{_STATUS_OF_STATE[state]}"')
    owner = caller.owner_filter()
    if owner is not None:
        parts.append(f'{USER_ID_ATTRIBUTE.name} = "{_quoted(owner)}"')
    return " AND ".join(parts)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@router.get("", response_model=JobPage)
async def list_jobs(
    request: Request,
    caller: CallerDep,
    queue: str | None = None,
    state: Literal["waiting", "delayed", "active", "completed", "failed"] | None = None,
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: str | None = None,
) -> JobPage:
    """The caller's jobs, newest first, ``limit`` at a time; ``next_cursor`` fetches more."""
    jobs_queue = job_queue(request)
    if queue is not None:
        jobs_queue._queue(queue)  # an unknown queue answers 400
    query = visibility_query(caller, queue, state, type)
    listing = jobs_queue.client.list_workflows(
        query or None, page_size=limit, next_page_token=_token(cursor)
    )
    # One page of visibility per call, so the cursor never skips a job; a page can hold
    # fewer than ``limit`` jobs when a finer state (waiting, delayed, active) filters it.
    try:
        await listing.fetch_next_page()
    except RPCError:
        if cursor:  # a cursor that is not one of ours (Temporal refuses the page token)
            raise HTTPException(422, "cursor: not a cursor this API gave") from None
        raise
    found: list[JobView] = []
    seen: set[str] = set()
    for execution in listing.current_page or []:
        if execution.workflow_type not in JOB_TYPE_OF_WORKFLOW or execution.id in seen:
            continue  # not a job (a test's or the system's own), or an earlier run of one
        seen.add(execution.id)
        try:
            info = await jobs_queue.get_job(execution.id, user_id=caller.owner_filter())
        except JobNotFound:
            continue  # removed meanwhile
        if state is None or info.state.value == state:
            found.append(view(request, info))
    return JobPage(jobs=found, next_cursor=_cursor(listing.next_page_token))


@router.post("/{job_id}/retry", status_code=202, response_model=AddedJob)
async def retry_job(request: Request, job_id: str, caller: CallerDep) -> AddedJob:
    """Run a failed job again under the same id (409 when it is not failed)."""
    await owned_job(request, caller, job_id)
    job = await job_queue(request).retry_job(job_id)
    return AddedJob(
        id=job.id,
        queue=job.queue,
        type=job.type.value,
        deduplicated=False,
        links=_links(request, job.id),
    )


@router.post("/{job_id}/cancel", status_code=202, response_model=JobView)
async def cancel_job(request: Request, job_id: str, caller: CallerDep) -> JobView:
    """Cancel a waiting, delayed or active job (409 when it has ended)."""
    await owned_job(request, caller, job_id)
    await job_queue(request).cancel_job(job_id)
    return view(request, await owned_job(request, caller, job_id))


@router.delete("/{job_id}", status_code=204)
async def remove_job(request: Request, job_id: str, caller: CallerDep) -> Response:
    """Forget a job everywhere (a running one is terminated first)."""
    await owned_job(request, caller, job_id)
    await job_queue(request).remove_job(job_id)
    return Response(status_code=204)
