"""A loopback Browserbase API v1 (providers.md 7) whose sessions are local headless Chromium.

``POST /v1/sessions`` launches a browser and answers its CDP URL as ``connectUrl``; more than
``state.max_concurrent`` running sessions answer 429, like the real plan limit. ``POST
/v1/sessions/{id}`` with ``{"status": "REQUEST_RELEASE"}`` closes it; ``GET /v1/sessions``
(``?status=RUNNING``) and ``GET /v1/sessions/{id}`` read them. A session not released within
its ``timeout`` ends by itself. ``state.faults`` injects answers per route
(``sessions.create``, ``sessions.update``); ``state.created`` and ``state.released`` count.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Faults
from integrations.browsers import BrowserSession, LocalChromium

DEFAULT_API_KEY = "browserbase-emulator-key"
DEFAULT_PROJECT_ID = "emulator-project"


@dataclass
class EmulatedSession:
    browser: BrowserSession
    project_id: str
    user_metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    status: str = "RUNNING"
    ended_at: datetime | None = None
    expiry: asyncio.Task[None] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.browser.id,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": (self.ended_at or self.created_at).isoformat(),
            "projectId": self.project_id,
            "startedAt": self.created_at.isoformat(),
            "expiresAt": self.expires_at.isoformat(),
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "status": self.status,
            "keepAlive": False,
            "region": "us-west-2",
            "connectUrl": self.browser.cdp_url if self.status == "RUNNING" else None,
            "userMetadata": self.user_metadata,
        }


@dataclass
class BrowserbaseState:
    chromium_path: str = "/usr/bin/chromium"
    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    max_concurrent: int = 3
    # The emulator's browsers live apart from any worker's, so no worker reaps them.
    profiles_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bb-emulator-"))
    faults: Faults = field(default_factory=Faults)
    sessions: dict[str, EmulatedSession] = field(default_factory=dict)
    created: int = 0
    released: int = 0
    peak_running: int = 0
    _chromium: LocalChromium | None = None

    @property
    def chromium(self) -> LocalChromium:
        if self._chromium is None:
            self._chromium = LocalChromium(self.chromium_path, self.profiles_dir)
        return self._chromium

    def running(self) -> list[EmulatedSession]:
        return [s for s in self.sessions.values() if s.status == "RUNNING"]

    async def end(self, session: EmulatedSession, status: str) -> None:
        if session.status != "RUNNING":
            return
        session.status = status
        session.ended_at = datetime.now(UTC)
        await self.chromium.release(session.browser)

    async def close(self) -> None:
        for session in self.running():
            await self.end(session, "COMPLETED")


def _error(status: int, message: str) -> Response:
    return JSONResponse({"statusCode": status, "error": message, "message": message}, status)


def create_app(state: BrowserbaseState) -> FastAPI:
    app = FastAPI(title="browserbase emulator", openapi_url=None, docs_url=None)

    def authorised(request: Request) -> bool:
        return request.headers.get("x-bb-api-key") in state.api_keys

    def faulted(route: str) -> Response | None:
        fault = state.faults.next(route)
        if fault is None:
            return None
        return JSONResponse(
            fault.body or {"error": "injected"}, fault.status, headers=fault.headers
        )

    async def expire(session: EmulatedSession, after_s: float) -> None:
        await asyncio.sleep(after_s)
        await state.end(session, "TIMED_OUT")

    @app.post("/v1/sessions")
    async def create(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Unauthorized")
        if (answer := faulted("sessions.create")) is not None:
            return answer
        body = await request.json()
        if not isinstance(body, dict):
            return _error(400, "body must be an object")
        timeout_s = int(body.get("timeout") or 300)
        if not 60 <= timeout_s <= 21600:
            return _error(400, "timeout must be within 60..21600")
        if len(state.running()) >= state.max_concurrent:
            return _error(429, "You've exceeded your max concurrent sessions limit")
        metadata = body.get("userMetadata") or {}
        browser = await state.chromium.open(str(metadata.get("jobId", "")))
        now = datetime.now(UTC)
        session = EmulatedSession(
            browser=browser,
            project_id=str(body.get("projectId") or DEFAULT_PROJECT_ID),
            user_metadata=metadata,
            created_at=now,
            expires_at=now + timedelta(seconds=timeout_s),
        )
        session.expiry = asyncio.create_task(expire(session, timeout_s))
        state.sessions[browser.id] = session
        state.created += 1
        state.peak_running = max(state.peak_running, len(state.running()))
        return JSONResponse(session.as_json(), 201)

    @app.get("/v1/sessions")
    async def listing(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Unauthorized")
        wanted = request.query_params.get("status")
        return JSONResponse(
            [s.as_json() for s in state.sessions.values() if not wanted or s.status == wanted]
        )

    @app.get("/v1/sessions/{session_id}")
    async def read(session_id: str, request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Unauthorized")
        session = state.sessions.get(session_id)
        if session is None:
            return _error(404, "Session not found")
        return JSONResponse(session.as_json())

    @app.post("/v1/sessions/{session_id}")
    async def update(session_id: str, request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Unauthorized")
        if (answer := faulted("sessions.update")) is not None:
            return answer
        session = state.sessions.get(session_id)
        if session is None:
            return _error(404, "Session not found")
        body = await request.json()
        if not isinstance(body, dict) or body.get("status") != "REQUEST_RELEASE":
            return _error(400, "status must be REQUEST_RELEASE")
        if session.status == "RUNNING":
            state.released += 1
            if session.expiry is not None:
                session.expiry.cancel()
        await state.end(session, "COMPLETED")
        return JSONResponse(session.as_json())

    return app
