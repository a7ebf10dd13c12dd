"""A loopback Apify API v2 (providers.md 6) with one lead-enrichment actor.

``POST /v2/acts/{actor}/runs?waitForFinish=N`` takes ``{"leads": [{"id", "email"?, "phone"?,
"company"?}]}`` and starts a run that finishes after ``state.run_s`` seconds; the answer
waits for it up to N seconds, like the real API. ``GET /v2/actor-runs/{id}`` reads (and
waits for) a run, ``GET /v2/datasets/{id}/items`` pages its items: one per lead, shaped
``{"leadId", "person": {...}, "company": {...}}``, or ``{"leadId", "error"}`` for a lead
the actor could not enrich (a lead whose email starts with ``fail``, or any id in
``state.failing``). ``state.faults`` injects answers per route (``run.start``, ``run.get``,
``items``), such as 429 with ``Retry-After``; ``state.runs_started`` counts runs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Fault, Faults

DEFAULT_TOKEN = "apify-emulator-token"
DEFAULT_ACTOR_ID = "bottleneck~lead-enrichment"


@dataclass
class EmulatedRun:
    id: str
    dataset_id: str
    leads: list[dict[str, Any]]
    started_at: datetime
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = "RUNNING"
    items: list[dict[str, Any]] = field(default_factory=list)
    # Kept so the finishing task is not garbage-collected before it runs.
    task: asyncio.Task[None] | None = None


@dataclass
class ApifyState:
    tokens: set[str] = field(default_factory=lambda: {DEFAULT_TOKEN})
    actors: set[str] = field(default_factory=lambda: {DEFAULT_ACTOR_ID})
    # Seconds a run takes; 0 answers at once.
    run_s: float = 0.0
    failing: set[str] = field(default_factory=set)
    # A run that ends FAILED (bad input) or TIMED-OUT, by the lead ids it holds.
    failed_runs_for: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)
    runs: dict[str, EmulatedRun] = field(default_factory=dict)
    runs_started: int = 0
    # Requests answered 429 (so tests can see a limit slowed a job instead of failing it).
    rate_limited: int = 0
    # Lead ids of every run started, in order (each run's leads as one list).
    batches: list[list[str]] = field(default_factory=list)


def enrich(lead: dict[str, Any]) -> dict[str, Any]:
    """The emulator's deterministic enrichment of one lead."""
    lead_id = str(lead.get("id"))
    email = str(lead.get("email") or f"{lead_id}@example.com")
    local, _, domain = email.partition("@")
    company = str(lead.get("company") or domain.split(".")[0].title())
    return {
        "leadId": lead_id,
        "person": {
            "name": local.replace(".", " ").title(),
            "title": "Head of Operations",
            "email": email,
            "phone": lead.get("phone"),
            "linkedinUrl": f"https://www.linkedin.com/in/{local.replace('.', '-')}",
        },
        "company": {
            "name": company,
            "domain": domain or f"{company.lower()}.example",
            "size": "51-200",
            "industry": "Software",
        },
    }


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers=headers)


def _run_json(run: EmulatedRun, actor_id: str) -> dict[str, Any]:
    return {
        "data": {
            "id": run.id,
            "actId": actor_id,
            "status": run.status,
            "statusMessage": "Finished" if run.status == "SUCCEEDED" else run.status,
            "startedAt": run.started_at.isoformat().replace("+00:00", "Z"),
            "defaultDatasetId": run.dataset_id,
        }
    }


def create_app(state: ApifyState) -> FastAPI:
    app = FastAPI(title="Apify emulator")

    def authorised(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token in state.tokens:
            return True
        return request.query_params.get("token") in state.tokens

    async def faulted(route: str) -> Response | None:
        fault = state.faults.next(route)
        if fault is None:
            return None
        await asyncio.sleep(fault.delay_s)
        if fault.status == 429:
            state.rate_limited += 1
        body = fault.body or {"error": {"type": "rate-limit-exceeded", "message": "injected"}}
        return JSONResponse(body, fault.status, headers=fault.headers)

    async def finish(run: EmulatedRun) -> None:
        if state.run_s:
            await asyncio.sleep(state.run_s)
        ids = {str(lead.get("id")) for lead in run.leads}
        if ids & state.failed_runs_for:
            run.status = "FAILED"
        else:
            run.items = [
                {"leadId": str(lead.get("id")), "error": "no match found"}
                if str(lead.get("id")) in state.failing
                or str(lead.get("email") or "").startswith("fail")
                else enrich(lead)
                for lead in run.leads
            ]
            run.status = "SUCCEEDED"
        run.done.set()

    async def wait(run: EmulatedRun, request: Request) -> None:
        try:
            wait_s = min(float(request.query_params.get("waitForFinish", "0")), 60.0)
        except ValueError:
            wait_s = 0.0
        if wait_s > 0:
            try:
                await asyncio.wait_for(run.done.wait(), wait_s)
            except TimeoutError:
                pass

    @app.post("/v2/acts/{actor_id}/runs")
    async def start_run(actor_id: str, request: Request) -> Response:
        if answer := await faulted("run.start"):
            return answer
        if not authorised(request):
            return _error(401, "user-or-token-not-found", "User was not found or token is invalid")
        if actor_id not in state.actors:
            return _error(404, "record-not-found", "Actor was not found")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid-input", "Input is not valid JSON")
        leads = body.get("leads") if isinstance(body, dict) else None
        if not isinstance(leads, list) or not all(
            isinstance(x, dict) and x.get("id") for x in leads
        ):
            return _error(400, "invalid-input", "Input.leads must be an array of {id, ...}")
        run = EmulatedRun(
            id=uuid.uuid4().hex[:17],
            dataset_id=uuid.uuid4().hex[:17],
            leads=leads,
            started_at=datetime.now(UTC),
        )
        state.runs[run.id] = run
        state.runs_started += 1
        state.batches.append([str(lead["id"]) for lead in leads])
        run.task = asyncio.create_task(finish(run))
        await wait(run, request)
        return JSONResponse(_run_json(run, actor_id), 201)

    @app.get("/v2/actor-runs/{run_id}")
    async def get_run(run_id: str, request: Request) -> Response:
        if answer := await faulted("run.get"):
            return answer
        if not authorised(request):
            return _error(401, "user-or-token-not-found", "User was not found or token is invalid")
        run = state.runs.get(run_id)
        if run is None:
            return _error(404, "record-not-found", "Actor run was not found")
        await wait(run, request)
        return JSONResponse(_run_json(run, DEFAULT_ACTOR_ID))

    @app.get("/v2/datasets/{dataset_id}/items")
    async def items(dataset_id: str, request: Request) -> Response:
        if answer := await faulted("items"):
            return answer
        if not authorised(request):
            return _error(401, "user-or-token-not-found", "User was not found or token is invalid")
        run = next((r for r in state.runs.values() if r.dataset_id == dataset_id), None)
        if run is None:
            return _error(404, "record-not-found", "Dataset was not found")
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", "1000"))
        page = run.items[offset : offset + limit]
        headers = {
            "X-Apify-Pagination-Offset": str(offset),
            "X-Apify-Pagination-Limit": str(limit),
            "X-Apify-Pagination-Count": str(len(page)),
            "X-Apify-Pagination-Total": str(len(run.items)),
        }
        return JSONResponse(page, headers=headers)

    return app


def rate_limited(retry_after_s: int = 1) -> Fault:
    return Fault(
        status=429,
        headers={"Retry-After": str(retry_after_s)},
        body={
            "error": {"type": "rate-limit-exceeded", "message": "You have exceeded the rate limit"}
        },
    )
