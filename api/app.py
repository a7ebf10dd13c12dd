"""The ASGI app (``create_app``), served by ``python -m api`` and by ``make run``.

At start it brings the database schema to head (as workers do) and connects to Temporal;
the routes find both on ``app.state.services``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api import vapi
from core import temporal
from core.config import Settings, get_settings
from core.crypto import TokenCipher, token_key
from db.schema import ensure_schema
from db.session import create_engine, create_sessionmaker
from db.voice import CallStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    temporal: Client
    engine: AsyncEngine
    calls: CallStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        try:
            await ensure_schema(engine, settings.database_url, migrate=settings.db_migrate_on_start)
            client = await temporal.connect(settings)
            calls = CallStore(create_sessionmaker(engine), TokenCipher(token_key(settings)))
            app.state.services = Services(settings, client, engine, calls)
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="Bottleneck Bots background jobs", lifespan=lifespan)
    app.include_router(vapi.router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
