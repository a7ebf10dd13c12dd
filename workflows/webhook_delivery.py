"""WEBHOOK_DELIVERY: deliver one signed webhook with the webhooks queue's retry schedule."""

from __future__ import annotations

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import DeliverWebhookInput, DeliverWebhookResult, WebhookActivities
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import JobType, WebhookDeliveryJobData
    from core.runs import JobRun


@workflow.defn(name=WORKFLOW_NAMES[JobType.WEBHOOK_DELIVERY])
class WebhookDeliveryWorkflow:
    """Posts the event until the receiver answers 2xx, a permanent error, or attempts run out.

    The job id doubles as the ``webhook-id`` header, so receivers can deduplicate retries.
    """

    @workflow.run
    async def run(self, job: JobRun[WebhookDeliveryJobData]) -> DeliverWebhookResult:
        data = job.data
        return await workflow.execute_activity_method(
            WebhookActivities.deliver_webhook,
            DeliverWebhookInput(
                delivery_id=workflow.info().workflow_id,
                user_id=data.user_id,
                url=str(data.url),
                event_type=data.event_type,
                payload=data.payload,
                secret=data.secret,
                created_at=workflow.info().workflow_start_time,
            ),
            **policies.http_call(job.run),
        )
