"""Which workflow runs each job type."""

from core.jobs import JobType
from workflows.email_draft import EmailDraftWorkflow
from workflows.email_sync import EmailSyncWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOWS_BY_JOB_TYPE: dict[JobType, type] = {
    JobType.EMAIL_SYNC: EmailSyncWorkflow,
    JobType.EMAIL_DRAFT: EmailDraftWorkflow,
    JobType.WEBHOOK_DELIVERY: WebhookDeliveryWorkflow,
}
WORKFLOWS: list[type] = list(WORKFLOWS_BY_JOB_TYPE.values())
