"""The webhook activity in an ActivityEnvironment, against a real loopback receiver and real
stores on SQLite: outcomes and their failure types, the secret read by owner, attempts that
could not be recorded handed on instead of POSTed again, and a cancel mid-POST."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.bookkeeping
from activities.webhooks import (
    Attempt,
    DeliverWebhookInput,
    RecordAttemptsInput,
    WebhookActivities,
)
from core.crypto import TokenCipher
from core.errors import DELIVERY_FAILED, DELIVERY_REJECTED, RESOURCE_NOT_FOUND
from db.migrate import upgrade_database
from db.secrets import SecretStore
from db.session import create_engine, create_sessionmaker
from db.webhooks import NewDelivery, WebhookDeliveryStore
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from integrations.webhooks import WebhookSender

KEY = os.urandom(32)


class UnavailableStore(WebhookDeliveryStore):
    """The delivery log while its database is away."""

    def __init__(self) -> None:
        self.tries = 0

    async def record_attempt(self, *args: Any, **kwargs: Any) -> None:
        self.tries += 1
        raise OperationalError("INSERT ...", {}, ConnectionRefusedError("database away"))


@dataclass
class Setup:
    receiver: WebhookReceiver
    store: WebhookDeliveryStore
    secrets: SecretStore
    sender: WebhookSender

    def activities(self, store: WebhookDeliveryStore | None = None) -> WebhookActivities:
        return WebhookActivities(self.sender, store or self.store, self.secrets)

    async def input(self, path: str, user: str = "u-1") -> DeliverWebhookInput:
        secret_id = await self.secrets.put(user, self.receiver.secret, needed_for=timedelta(1))
        return DeliverWebhookInput(
            delivery_id=f"wh-{os.urandom(6).hex()}",
            user_id=user,
            url=self.receiver.url(path),
            event_type="lead.created",
            payload={"lead": "L-1"},
            secret_id=secret_id,
            created_at=datetime.now(UTC),
        )


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    # No waiting between the in-place tries of a failed record.
    monkeypatch.setattr(activities.bookkeeping, "RETRY_DELAYS_S", (0.0, 0.0))
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=5) as http:
        yield Setup(
            receiver,
            WebhookDeliveryStore(sessions),
            SecretStore(sessions, TokenCipher(KEY), KEY),
            WebhookSender(http, allow_private_targets=True),
        )
    await engine.dispose()


def environment(attempt: int = 1, *, details: list[Any] | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=attempt,
        heartbeat_details=details or [],
        retry_policy=RetryPolicy(maximum_attempts=5),
    )
    return env


async def test_delivered_once_and_recorded(setup: Setup):
    input = await setup.input("/ok")
    result = await environment().run(setup.activities().deliver_webhook, input)
    assert (result.status_code, result.attempts, result.unrecorded) == (200, 1, [])
    [request] = setup.receiver.requests("/ok")
    assert request.signature_valid and request.headers["webhook-id"] == input.delivery_id
    [attempt] = await setup.store.list_attempts(input.delivery_id)
    assert (attempt.outcome, attempt.status_code) == ("delivered", 200)


@pytest.mark.parametrize("status", [404, 410])
async def test_a_rejection_is_permanent(setup: Setup, status: int):
    setup.receiver.script("/no", [ScriptedResponse(status=status)])
    input = await setup.input("/no")
    with pytest.raises(ApplicationError) as failure:
        await environment().run(setup.activities().deliver_webhook, input)
    assert failure.value.type == DELIVERY_REJECTED and failure.value.non_retryable
    assert failure.value.details == ()  # recorded: nothing to hand on
    assert len(setup.receiver.requests("/no")) == 1
    [attempt] = await setup.store.list_attempts(input.delivery_id)
    assert (attempt.outcome, attempt.status_code) == ("failed", status)


async def test_a_503_retries_and_the_last_attempt_is_final(setup: Setup):
    setup.receiver.script("/busy", [ScriptedResponse(status=503)] * 2)
    input = await setup.input("/busy")
    with pytest.raises(ApplicationError) as failure:
        await environment(attempt=1).run(setup.activities().deliver_webhook, input)
    assert failure.value.type == DELIVERY_FAILED and not failure.value.non_retryable
    with pytest.raises(ApplicationError):
        await environment(attempt=5).run(setup.activities().deliver_webhook, input)
    outcomes = [(a.attempt, a.outcome) for a in await setup.store.list_attempts(input.delivery_id)]
    assert outcomes == [(1, "retry"), (5, "failed")]


async def test_another_users_secret_is_refused_before_any_request(setup: Setup):
    input = await setup.input("/mine", user="owner")
    stolen = input.model_copy(update={"user_id": "intruder"})
    with pytest.raises(ApplicationError) as failure:
        await environment().run(setup.activities().deliver_webhook, stolen)
    assert failure.value.type == RESOURCE_NOT_FOUND and failure.value.non_retryable
    assert setup.receiver.requests("/mine") == []


async def test_a_2xx_whose_record_failed_is_handed_on_not_posted_again(setup: Setup):
    away = UnavailableStore()
    input = await setup.input("/ok")
    result = await environment().run(setup.activities(away).deliver_webhook, input)
    assert result.status_code == 200
    [unrecorded] = result.unrecorded
    assert (unrecorded.attempt, unrecorded.outcome, unrecorded.status_code) == (1, "delivered", 200)
    assert away.tries == 3  # tried in place, then handed on
    assert len(setup.receiver.requests("/ok")) == 1
    # The workflow's database step writes it later.
    await environment().run(
        setup.activities().record_attempts,
        RecordAttemptsInput(
            delivery_id=input.delivery_id,
            delivery=NewDelivery(
                user_id=input.user_id,
                url=input.url,
                event_type=input.event_type,
                payload=input.payload,
            ),
            attempts=result.unrecorded,
        ),
    )
    [attempt] = await setup.store.list_attempts(input.delivery_id)
    assert attempt.outcome == "delivered"


async def test_a_rejection_whose_record_failed_carries_it_in_the_failure(setup: Setup):
    setup.receiver.script("/gone", [ScriptedResponse(status=410)])
    input = await setup.input("/gone")
    with pytest.raises(ApplicationError) as failure:
        await environment().run(setup.activities(UnavailableStore()).deliver_webhook, input)
    assert failure.value.non_retryable
    [carried] = failure.value.details
    assert Attempt.model_validate(carried).status_code == 410
    assert len(setup.receiver.requests("/gone")) == 1


async def test_a_retry_whose_record_failed_is_recorded_by_the_next_attempt(setup: Setup):
    setup.receiver.script("/busy", [ScriptedResponse(status=503)])
    input = await setup.input("/busy")
    first = environment(attempt=1)
    beats: list[Any] = []
    first.on_heartbeat = lambda *details: beats.extend(details)
    with pytest.raises(ApplicationError):
        await first.run(setup.activities(UnavailableStore()).deliver_webhook, input)
    [carried] = beats[-1]["unrecorded"]
    assert carried["attempt"] == 1 and carried["outcome"] == "retry"
    # The next attempt starts from that heartbeat: it records attempt 1, then delivers.
    result = await environment(attempt=2, details=[beats[-1]]).run(
        setup.activities().deliver_webhook, input
    )
    assert result.unrecorded == []
    outcomes = [(a.attempt, a.outcome) for a in await setup.store.list_attempts(input.delivery_id)]
    assert outcomes == [(1, "retry"), (2, "delivered")]


async def test_a_cancel_mid_post_is_recorded_as_cancelled(setup: Setup):
    setup.receiver.script("/slow", [ScriptedResponse(delay_s=5)])
    input = await setup.input("/slow")
    env = environment()
    running = asyncio.ensure_future(env.run(setup.activities().deliver_webhook, input))
    await setup.receiver.wait_for_requests("/slow", 1, timeout=5)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    [attempt] = await setup.store.list_attempts(input.delivery_id)
    assert (attempt.outcome, attempt.error) == ("failed", "cancelled")


async def test_jobs_enqueued_before_secrets_were_stored_still_deliver(setup: Setup):
    input = await setup.input("/legacy")
    legacy = input.model_copy(update={"secret_id": None, "secret": setup.receiver.secret})
    result = await environment().run(setup.activities().deliver_webhook, legacy)
    assert result.status_code == 200
    assert setup.receiver.requests("/legacy")[0].signature_valid
