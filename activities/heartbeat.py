"""Heartbeats for activities that wait on one long call.

Temporal delivers a cancel to a running activity only in the answer to a heartbeat, and
detects a dead worker only through a missed heartbeat. The decorator heartbeats every half
heartbeat timeout while the call runs; calls that finish sooner send none at all, so quick
activities cost the server nothing extra. ``start_to_close_timeout`` stays the hard cap.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
R = TypeVar("R")

# Without a heartbeat timeout, heartbeat now and then so a cancel still arrives.
_DEFAULT_INTERVAL = timedelta(seconds=5)


async def _beat(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat()


def auto_heartbeat(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        timeout = activity.info().heartbeat_timeout
        interval = (timeout / 2 if timeout else _DEFAULT_INTERVAL).total_seconds()
        beats = asyncio.create_task(_beat(interval))
        try:
            return await fn(*args, **kwargs)
        finally:
            beats.cancel()

    return wrapper
