"""EMAIL_SYNC: bring a connected mailbox up to date, incrementally when a cursor allows."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.email import (
        BeginSyncInput,
        EmailActivities,
        FinishSyncInput,
        StoredMessage,
        SyncPagesInput,
    )
    from core.catalog import WORKFLOW_NAMES
    from core.failures import failure_reason
    from core.jobs import EmailDraftJobData, EmailSyncJobData, JobType
    from core.runs import JobRun
    from tracking.progress import report_workflow_progress
    from workflows.email_draft import EmailDraftWorkflow

# Continue as new after this many page batches, so a huge mailbox never grows one history
# without bound (each batch is up to activities.email.PAGES_PER_CALL pages).
BATCHES_PER_RUN = 10


class SyncState(BaseModel):
    """What a continued run carries over."""

    full: bool
    cursor: str | None
    page_token: str | None = None
    fetched: int = 0
    stored: int = 0
    skipped: int = 0
    drafts_started: int = 0
    sync_job_id: str
    first_page_done: bool = False
    # Auto-drafts started since the last activity call, for it to record (message -> job).
    drafted: dict[str, str] = {}


class EmailSyncInput(JobRun[EmailSyncJobData]):
    """The job's input; a continued run also carries its state (one argument, so the SDK
    decodes it with its type)."""

    resume: SyncState | None = None


class EmailSyncResult(BaseModel):
    fetched: int
    stored: int
    skipped: int
    full_sync: bool
    cursor: str | None
    drafts_started: int


@workflow.defn(name=WORKFLOW_NAMES[JobType.EMAIL_SYNC])
class EmailSyncWorkflow:
    """Records the run, syncs page by page (resuming from the heartbeated page token and
    counts on a retry), falls back to a full sync when the provider forgot the cursor, starts
    one draft job per stored high-importance message not drafted yet, and closes the run's
    history row either way."""

    @workflow.run
    async def run(self, job: EmailSyncInput) -> EmailSyncResult:
        data, state = job.data, job.resume
        if state is None:
            report_workflow_progress(5)
            plan = await workflow.execute_activity_method(
                EmailActivities.begin_sync,
                BeginSyncInput(
                    job_id=workflow.info().workflow_id,
                    user_id=data.user_id,
                    account_id=data.account_id,
                    provider=data.email_provider,
                ),
                **policies.http_call(job.run),
            )
            report_workflow_progress(10)
            state = SyncState(
                full=plan.cursor is None,
                cursor=plan.cursor,
                sync_job_id=workflow.info().workflow_id,
            )
        try:
            for _ in range(BATCHES_PER_RUN):
                page = await workflow.execute_activity_method(
                    EmailActivities.sync_pages,
                    SyncPagesInput(
                        job_id=state.sync_job_id,
                        account_id=data.account_id,
                        provider=data.email_provider,
                        cursor=state.cursor,
                        full=state.full,
                        page_token=state.page_token,
                        sync_since=data.sync_since,
                        drafted=state.drafted,
                    ),
                    **policies.long_step(job.run),
                )
                if page.cursor_expired:
                    workflow.logger.info("email sync cursor expired; running a full sync")
                    state = state.model_copy(
                        update={"full": True, "page_token": None, "drafted": {}}
                    )
                    continue
                drafted, started = await self._start_drafts(job, page.important)
                state = state.model_copy(
                    update={
                        "fetched": state.fetched + page.fetched,
                        "stored": state.stored + page.stored,
                        "skipped": state.skipped + page.skipped,
                        "page_token": page.page_token,
                        "drafts_started": state.drafts_started + started,
                        "drafted": drafted,
                    }
                )
                if not state.first_page_done:
                    report_workflow_progress(20)
                    state = state.model_copy(update={"first_page_done": True})
                if page.page_token is None:
                    state = state.model_copy(update={"cursor": page.new_cursor})
                    break
            else:
                workflow.continue_as_new(job.model_copy(update={"resume": state}))
            report_workflow_progress(40)
            await workflow.execute_activity_method(
                EmailActivities.finish_sync,
                self._finish(job, state, "completed"),
                **policies.db_step(job.run),
            )
        except ActivityError as exc:
            await workflow.execute_activity_method(
                EmailActivities.finish_sync,
                self._finish(job, state, "failed", failure_reason(exc)),
                **policies.db_step(job.run),
            )
            raise ApplicationError(
                f"email sync failed: {failure_reason(exc)}", non_retryable=True
            ) from exc
        report_workflow_progress(95)
        return EmailSyncResult(
            fetched=state.fetched,
            stored=state.stored,
            skipped=state.skipped,
            full_sync=state.full,
            cursor=state.cursor,
            drafts_started=state.drafts_started,
        )

    @staticmethod
    def _finish(
        job: JobRun[EmailSyncJobData], state: SyncState, status: str, error: str | None = None
    ) -> FinishSyncInput:
        return FinishSyncInput(
            job_id=state.sync_job_id,
            account_id=job.data.account_id,
            status=status,
            fetched=state.fetched,
            stored=state.stored,
            skipped=state.skipped,
            full_sync=state.full,
            cursor=state.cursor,
            error=error,
            drafted=state.drafted,
        )

    async def _start_drafts(
        self, job: JobRun[EmailSyncJobData], messages: list[StoredMessage]
    ) -> tuple[dict[str, str], int]:
        """One draft job per important message not drafted yet: the draft job ids to record
        (message id -> job id), and how many this call started. The id names the message,
        so a message handed over twice (a retried batch, a concurrent sync) is drafted once."""
        drafted: dict[str, str] = {}
        started = 0
        for message in messages:
            draft_id = f"email_draft-auto-{job.data.account_id}-{message.provider_message_id}"
            drafted[message.provider_message_id] = draft_id
            draft = EmailDraftJobData(
                user_id=job.data.user_id,
                thread_id=message.thread_id or message.provider_message_id,
                context=f"Subject: {message.subject}\n\n{message.snippet}",
                account_id=job.data.account_id,
                reply_to_message_id=message.provider_message_id,
            )
            try:
                await workflow.start_child_workflow(
                    EmailDraftWorkflow.run,
                    JobRun[EmailDraftJobData](
                        data=draft,
                        run=job.run.model_copy(update={"job_type": JobType.EMAIL_DRAFT}),
                    ),
                    id=draft_id,
                    **policies.child_job(job.run),
                )
            except WorkflowAlreadyStartedError:
                continue
            started += 1
        return drafted, started
