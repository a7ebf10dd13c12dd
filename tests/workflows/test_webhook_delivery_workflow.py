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

from activities.webhooks import DeliverWebhookInput, DeliverWebhookResult
from core.errors import DELIVERY_FAILED, DELIVERY_REJECTED
from core.jobs import JobType, WebhookDeliveryJobData
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import JobRun, run_options
from worker import workflow_runner
from workflows.webhook_delivery import WebhookDeliveryWorkflow

pytestmark = pytest.mark.workflow

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def job(attempts: int | None = None) -> JobRun[WebhookDeliveryJobData]:
    data = WebhookDeliveryJobData.model_validate(
        {
            "userId": "u-1",
            "url": "https://hooks.example/x",
            "eventType": "lead.created",
            "payload": {"a": 1},
            "secret": SECRET,
        }
    )
    spec = DEFAULT_CATALOG[QueueName.WEBHOOKS]
    return JobRun[WebhookDeliveryJobData](
        data=data, run=run_options(spec, JobType.WEBHOOK_DELIVERY, attempts)
    )


async def run_with(env: WorkflowEnvironment, deliver, attempts: int | None = None):
    queue = f"wh-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[WebhookDeliveryWorkflow],
        activities=[deliver],
        workflow_runner=workflow_runner(strict=True),
    ):
        return await env.client.execute_workflow(
            WebhookDeliveryWorkflow.run,
            job(attempts),
            id=f"webhook_delivery-{uuid.uuid4().hex}",
            task_queue=queue,
        )


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

    result = await run_with(time_env, deliver)
    assert result.status_code == 200
    assert (calls[1] - calls[0]).total_seconds() == pytest.approx(90, abs=0.05)
    # The message id and the secret reach every attempt unchanged.
    assert seen[0].delivery_id == seen[1].delivery_id
    assert seen[0].secret == seen[1].secret == SECRET
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
    gaps = [(b - a).total_seconds() for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps == pytest.approx([2, 4, 8, 16], abs=0.05)
