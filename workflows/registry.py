"""Which workflow runs each job type."""

from core.jobs import JobType
from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOWS_BY_JOB_TYPE: dict[JobType, type] = {
    JobType.WEBHOOK_DELIVERY: WebhookDeliveryWorkflow,
}
WORKFLOWS: list[type] = list(WORKFLOWS_BY_JOB_TYPE.values())
