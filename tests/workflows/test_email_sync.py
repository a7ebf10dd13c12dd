"""Every branch of the email sync workflow, with its activities replaced (time-skipping server):
pages and counts, auto-drafts and their records, cursor expiry, continue-as-new, and the
compensation that closes the history row when the sync fails."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

import workflows.email_sync
from activities.email import SyncPagesResult
from core.errors import REAUTH_REQUIRED
from tests.workflows.conftest import record_history
from tests.workflows.email_fakes import FakeEmail, email_worker, important, new_queue, sync_job
from workflows.email_sync import EmailSyncWorkflow

pytestmark = pytest.mark.workflow


@pytest.fixture
def time_env(own_time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    # These tests start auto-draft children: see own_time_env.
    return own_time_env


class Account:
    """An account of the test's own: auto-draft ids name it, and the server is shared."""

    def __init__(self) -> None:
        self.id = f"acct-{uuid.uuid4().hex}"

    def draft_of(self, message_id: str) -> str:
        return f"email_draft-auto-{self.id}-{message_id}"


@pytest.fixture
def account() -> Account:
    return Account()


async def run_sync(
    env: WorkflowEnvironment, fake: FakeEmail, account: Account, *, history: str | None = None
):
    queue = new_queue()
    async with email_worker(env.client, fake, queue):
        handle = await env.client.start_workflow(
            EmailSyncWorkflow.run,
            sync_job(queue, account.id),
            id=f"email_sync-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        try:
            return await handle.result(), handle
        finally:
            # Let the auto-drafts finish while their worker runs: an activity left running
            # would hold the test server's clock for every later test.
            drafts = {
                draft
                for input in [*fake.inputs("sync_email_pages"), *fake.inputs("finish_email_sync")]
                for draft in input.drafted.values()
            }
            for draft in drafts:
                with contextlib.suppress(Exception):
                    await env.client.get_workflow_handle(draft).result()
            if history is not None:
                await record_history(handle, history)


async def test_full_sync_counts_pages_and_drafts_each_important_message_once(
    time_env: WorkflowEnvironment,
    account: Account,
):
    fake = FakeEmail(
        pages=[
            SyncPagesResult(fetched=500, stored=500, page_token="p2", important=[important("m1")]),
            SyncPagesResult(
                fetched=200,
                stored=150,
                skipped=50,
                new_cursor="c-9",
                important=[important("m2")],
            ),
        ]
    )
    result, handle = await run_sync(
        time_env, fake, account, history="email_sync_two_pages_two_drafts"
    )
    assert (result.fetched, result.stored, result.skipped) == (700, 650, 50)
    assert (result.full_sync, result.cursor, result.drafts_started) == (True, "c-9", 2)
    first, second = fake.inputs("sync_email_pages")
    assert (first.full, first.page_token, first.drafted) == (True, None, {})
    # The drafts started after a call are recorded by the next call, then by finish_sync.
    assert second.page_token == "p2" and second.drafted == {"m1": account.draft_of("m1")}
    [finish] = fake.inputs("finish_email_sync")
    assert (finish.status, finish.fetched, finish.stored, finish.cursor) == (
        "completed",
        700,
        650,
        "c-9",
    )
    assert finish.drafted == {"m2": account.draft_of("m2")}
    for message in ("m1", "m2"):
        draft = time_env.client.get_workflow_handle(account.draft_of(message))
        assert (await draft.result())["provider_draft_id"] == f"d-{account.draft_of(message)}"
    fake.check_presets()


async def test_a_message_handed_over_twice_is_drafted_once_and_recorded(
    time_env: WorkflowEnvironment,
    account: Account,
):
    fake = FakeEmail(
        pages=[
            SyncPagesResult(fetched=1, stored=1, page_token="p2", important=[important("m1")]),
            # The same message again (its record had not landed): no second draft.
            SyncPagesResult(fetched=1, stored=1, new_cursor="c", important=[important("m1")]),
        ]
    )
    result, _ = await run_sync(time_env, fake, account)
    assert result.drafts_started == 1
    assert fake.inputs("finish_email_sync")[0].drafted == {"m1": account.draft_of("m1")}
    assert len(fake.inputs("write_email_draft")) == 1


async def test_expired_cursor_restarts_as_a_full_sync(
    time_env: WorkflowEnvironment, account: Account
):
    fake = FakeEmail(
        cursor="c-old",
        pages=[
            SyncPagesResult(cursor_expired=True),
            SyncPagesResult(fetched=3, stored=0, skipped=3, new_cursor="c-new"),
        ],
    )
    result, _ = await run_sync(time_env, fake, account)
    incremental, full = fake.inputs("sync_email_pages")
    assert (incremental.full, incremental.cursor) == (False, "c-old")
    assert (full.full, full.page_token) == (True, None)
    assert (result.full_sync, result.cursor, result.skipped) == (True, "c-new", 3)


async def test_a_large_mailbox_continues_as_new_and_keeps_its_counts(
    time_env: WorkflowEnvironment, account: Account, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(workflows.email_sync, "BATCHES_PER_RUN", 2)
    fake = FakeEmail(
        pages=[
            SyncPagesResult(fetched=10, stored=10, page_token="p2", important=[important("a")]),
            SyncPagesResult(fetched=10, stored=10, page_token="p3"),
            SyncPagesResult(fetched=10, stored=9, skipped=1, new_cursor="c"),
        ]
    )
    result, handle = await run_sync(time_env, fake, account)
    assert (result.fetched, result.stored, result.skipped, result.drafts_started) == (30, 29, 1, 1)
    # One run per two batches; the history row is begun once and finished once.
    assert len(fake.inputs("begin_email_sync")) == 1
    assert len(fake.inputs("finish_email_sync")) == 1
    assert fake.inputs("sync_email_pages")[2].page_token == "p3"
    first_run = time_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    assert (await first_run.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW


async def test_a_failed_page_closes_the_history_row_and_fails_the_job(
    time_env: WorkflowEnvironment,
    account: Account,
):
    fake = FakeEmail(
        pages=[
            SyncPagesResult(fetched=5, stored=5, page_token="p2", important=[important("m1")]),
            ApplicationError("token revoked", type=REAUTH_REQUIRED, non_retryable=True),
        ]
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await run_sync(time_env, fake, account)
    assert isinstance(failure.value.cause, ApplicationError)
    assert "email sync failed" in failure.value.cause.message
    assert isinstance(failure.value.cause.cause, ActivityError)
    [finish] = fake.inputs("finish_email_sync")
    assert (finish.status, finish.fetched, finish.stored) == ("failed", 5, 5)
    assert finish.error is not None and REAUTH_REQUIRED in finish.error
    # The draft already started is still recorded.
    assert finish.drafted == {"m1": account.draft_of("m1")}


async def test_a_failed_start_writes_no_history(time_env: WorkflowEnvironment, account: Account):
    fake = FakeEmail(
        pages=[],
        begin_error=ApplicationError("no account", type="ResourceNotFound", non_retryable=True),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await run_sync(time_env, fake, account)
    assert isinstance(failure.value.cause, ActivityError)
    assert fake.inputs("sync_email_pages") == [] and fake.inputs("finish_email_sync") == []
