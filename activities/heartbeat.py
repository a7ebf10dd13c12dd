"""Heartbeats for activities that wait on long calls.

Temporal delivers a cancel to a running activity only in the answer to a heartbeat, and
detects a dead worker only through a missed heartbeat. ``auto_heartbeat`` heartbeats every
half heartbeat timeout while the activity runs; activities that finish sooner send none, so
quick activities cost the server nothing extra. ``start_to_close_timeout`` stays the hard cap.

An activity that records a resume point calls ``heartbeat(*details)``: the background beats
then repeat those details instead of clearing them, so a retried attempt resumes there.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
R = TypeVar("R")

# Without a heartbeat timeout, heartbeat now and then so a cancel still arrives (the SDK
# sends the first beat at once and throttles the later ones).
_DEFAULT_INTERVAL = timedelta(seconds=2)

# The latest details of the running activity (one mutable cell per activity attempt).
_details: contextvars.ContextVar[list[tuple[Any, ...]]] = contextvars.ContextVar(
    "heartbeat_details"
)


def heartbeat(*details: Any) -> None:
    """Heartbeat with ``details`` and keep them for the automatic beats that follow."""
    cell = _details.get(None)
    if cell is not None:
        cell[0] = details
    activity.heartbeat(*details)


async def _beat(interval: float, cell: list[tuple[Any, ...]]) -> None:
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat(*cell[0])


def auto_heartbeat(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        info = activity.info()
        timeout = info.heartbeat_timeout
        interval = (timeout / 2 if timeout else _DEFAULT_INTERVAL).total_seconds()
        # Start from the previous attempt's details, so an early beat keeps the resume point.
        cell: list[tuple[Any, ...]] = [tuple(info.heartbeat_details)]
        token = _details.set(cell)
        beats = asyncio.create_task(_beat(interval, cell))
        try:
            return await fn(*args, **kwargs)
        finally:
            beats.cancel()
            _details.reset(token)

    # Read by tests that pair each activity with a heartbeating preset (workflows.policies).
    wrapper.__heartbeats__ = True  # type: ignore[attr-defined]
    return wrapper


def heartbeats(fn: object) -> bool:
    """Whether an activity heartbeats (wears ``auto_heartbeat``)."""
    return bool(getattr(fn, "__heartbeats__", False))
