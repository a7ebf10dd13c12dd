"""The HTTP API: an ASGI app at ``api.app:app`` (``create_app`` for other settings), served
by ``python -m api`` and by ``make run`` on 127.0.0.1:8000; its OpenAPI document is at
``/openapi.json``.

At start it brings the database schema to head (as workers do), connects to Temporal,
Redis and the database through a ``JobQueue``, and starts the event hub of the SSE
streams; the routes find them on ``app.state.services``. Errors of the queue API map to
HTTP: bad data or options 422 (``problems`` names each field), an unknown queue or job type
400, a job not found (or another user's) 404, an operation the job's state does not allow
409.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError

from api import dashboard, jobs, queues, schedules, vapi
from api.auth import KeyCheck
from api.events import EventHub
from client.queue import JobQueue
from core.config import Settings, get_settings
from core.crypto import TokenCipher, token_key
from core.errors import (
    InvalidArguments,
    InvalidJobData,
    InvalidJobState,
    JobNotFound,
    JobTypeNotAvailable,
    NotFound,
    UnknownJobType,
    UnknownQueue,
    WrongQueue,
)
from db.api_keys import ApiKeyStore
from db.session import create_engine, create_sessionmaker
from db.voice import CallStore

# /readyz gives each dependency this long to answer.
READY_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Services:
    settings: Settings
    queue: JobQueue
    engine: AsyncEngine
    calls: CallStore
    key_check: KeyCheck
    event_hub: EventHub

    @property
    def temporal(self) -> Client:
        return self.queue.client


def _problem(status: int, message: str, problems: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidJobData)
    @app.exception_handler(InvalidArguments)
    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        problems = getattr(exc, "problems", {})
        return _problem(422, str(exc), dict(problems))

    @app.exception_handler(UnknownQueue)
    @app.exception_handler(UnknownJobType)
    @app.exception_handler(WrongQueue)
    @app.exception_handler(JobTypeNotAvailable)
    async def unknown(_request: Request, exc: Exception) -> JSONResponse:
        return _problem(400, str(exc))

    @app.exception_handler(JobNotFound)
    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return _problem(404, str(exc))

    @app.exception_handler(InvalidJobState)
    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        return _problem(409, str(exc))

    @app.exception_handler(RPCError)
    @app.exception_handler(RedisError)
    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # Temporal or Redis failed the call: the request may succeed later.
        return _problem(503, f"a backing service failed: {type(exc).__name__}")

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = {
            ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body": str(err["msg"])
            for err in exc.errors()
        }
        return _problem(422, "the request does not validate", problems)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue = await JobQueue.connect(settings)
        engine = create_engine(settings.database_url)
        # The hub's XREAD blocks: its own connection, with a timeout longer than the block.
        hub_redis = aioredis.Redis.from_url(
            settings.effective_redis_url, decode_responses=True, socket_timeout=10
        )
        assert queue.tracker is not None
        hub = EventHub(hub_redis, queue.tracker.keys.events)
        hub.start()
        try:
            sessions = create_sessionmaker(engine)
            app.state.services = Services(
                settings=settings,
                queue=queue,
                engine=engine,
                calls=CallStore(sessions, TokenCipher(token_key(settings))),
                key_check=KeyCheck(ApiKeyStore(sessions)),
                event_hub=hub,
            )
            yield
        finally:
            await hub.stop()
            await hub_redis.aclose()
            await queue.close()
            await engine.dispose()

    app = FastAPI(
        title="Bottleneck Bots background jobs",
        version="1",
        lifespan=lifespan,
        description="Jobs, their live events and the queues. Every /v1 route but the "
        "providers' takes `Authorization: Bearer <API key>`.",
    )
    _install_error_handlers(app)
    app.include_router(jobs.router)
    app.include_router(queues.router)
    app.include_router(schedules.router)
    app.include_router(vapi.router)
    app.include_router(dashboard.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Temporal, Redis and the database each reported; 503 when one is down."""
        services: Services = request.app.state.services
        checks = {
            "temporal": _check(services.queue.client.service_client.check_health()),
            "redis": _check(_ping_redis(services.queue)),
            "database": _check(_select_one(services.engine)),
        }
        results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        ready = all(result == "ok" for result in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    return app


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_S:.0f} s"
    except Exception as exc:  # any failure of the dependency is "down", named by its type
        return f"down ({type(exc).__name__})"
    return "ok"


async def _ping_redis(queue: JobQueue) -> None:
    assert queue.tracker is not None
    await queue.tracker.redis.ping()


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # ``api.app:app`` for ASGI servers: built on first use, from the environment (importing
    # the module for ``create_app`` reads no settings).
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
