"""EMAIL_DRAFT: write a reply with Claude, store it, and create it in the user's mailbox."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities, PlaceDraftInput, WriteDraftInput
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import EmailDraftJobData, JobType
    from core.runs import JobRun
    from tracking.progress import report_workflow_progress


class EmailDraftResult(BaseModel):
    model: str
    tone: str
    input_tokens: int
    output_tokens: int
    provider: str | None = None
    provider_draft_id: str | None = None


@workflow.defn(name=WORKFLOW_NAMES[JobType.EMAIL_DRAFT])
class EmailDraftWorkflow:
    """Two steps, each idempotent on the job id: the model is asked once per job, and the
    mailbox gets one draft however often a step is retried. The tone and settings travel in
    the job's input, so every retry uses the same ones (US-002)."""

    @workflow.run
    async def run(self, job: JobRun[EmailDraftJobData]) -> EmailDraftResult:
        data, job_id = job.data, workflow.info().workflow_id
        written = await workflow.execute_activity_method(
            EmailActivities.write_draft,
            WriteDraftInput(
                job_id=job_id,
                user_id=data.user_id,
                thread_id=data.thread_id,
                context=data.context,
                tone=data.tone,
                account_id=data.account_id,
            ),
            **policies.llm_call(job.run),
        )
        result = EmailDraftResult(
            model=written.model,
            tone=data.tone,
            input_tokens=written.input_tokens,
            output_tokens=written.output_tokens,
        )
        if data.account_id is None:
            return result
        report_workflow_progress(60)
        placed = await workflow.execute_activity_method(
            EmailActivities.place_draft,
            PlaceDraftInput(
                job_id=job_id,
                account_id=data.account_id,
                thread_id=data.thread_id,
                reply_to_message_id=data.reply_to_message_id,
                body=written.body,
            ),
            **policies.http_call(job.run),
        )
        return result.model_copy(
            update={"provider": placed.provider, "provider_draft_id": placed.provider_draft_id}
        )
