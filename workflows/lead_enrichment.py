"""LEAD_ENRICHMENT: enrich a job's leads through Apify, in batches, however many there are.

The leads were stored when the job was added (``db/job_inputs.py``); the job carries only
their count, so a 100,000-lead import costs its input nothing. The workflow hands slices of
``SLICE_LEADS`` leads to ``enrich_leads`` one after another (each sends them to the actor
``batch_size`` at a time and records every lead's outcome), and continues as new every
``SLICES_PER_RUN`` slices with the counts so far, so no history grows with the import. One
slice at a time per job: a large import holds one of a worker's two activity slots, and
other users' jobs (fairness keyed by user) get the other.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.enrichment import EnrichLeadsInput, EnrichmentActivities
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import JobType, LeadEnrichmentJobData
    from core.runs import JobRun
    from tracking.progress import report_workflow_progress

SLICE_LEADS = 1000
SLICES_PER_RUN = 50


class EnrichmentCounts(BaseModel):
    position: int = 0
    enriched: int = 0
    failed: int = 0
    skipped: int = 0


class LeadEnrichmentInput(JobRun[LeadEnrichmentJobData]):
    """The job's input; a continued run also carries the counts so far."""

    resume: EnrichmentCounts | None = None


class LeadEnrichmentResult(BaseModel):
    total: int
    enriched: int
    failed: int
    skipped: int


@workflow.defn(name=WORKFLOW_NAMES[JobType.LEAD_ENRICHMENT])
class LeadEnrichmentWorkflow:
    @workflow.run
    async def run(self, job: LeadEnrichmentInput) -> LeadEnrichmentResult:
        data = job.data
        total = data.lead_count or 0
        counts = job.resume or EnrichmentCounts()
        slices = 0
        while counts.position < total:
            if slices >= SLICES_PER_RUN:
                workflow.continue_as_new(job.model_copy(update={"resume": counts}))
            done = await workflow.execute_activity_method(
                EnrichmentActivities.enrich_leads,
                EnrichLeadsInput(
                    job_id=workflow.info().workflow_id,
                    user_id=data.user_id,
                    batch_size=data.batch_size,
                    start=counts.position,
                    stop=min(counts.position + SLICE_LEADS, total),
                    total=total,
                ),
                **policies.long_step(job.run),
            )
            counts = EnrichmentCounts(
                position=done.position,
                enriched=counts.enriched + done.enriched,
                failed=counts.failed + done.failed,
                skipped=counts.skipped + done.skipped,
            )
            slices += 1
        report_workflow_progress(100)
        return LeadEnrichmentResult(
            total=total, enriched=counts.enriched, failed=counts.failed, skipped=counts.skipped
        )
