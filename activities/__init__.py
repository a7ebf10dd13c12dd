"""Side effects of jobs: one activity class per external system.

Each activity module has a ``build_*_activities(deps)`` function that the job catalog
names (``core.catalog``); a worker of a queue calls the builders of the queue's job types
once each, with the clients it built (``Dependencies``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from core.catalog import kinds_of, resolve
from core.config import Settings
from core.queues import QueueName

Activity = Callable[..., Any]
ActivityBuilder = Callable[["Dependencies"], Sequence[Activity]]


@dataclass(frozen=True)
class Dependencies:
    """Clients the worker builds once and injects into activity classes."""

    settings: Settings
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    # Cleanups of clients built by the builders; the worker awaits them at shutdown.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Work the builders ask for once the worker is connected, before it takes a job (the
    # browser activities reap the browsers a killed worker left); each gets the client.
    starters: list[Callable[[Client], Awaitable[None]]] = field(default_factory=list)


def build_activities(deps: Dependencies, queue: QueueName) -> list[Activity]:
    """The activities a worker of ``queue`` registers: each builder of its job types once."""
    references = dict.fromkeys(k.activities for k in kinds_of(queue) if k.activities)
    activities: list[Activity] = []
    for reference in references:
        assert reference is not None
        builder: ActivityBuilder = resolve(reference)
        activities.extend(builder(deps))
    return activities
