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
    if queue is QueueName.EMAIL:
        from activities.email import EmailActivities, MailboxClients, build_draft_writer
        from core.crypto import TokenCipher, token_key
        from db.email import EmailAccountStore
        from integrations.google import GmailClient, GoogleOAuth
        from integrations.microsoft import GraphMailClient, MicrosoftOAuth

        settings = deps.settings
        mailboxes = MailboxClients(
            google_oauth=GoogleOAuth(
                deps.http,
                settings.google_oauth_token_url,
                settings.google_client_id,
                settings.google_client_secret,
            ),
            gmail=GmailClient(deps.http, settings.gmail_api_base_url),
            microsoft_oauth=MicrosoftOAuth(
                deps.http,
                settings.microsoft_oauth_token_url,
                settings.microsoft_client_id,
                settings.microsoft_client_secret,
            ),
            graph=GraphMailClient(deps.http, settings.graph_api_base_url),
        )
        email = EmailActivities(
            settings,
            deps.sessions,
            EmailAccountStore(deps.sessions, TokenCipher(token_key(settings))),
            mailboxes,
            build_draft_writer(settings),
        )
        return [
            email.write_draft,
            email.place_draft,
            email.begin_sync,
            email.sync_pages,
            email.finish_sync,
        ]
    return []
