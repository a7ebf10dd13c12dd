"""Stand-ins for the email activities, for workflow tests: scripted answers, every call kept
with the heartbeat timeout it was scheduled with."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.email import (
    BeginSyncInput,
    EmailActivities,
    FinishSyncInput,
    PlacedDraft,
    PlaceDraftInput,
    StoredMessage,
    SyncPagesInput,
    SyncPagesResult,
    SyncPlan,
    WriteDraftInput,
    WrittenDraft,
)
from activities.heartbeat import heartbeats
from core.jobs import EmailDraftJobData, EmailSyncJobData, JobType
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import JobRun, run_options
from worker import workflow_runner
from workflows.email_draft import EmailDraftWorkflow
from workflows.email_sync import EmailSyncInput, EmailSyncWorkflow

Answer = SyncPagesResult | BaseException

# The real activity behind each activity name, to pair its preset with its heartbeats.
REAL = {
    "begin_email_sync": EmailActivities.begin_sync,
    "sync_email_pages": EmailActivities.sync_pages,
    "finish_email_sync": EmailActivities.finish_sync,
    "write_email_draft": EmailActivities.write_draft,
    "place_email_draft": EmailActivities.place_draft,
}


def important(message_id: str) -> StoredMessage:
    return StoredMessage(
        provider_message_id=message_id, thread_id=f"t-{message_id}", subject="URGENT", snippet="!"
    )


@dataclass
class FakeEmail:
    """Answers ``sync_email_pages`` calls from ``pages`` in order (an exception is raised)."""

    pages: list[Answer]
    cursor: str | None = None
    begin_error: BaseException | None = None
    place_error: BaseException | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    heartbeat_timeouts: dict[str, timedelta | None] = field(default_factory=dict)

    def _called(self, name: str, input: Any) -> None:
        self.calls.append((name, input))
        self.heartbeat_timeouts[name] = activity.info().heartbeat_timeout

    def inputs(self, name: str) -> list[Any]:
        return [input for called, input in self.calls if called == name]

    @activity.defn(name="begin_email_sync")
    async def begin(self, input: BeginSyncInput) -> SyncPlan:
        self._called("begin_email_sync", input)
        if self.begin_error is not None:
            raise self.begin_error
        return SyncPlan(provider=input.provider, cursor=self.cursor)

    @activity.defn(name="sync_email_pages")
    async def sync(self, input: SyncPagesInput) -> SyncPagesResult:
        self._called("sync_email_pages", input)
        answer = self.pages.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    @activity.defn(name="finish_email_sync")
    async def finish(self, input: FinishSyncInput) -> None:
        self._called("finish_email_sync", input)

    @activity.defn(name="write_email_draft")
    async def write(self, input: WriteDraftInput) -> WrittenDraft:
        self._called("write_email_draft", input)
        return WrittenDraft(
            body=f"reply to {input.thread_id}", model="m", input_tokens=3, output_tokens=5
        )

    @activity.defn(name="place_email_draft")
    async def place(self, input: PlaceDraftInput) -> PlacedDraft:
        self._called("place_email_draft", input)
        if self.place_error is not None:
            raise self.place_error
        return PlacedDraft(provider="gmail", provider_draft_id=f"d-{input.job_id}")

    def activities(self) -> Sequence[Callable[..., Any]]:
        return [self.begin, self.sync, self.finish, self.write, self.place]

    def check_presets(self) -> None:
        """An activity got a heartbeat timeout only if it heartbeats."""
        assert self.heartbeat_timeouts, "no activity ran"
        for name, timeout in self.heartbeat_timeouts.items():
            if timeout is not None:
                assert heartbeats(REAL[name]), name


def sync_job(queue: str, account_id: str, provider: str = "gmail") -> EmailSyncInput:
    """A sync job whose run options name the test's queue (auto-drafts start there)."""
    run = run_options(DEFAULT_CATALOG[QueueName.EMAIL], JobType.EMAIL_SYNC)
    return EmailSyncInput(
        data=EmailSyncJobData.model_validate(
            {"userId": "u-1", "accountId": account_id, "emailProvider": provider}
        ),
        run=run.model_copy(update={"queue": queue}),
    )


def draft_job(queue: str, account_id: str | None = "acct-1") -> JobRun[EmailDraftJobData]:
    run = run_options(DEFAULT_CATALOG[QueueName.EMAIL], JobType.EMAIL_DRAFT)
    return JobRun[EmailDraftJobData](
        data=EmailDraftJobData(
            user_id="u-1", thread_id="t-1", context="Hello?", account_id=account_id
        ),
        run=run.model_copy(update={"queue": queue}),
    )


def email_worker(client: Client, fake: FakeEmail, queue: str) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[EmailSyncWorkflow, EmailDraftWorkflow],
        activities=fake.activities(),
        workflow_runner=workflow_runner(),
    )


def new_queue() -> str:
    return f"email-test-{uuid.uuid4().hex[:8]}"
