"""Webhook delivery: one signed POST per attempt, every attempt recorded in the database.

The signing secret is read from the secret store by id (it is never in the job's input).
Recording an attempt comes after the POST, and a failure to record never fails the attempt:
a receiver that answered is never POSTed again because our own bookkeeping failed. The
unrecorded attempt travels on instead (in the result, the failure details, or the heartbeat
that the next attempt starts from) and is written by ``record_webhook_attempts``.
"""

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
from activities.bookkeeping import record_after
from activities.heartbeat import auto_heartbeat, heartbeat
from core.crypto import TokenCipher, token_key
from core.errors import (
    DELIVERY_FAILED,
    DELIVERY_REJECTED,
    ENDPOINT_DISABLED,
    RESOURCE_NOT_FOUND,
    TARGET_FORBIDDEN,
)
from core.logging import get_logger
from db.dead_letters import DeadLetterStore
from db.models import AttemptOutcome
from db.secrets import SecretNotFound, SecretStore
from db.webhooks import NewAttempt, NewDelivery, WebhookDeliveryStore
from integrations.webhooks import DeliveryOutcome, WebhookSender

log = get_logger(__name__)


class DeliverWebhookInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery_id: str
    user_id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    # The stored signing secret (db/secrets.py).
    secret_id: str | None = None
    created_at: datetime
    # Jobs enqueued before secrets were stored carried the secret itself; only those still
    # do, until they finish.
    secret: str | None = Field(default=None, repr=False)


# One delivery attempt, as the delivery log records it.
Attempt = NewAttempt


class DeliverWebhookResult(BaseModel):
    delivery_id: str
    status_code: int
    attempts: int
    delivered_at: datetime
    # The attempts the activity could not record (the database was away): the workflow
    # records them with a database step.
    unrecorded: list[Attempt] = []


class RecordAttemptsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery_id: str
    delivery: NewDelivery
    attempts: list[Attempt]


def webhook_body(input: DeliverWebhookInput) -> bytes:
    """The Standard Webhooks envelope; identical bytes on every attempt."""
    envelope = {
        "type": input.event_type,
        "timestamp": input.created_at.astimezone(UTC).isoformat(),
        "data": input.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def _delivery(input: DeliverWebhookInput) -> NewDelivery:
    return NewDelivery(
        user_id=input.user_id,
        url=input.url,
        event_type=input.event_type,
        payload=input.payload,
        secret_id=input.secret_id,
    )


class WebhookActivities:
    """Activities that talk to customers' webhook endpoints."""

    def __init__(
        self,
        sender: WebhookSender,
        store: WebhookDeliveryStore,
        secrets: SecretStore,
        endpoints: DeadLetterStore | None = None,
    ) -> None:
        self._sender = sender
        self._store = store
        self._secrets = secrets
        # Endpoints disabled after a 410 Gone (None: never checked, as in some tests).
        self._endpoints = endpoints

    async def _secret(self, input: DeliverWebhookInput) -> str:
        if input.secret_id is None:
            if input.secret is None:
                raise ApplicationError(
                    "the job has no signing secret", type=RESOURCE_NOT_FOUND, non_retryable=True
                )
            return input.secret
        try:
            return await self._secrets.get(input.secret_id, user_id=input.user_id)
        except SecretNotFound as exc:
            raise ApplicationError(str(exc), type=RESOURCE_NOT_FOUND, non_retryable=True) from None

    async def _record(self, input: DeliverWebhookInput, attempts: list[Attempt]) -> bool:
        async def write() -> None:
            await self._store.record_attempts(input.delivery_id, attempts, _delivery(input))

        return await record_after(write, what="webhook attempt", job_id=input.delivery_id)

    @activity.defn(name="deliver_webhook")
    @auto_heartbeat
    async def deliver_webhook(self, input: DeliverWebhookInput) -> DeliverWebhookResult:
        info = activity.info()
        max_attempts = info.retry_policy.maximum_attempts if info.retry_policy else 0
        # Attempts an earlier attempt could not record: write them first, or carry them on.
        unrecorded = [Attempt.model_validate(a) for a in _carried(info.heartbeat_details)]
        if unrecorded and await self._record(input, unrecorded):
            unrecorded = []
        if self._endpoints is not None and await self._endpoints.is_disabled(
            input.user_id, input.url
        ):
            # Recorded as the final attempt, so the delivery becomes a dead letter that can be
            # redelivered once the endpoint is enabled again.
            refused = Attempt(
                attempt=info.attempt,
                started_at=datetime.now(UTC),
                duration_ms=0.0,
                status_code=None,
                error="endpoint_disabled",
                outcome="failed",
            )
            recorded = await self._record(input, [*unrecorded, refused])
            raise ApplicationError(
                "endpoint_disabled: the endpoint answered 410 Gone before; enable it with "
                "enable_webhook_endpoint(url) to deliver to it again",
                # The workflow records what this attempt could not.
                *([] if recorded else [a.model_dump(mode="json") for a in [*unrecorded, refused]]),
                type=ENDPOINT_DISABLED,
                non_retryable=True,
            )
        # Read before the POST: if the store is away, no request has been sent yet.
        secret = await self._secret(input)
        started_at = datetime.now(UTC)
        try:
            outcome = await self._sender.deliver(
                url=input.url,
                msg_id=input.delivery_id,
                timestamp=int(started_at.timestamp()),
                body=webhook_body(input),
                secret=secret,
            )
        except asyncio.CancelledError:
            # The job was cancelled (or this worker is stopping): the POST was abandoned.
            reason = "worker shutdown" if activity.is_worker_shutdown() else "cancelled"
            elapsed = (datetime.now(UTC) - started_at).total_seconds() * 1000
            cancelled = Attempt(
                attempt=info.attempt,
                started_at=started_at,
                duration_ms=elapsed,
                status_code=None,
                error=reason,
                outcome="retry" if reason == "worker shutdown" else "failed",
            )
            await self._record(input, [*unrecorded, cancelled])
            raise
        final = outcome.kind != "retry" or (max_attempts > 0 and info.attempt >= max_attempts)
        this = _attempt(info.attempt, started_at, outcome, final)
        if not await self._record(input, [*unrecorded, this]):
            unrecorded.append(this)
        else:
            unrecorded = []
        if outcome.kind == "delivered":
            assert outcome.status_code is not None
            return DeliverWebhookResult(
                delivery_id=input.delivery_id,
                status_code=outcome.status_code,
                attempts=info.attempt,
                delivered_at=datetime.now(UTC),
                unrecorded=unrecorded,
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
            if outcome.status_code == 410 and self._endpoints is not None:
                endpoints = self._endpoints
                await record_after(
                    lambda: endpoints.disable_endpoint(input.user_id, input.url, "410 Gone"),
                    what="disabled endpoint",
                    job_id=input.delivery_id,
                )
            forbidden = outcome.status_code is None and "not public" in (outcome.error or "")
            raise ApplicationError(
                f"webhook rejected: {detail}",
                # The workflow records what this attempt could not.
                *[a.model_dump(mode="json") for a in unrecorded],
                type=TARGET_FORBIDDEN if forbidden else DELIVERY_REJECTED,
                non_retryable=True,
            )
        if unrecorded:
            # The next attempt starts from these details and records them first.
            heartbeat({"unrecorded": [a.model_dump(mode="json") for a in unrecorded]})
        raise ApplicationError(
            f"webhook delivery failed: {detail}",
            *[a.model_dump(mode="json") for a in unrecorded if final],
            type=DELIVERY_FAILED,
            next_retry_delay=(
                timedelta(seconds=outcome.retry_after) if outcome.retry_after else None
            ),
        )

    @activity.defn(name="record_webhook_attempts")
    async def record_attempts(self, input: RecordAttemptsInput) -> None:
        """Write attempts the delivery could not record (a database step: no POST here)."""
        await self._store.record_attempts(input.delivery_id, input.attempts, input.delivery)


def _attempt(number: int, started_at: datetime, outcome: DeliveryOutcome, final: bool) -> Attempt:
    recorded: AttemptOutcome = (
        "delivered" if outcome.kind == "delivered" else ("failed" if final else "retry")
    )
    return Attempt(
        attempt=number,
        started_at=started_at,
        duration_ms=outcome.duration_ms,
        status_code=outcome.status_code,
        error=outcome.error,
        outcome=recorded,
    )


def _carried(details: Any) -> list[Any]:
    if details and isinstance(details[0], dict):
        carried = details[0].get("unrecorded", [])
        return carried if isinstance(carried, list) else []
    return []


def build_webhook_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings = deps.settings
    sender = WebhookSender(deps.http, allow_private_targets=settings.webhook_allow_private_targets)
    deps.closers.append(sender.aclose)
    at_rest = token_key(settings)
    webhooks = WebhookActivities(
        sender,
        WebhookDeliveryStore(deps.sessions),
        SecretStore(deps.sessions, TokenCipher(at_rest), at_rest),
        DeadLetterStore(deps.sessions),
    )
    return [webhooks.deliver_webhook, webhooks.record_attempts]
