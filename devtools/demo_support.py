"""What the ``make run`` demos share: waiting for a job's end, a stop event on SIGINT and
SIGTERM, and the process entry point."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from client.base import JobInfo
from client.queue import JobQueue
from core.config import load_settings
from core.logging import configure_logging
from tracking.store import JobState


async def wait_finished(queue: JobQueue, job_id: str, *, timeout_s: float = 600) -> JobInfo | None:
    """The job once it completed or failed; None if it is still running after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        info = await queue.get_job(job_id)
        if info.state in (JobState.COMPLETED, JobState.FAILED):
            return info
        await asyncio.sleep(0.5)
    return None


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def demo_main(demo: Callable[[], Coroutine[Any, Any, None]]) -> int:
    settings = load_settings()
    configure_logging(json_logs=settings.is_production, level=settings.log_level)
    asyncio.run(demo())
    return 0
