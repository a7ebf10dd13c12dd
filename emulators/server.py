"""Run an ASGI emulator (a FastAPI app) on loopback inside the current event loop.

Every provider emulator is an app plus a ``Faults`` object that tests and the demo switch on
and off; ``serve(app)`` gives the base URL the real client is pointed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(
    app: Any, *, port: int = 0, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port unless given) and yield its base URL; apps
    with start-up work of their own (the HTTP API) pass ``lifespan="on"``."""
    port = port or _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the start-up error
                raise RuntimeError("emulator stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Fault:
    """One injected failure: answer ``status`` (with headers and JSON body) after ``delay_s``."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay_s: float = 0.0


@dataclass
class Faults:
    """Queued faults per route name, consumed in order; an empty queue means normal service."""

    queued: dict[str, deque[Fault]] = field(default_factory=dict)

    def add(self, route: str, *faults: Fault) -> None:
        self.queued.setdefault(route, deque()).extend(faults)

    def next(self, route: str) -> Fault | None:
        pending = self.queued.get(route)
        return pending.popleft() if pending else None

    def clear(self) -> None:
        self.queued.clear()
