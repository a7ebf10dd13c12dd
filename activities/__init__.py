"""Side effects of jobs: one activity class per external system, plus worker-side tracking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.queues import QueueName


@dataclass(frozen=True)
class Dependencies:
    """Clients the worker builds once and injects into activity classes."""

    settings: Settings
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    # Cleanups of clients built by build_activities; the worker awaits them at shutdown.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def build_activities(deps: Dependencies, queue: QueueName) -> list[Callable[..., Any]]:
    """The activities a worker of ``queue`` registers."""
    if queue is QueueName.WEBHOOKS:
        from activities.webhooks import WebhookActivities
        from db.webhooks import WebhookDeliveryStore
        from integrations.webhooks import WebhookSender

        sender = WebhookSender(
            deps.http, allow_private_targets=deps.settings.webhook_allow_private_targets
        )
        deps.closers.append(sender.aclose)
        webhooks = WebhookActivities(sender, WebhookDeliveryStore(deps.sessions))
        return [webhooks.deliver_webhook]
    return []
