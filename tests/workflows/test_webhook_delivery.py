"""The webhook delivery workflow in the real sandbox, with its activity replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.webhooks import (
    Attempt,
    DeliverWebhookInput,
    DeliverWebhookResult,
    RecordAttemptsInput,
)
from core.errors import DELIVERY_FAILED, DELIVERY_REJECTED
from core.jobs import JobType, WebhookDeliveryJobData
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import JobRun, run_options
from db.models import AttemptOutcome
from tests.workflows.conftest import assert_waits, record_history
from worker import workflow_runner
from workflows.webhook_delivery import WebhookDeliveryWorkflow

pytestmark = pytest.mark.workflow

SECRET_ID = "sec_0123456789abcdef"


def job(attempts: int | None = None) -> JobRun[WebhookDeliveryJobData]:
    # As the client sends it: the secret stored, its id in the data.
    data = WebhookDeliveryJobData.model_validate(
        {
            "userId": "u-1",
            "url": "https://hooks.example/x",
            "eventType": "lead.created",
            "payload": {"a": 1},
            "secretId": SECRET_ID,
        }
    )
    spec = DEFAULT_CATALOG[QueueName.WEBHOOKS]
    return JobRun[WebhookDeliveryJobData](
        data=data, run=run_options(spec, JobType.WEBHOOK_DELIVERY, attempts)
    )


async def run_with(
    env: WorkflowEnvironment,
    deliver,
    attempts: int | None = None,
    record=None,
    history: str | None = None,
):
    queue = f"wh-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[WebhookDeliveryWorkflow],
        activities=[deliver] if record is None else [deliver, record],
        workflow_runner=workflow_runner(),
    ):
        handle = await env.client.start_workflow(
            WebhookDeliveryWorkflow.run,
            job(attempts),
            id=f"webhook_delivery-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        try:
            return await handle.result()
        finally:
            if history is not None:
                await record_history(handle, history)


async def test_retry_after_replaces_backoff(time_env: WorkflowEnvironment):
    calls: list[datetime] = []
    seen: list[DeliverWebhookInput] = []

    @activity.defn(name="deliver_webhook")
    async def deliver(input: DeliverWebhookInput) -> DeliverWebhookResult:
        calls.append(activity.info().started_time)
        seen.append(input)
        if len(calls) == 1:
            raise ApplicationError(
                "HTTP 429", type=DELIVERY_FAILED, next_retry_delay=timedelta(seconds=90)
            )
        return DeliverWebhookResult(
            delivery_id=input.delivery_id,
            status_code=200,
            attempts=2,
            delivered_at=datetime.now(UTC),
        )

    result = await run_with(time_env, deliver, history="webhook_delivery_429_then_200")
    assert result.status_code == 200
    assert_waits(calls, [90])
    # The message id and the secret's id reach every attempt unchanged; the secret never.
    assert seen[0].delivery_id == seen[1].delivery_id
    assert seen[0].secret_id == seen[1].secret_id == SECRET_ID
    assert seen[0].secret is None
    assert seen[0].created_at == seen[1].created_at


async def test_rejection_fails_the_job_without_retry(time_env: WorkflowEnvironment):
    calls = 0

    @activity.defn(name="deliver_webhook")
    async def deliver(input: DeliverWebhookInput) -> DeliverWebhookResult:
        nonlocal calls
        calls += 1
        raise ApplicationError("HTTP 410", type=DELIVERY_REJECTED, non_retryable=True)

    with pytest.raises(WorkflowFailureError) as failure:
        await run_with(time_env, deliver)
    assert calls == 1
    assert isinstance(failure.value.cause, ActivityError)
    assert isinstance(failure.value.cause.cause, ApplicationError)
    assert failure.value.cause.cause.type == DELIVERY_REJECTED


async def test_default_five_attempts_then_failed(time_env: WorkflowEnvironment):
    calls: list[datetime] = []

    @activity.defn(name="deliver_webhook")
    async def deliver(input: DeliverWebhookInput) -> DeliverWebhookResult:
        calls.append(activity.info().started_time)
        raise ApplicationError("HTTP 503", type=DELIVERY_FAILED)

    with pytest.raises(WorkflowFailureError):
        await run_with(time_env, deliver)
    assert_waits(calls, [2, 4, 8, 16])


def attempt(number: int, outcome: AttemptOutcome, status: int | None) -> Attempt:
    return Attempt(
        attempt=number,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_ms=12.0,
        status_code=status,
        error=None if status == 200 else f"HTTP {status}",
        outcome=outcome,
    )


async def test_attempts_the_delivery_could_not_record_are_recorded_by_a_database_step(
    time_env: WorkflowEnvironment,
):
    recorded: list[RecordAttemptsInput] = []
    deliveries = 0

    @activity.defn(name="deliver_webhook")
    async def deliver(input: DeliverWebhookInput) -> DeliverWebhookResult:
        nonlocal deliveries
        deliveries += 1
        return DeliverWebhookResult(
            delivery_id=input.delivery_id,
            status_code=200,
            attempts=1,
            delivered_at=datetime.now(UTC),
            unrecorded=[attempt(1, "delivered", 200)],
        )

    @activity.defn(name="record_webhook_attempts")
    async def record(input: RecordAttemptsInput) -> None:
        recorded.append(input)
        if len(recorded) < 3:
            raise RuntimeError("database away")  # the database step retries, not the POST

    result = await run_with(
        time_env, deliver, record=record, history="webhook_delivery_recorded_afterwards"
    )
    assert result.status_code == 200 and result.unrecorded == []
    assert deliveries == 1
    assert len(recorded) == 3
    assert [a.outcome for a in recorded[-1].attempts] == ["delivered"]
    assert recorded[-1].delivery.url == "https://hooks.example/x"
    assert recorded[-1].delivery_id == recorded[0].delivery_id


async def test_a_rejection_that_could_not_be_recorded_is_recorded_then_fails(
    time_env: WorkflowEnvironment,
):
    recorded: list[RecordAttemptsInput] = []

    @activity.defn(name="deliver_webhook")
    async def deliver(input: DeliverWebhookInput) -> DeliverWebhookResult:
        raise ApplicationError(
            "HTTP 410",
            attempt(1, "failed", 410).model_dump(mode="json"),
            type=DELIVERY_REJECTED,
            non_retryable=True,
        )

    @activity.defn(name="record_webhook_attempts")
    async def record(input: RecordAttemptsInput) -> None:
        recorded.append(input)

    with pytest.raises(WorkflowFailureError) as failure:
        await run_with(time_env, deliver, record=record)
    assert isinstance(failure.value.cause, ActivityError)
    assert isinstance(failure.value.cause.cause, ApplicationError)
    assert failure.value.cause.cause.type == DELIVERY_REJECTED
    assert [(a.attempt, a.status_code) for a in recorded[0].attempts] == [(1, 410)]
