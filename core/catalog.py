"""The job catalog: one line per job type, tying together its queue, its data model, the
workflow that runs it and the activities that workflow needs.

Workflows and activities are named by ``"module:attribute"`` reference, not imported: the
client reads this catalog to validate and route jobs, and must not load worker code (a
producer process never imports a workflow or activity module). Workers resolve the
references when they build a queue's workers (``workflows.registry``,
``activities.build_activities``). A job type with no workflow is declared and validated,
and refused with ``JobTypeNotAvailable`` until its workflow exists.

Adding a job type: docs/adding-a-job-type.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from core.jobs import (
    AdAnalysisJobData,
    AdAutomationJobData,
    EmailDraftJobData,
    EmailSyncJobData,
    HousekeepingJobData,
    JobData,
    JobType,
    KeywordAnalysisJobData,
    LeadEnrichmentJobData,
    MemoryCleanupJobData,
    MemoryConsolidationJobData,
    SeoAuditJobData,
    VoiceCallJobData,
    WebhookDeliveryJobData,
    WorkflowExecutionJobData,
)
from core.queues import QueueName


@dataclass(frozen=True, slots=True)
class JobKind:
    """One job type: where it runs, what it takes, and what runs it."""

    job_type: JobType
    queue: QueueName
    data: type[JobData]
    # "module:Class" of the workflow; None while the job type is only declared.
    workflow: str | None = None
    # "module:function" that builds the activities the workflow calls from the worker's
    # Dependencies; job types sharing an activity class name the same function.
    activities: str | None = None

    @property
    def workflow_name(self) -> str:
        """The stable Temporal workflow type (schedules, the Web UI and the client use it)."""
        return self.job_type.value.replace("_", "-")

    @property
    def implemented(self) -> bool:
        return self.workflow is not None


_EMAIL = "activities.email:build_email_activities"
_MAINTENANCE = "activities.maintenance:build_maintenance_activities"
_SEO = "activities.seo:build_seo_activities"
_ADS = "activities.ads:build_ad_activities"
T, Q = JobType, QueueName

JOB_KINDS: dict[JobType, JobKind] = {
    kind.job_type: kind
    for kind in (
        JobKind(T.EMAIL_SYNC, Q.EMAIL, EmailSyncJobData,
                workflow="workflows.email_sync:EmailSyncWorkflow", activities=_EMAIL),
        JobKind(T.EMAIL_DRAFT, Q.EMAIL, EmailDraftJobData,
                workflow="workflows.email_draft:EmailDraftWorkflow", activities=_EMAIL),
        JobKind(T.VOICE_CALL, Q.VOICE, VoiceCallJobData,
                workflow="workflows.voice_call:VoiceCallWorkflow",
                activities="activities.voice:build_voice_activities"),
        JobKind(T.SEO_AUDIT, Q.SEO, SeoAuditJobData,
                workflow="workflows.seo_audit:SeoAuditWorkflow", activities=_SEO),
        JobKind(T.KEYWORD_ANALYSIS, Q.SEO, KeywordAnalysisJobData,
                workflow="workflows.keyword_analysis:KeywordAnalysisWorkflow", activities=_SEO),
        JobKind(T.AD_ANALYSIS, Q.ADS, AdAnalysisJobData,
                workflow="workflows.ad_analysis:AdAnalysisWorkflow", activities=_ADS),
        JobKind(T.AD_AUTOMATION, Q.ADS, AdAutomationJobData,
                workflow="workflows.ad_automation:AdAutomationWorkflow", activities=_ADS),
        JobKind(T.LEAD_ENRICHMENT, Q.ENRICHMENT, LeadEnrichmentJobData,
                workflow="workflows.lead_enrichment:LeadEnrichmentWorkflow",
                activities="activities.enrichment:build_enrichment_activities"),
        JobKind(T.WORKFLOW_EXECUTION, Q.WORKFLOW, WorkflowExecutionJobData,
                workflow="workflows.workflow_execution:WorkflowExecutionWorkflow",
                activities="activities.browser:build_browser_activities"),
        JobKind(T.MEMORY_CLEANUP, Q.MAINTENANCE, MemoryCleanupJobData,
                workflow="workflows.memory:MemoryCleanupWorkflow", activities=_MAINTENANCE),
        JobKind(T.MEMORY_CONSOLIDATION, Q.MAINTENANCE, MemoryConsolidationJobData,
                workflow="workflows.memory:MemoryConsolidationWorkflow", activities=_MAINTENANCE),
        JobKind(T.HOUSEKEEPING, Q.MAINTENANCE, HousekeepingJobData,
                workflow="workflows.memory:HousekeepingWorkflow", activities=_MAINTENANCE),
        JobKind(T.WEBHOOK_DELIVERY, Q.WEBHOOKS, WebhookDeliveryJobData,
                workflow="workflows.webhook_delivery:WebhookDeliveryWorkflow",
                activities="activities.webhooks:build_webhook_activities"),
    )
}  # fmt: skip

# Job type <-> Temporal workflow type, both ways, from the one table above.
WORKFLOW_NAMES: dict[JobType, str] = {t: kind.workflow_name for t, kind in JOB_KINDS.items()}
JOB_TYPE_OF_WORKFLOW: dict[str, JobType] = {name: t for t, name in WORKFLOW_NAMES.items()}
QUEUE_OF_JOB_TYPE: dict[JobType, QueueName] = {t: kind.queue for t, kind in JOB_KINDS.items()}


def job_type_name(workflow_type: str) -> str:
    """The job type of a workflow type (a workflow of no job type keeps its own name)."""
    job_type = JOB_TYPE_OF_WORKFLOW.get(workflow_type)
    return job_type.value if job_type is not None else workflow_type


def kinds_of(queue: QueueName) -> tuple[JobKind, ...]:
    """The job types of ``queue``, implemented or not, in catalog order."""
    return tuple(kind for kind in JOB_KINDS.values() if kind.queue is queue)


def implemented_queues() -> tuple[QueueName, ...]:
    """Queues with at least one job type a worker can run."""
    return tuple(q for q in QueueName if any(k.implemented for k in kinds_of(q)))


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names (imports the module)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"not a 'module:attribute' reference: {reference!r}")
    return getattr(importlib.import_module(module_name), attribute)
