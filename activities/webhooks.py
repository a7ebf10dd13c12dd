"""Webhook delivery: one signed POST per attempt, every attempt recorded in the database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.heartbeat import auto_heartbeat
from core.errors import DELIVERY_FAILED, DELIVERY_REJECTED, TARGET_FORBIDDEN
from core.logging import get_logger
from db.models import AttemptOutcome
from db.webhooks import NewDelivery, WebhookDeliveryStore
from integrations.webhooks import WebhookSender

log = get_logger(__name__)


class DeliverWebhookInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery_id: str
    user_id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    secret: str = Field(repr=False)
    created_at: datetime


class DeliverWebhookResult(BaseModel):
    delivery_id: str
    status_code: int
    attempts: int
    delivered_at: datetime


def webhook_body(input: DeliverWebhookInput) -> bytes:
    """The Standard Webhooks envelope; identical bytes on every attempt."""
    envelope = {
        "type": input.event_type,
        "timestamp": input.created_at.astimezone(UTC).isoformat(),
        "data": input.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


class WebhookActivities:
    """Activities that talk to customers' webhook endpoints."""

    def __init__(self, sender: WebhookSender, store: WebhookDeliveryStore) -> None:
        self._sender = sender
        self._store = store

    @activity.defn(name="deliver_webhook")
    @auto_heartbeat
    async def deliver_webhook(self, input: DeliverWebhookInput) -> DeliverWebhookResult:
        info = activity.info()
        max_attempts = info.retry_policy.maximum_attempts if info.retry_policy else 0
        delivery = NewDelivery(
            user_id=input.user_id,
            url=input.url,
            event_type=input.event_type,
            payload=input.payload,
        )
        started_at = datetime.now(UTC)
        try:
            outcome = await self._sender.deliver(
                url=input.url,
                msg_id=input.delivery_id,
                timestamp=int(started_at.timestamp()),
                body=webhook_body(input),
                secret=input.secret,
            )
        except asyncio.CancelledError:
            # The job was cancelled (or this worker is stopping): the POST was abandoned.
            reason = "worker shutdown" if activity.is_worker_shutdown() else "cancelled"
            elapsed = (datetime.now(UTC) - started_at).total_seconds() * 1000
            await asyncio.shield(
                self._store.record_attempt(
                    input.delivery_id,
                    info.attempt,
                    started_at,
                    elapsed,
                    None,
                    reason,
                    "retry" if reason == "worker shutdown" else "failed",
                    delivery=delivery,
                )
            )
            raise
        final = outcome.kind != "retry" or (max_attempts > 0 and info.attempt >= max_attempts)
        recorded: AttemptOutcome = (
            "delivered" if outcome.kind == "delivered" else ("failed" if final else "retry")
        )
        await self._store.record_attempt(
            input.delivery_id,
            info.attempt,
            started_at,
            outcome.duration_ms,
            outcome.status_code,
            outcome.error,
            recorded,
            delivery=delivery,
        )
        if outcome.kind == "delivered":
            assert outcome.status_code is not None
            return DeliverWebhookResult(
                delivery_id=input.delivery_id,
                status_code=outcome.status_code,
                attempts=info.attempt,
                delivered_at=datetime.now(UTC),
            )
        detail = f"HTTP {outcome.status_code}" if outcome.status_code else (outcome.error or "")
        if final:
            log.warning(
                "webhook.delivery_failed",
                job_id=input.delivery_id,
                attempts=info.attempt,
                status_code=outcome.status_code,
                error=outcome.error,
            )
        if outcome.kind == "permanent":
            forbidden = outcome.status_code is None and "not public" in (outcome.error or "")
            raise ApplicationError(
                f"webhook rejected: {detail}",
                type=TARGET_FORBIDDEN if forbidden else DELIVERY_REJECTED,
                non_retryable=True,
            )
        raise ApplicationError(
            f"webhook delivery failed: {detail}",
            type=DELIVERY_FAILED,
            next_retry_delay=(
                timedelta(seconds=outcome.retry_after) if outcome.retry_after else None
            ),
        )


def build_webhook_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    sender = WebhookSender(
        deps.http, allow_private_targets=deps.settings.webhook_allow_private_targets
    )
    deps.closers.append(sender.aclose)
    webhooks = WebhookActivities(sender, WebhookDeliveryStore(deps.sessions))
    return [webhooks.deliver_webhook]
