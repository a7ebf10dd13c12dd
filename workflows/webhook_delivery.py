"""WEBHOOK_DELIVERY: deliver one signed webhook with the webhooks queue's retry schedule."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import (
        Attempt,
        DeliverWebhookInput,
        DeliverWebhookResult,
        RecordAttemptsInput,
        WebhookActivities,
    )
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import JobType, WebhookDeliveryJobData
    from core.runs import JobRun
    from db.webhooks import NewDelivery


@workflow.defn(name=WORKFLOW_NAMES[JobType.WEBHOOK_DELIVERY])
class WebhookDeliveryWorkflow:
    """Posts the event until the receiver answers 2xx, a permanent error, or attempts run out.

    The job id doubles as the ``webhook-id`` header, so receivers can deduplicate retries.
    Attempts the delivery could not record are written afterwards by a database step, which
    retries the write only, never the POST.
    """

    @workflow.run
    async def run(self, job: JobRun[WebhookDeliveryJobData]) -> DeliverWebhookResult:
        data = job.data
        delivery = DeliverWebhookInput(
            delivery_id=workflow.info().workflow_id,
            user_id=data.user_id,
            url=str(data.url),
            event_type=data.event_type,
            payload=data.payload,
            secret_id=data.secret_id,
            # Only jobs enqueued before secrets were stored carry one.
            secret=data.secret if data.secret_id is None else None,
            created_at=workflow.info().workflow_start_time,
        )
        try:
            result = await workflow.execute_activity_method(
                WebhookActivities.deliver_webhook, delivery, **policies.http_call(job.run)
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.details:
                await self._record(job, delivery, list(cause.details))
            raise
        if result.unrecorded:
            await self._record(job, delivery, result.unrecorded)
            result = result.model_copy(update={"unrecorded": []})
        return result

    @staticmethod
    async def _record(
        job: JobRun[WebhookDeliveryJobData], delivery: DeliverWebhookInput, attempts: list[Any]
    ) -> None:
        await workflow.execute_activity_method(
            WebhookActivities.record_attempts,
            RecordAttemptsInput(
                delivery_id=delivery.delivery_id,
                delivery=NewDelivery(
                    user_id=delivery.user_id,
                    url=delivery.url,
                    event_type=delivery.event_type,
                    payload=delivery.payload,
                    secret_id=delivery.secret_id,
                ),
                attempts=[Attempt.model_validate(a) for a in attempts],
            ),
            **policies.db_step(job.run),
        )
