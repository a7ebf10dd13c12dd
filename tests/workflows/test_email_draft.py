"""The email draft workflow with its activities replaced: stored only, or also created in the
mailbox, and a failure to create it failing the job."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from core.errors import RESOURCE_NOT_FOUND
from tests.workflows.conftest import record_history
from tests.workflows.email_fakes import FakeEmail, draft_job, email_worker, new_queue
from workflows.email_draft import EmailDraftWorkflow

pytestmark = pytest.mark.workflow


async def run_draft(
    env: WorkflowEnvironment, fake: FakeEmail, account_id: str | None, history: str | None = None
):
    queue = new_queue()
    async with email_worker(env.client, fake, queue):
        handle = await env.client.start_workflow(
            EmailDraftWorkflow.run,
            draft_job(queue, account_id),
            id=f"email_draft-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        try:
            return await handle.result()
        finally:
            if history is not None:
                await record_history(handle, history)


async def test_without_an_account_the_draft_is_only_written(time_env: WorkflowEnvironment):
    fake = FakeEmail(pages=[])
    result = await run_draft(time_env, fake, None)
    assert (result.model, result.tone, result.provider) == ("m", "professional", None)
    assert len(fake.inputs("write_email_draft")) == 1
    assert fake.inputs("place_email_draft") == []
    fake.check_presets()


async def test_with_an_account_it_is_created_in_the_mailbox(time_env: WorkflowEnvironment):
    fake = FakeEmail(pages=[])
    result = await run_draft(time_env, fake, "acct-1", history="email_draft_written_and_placed")
    [place] = fake.inputs("place_email_draft")
    assert place.body == "reply to t-1" and place.account_id == "acct-1"
    assert (result.provider, result.provider_draft_id) == ("gmail", f"d-{place.job_id}")
    fake.check_presets()


async def test_a_mailbox_that_refuses_fails_the_job(time_env: WorkflowEnvironment):
    fake = FakeEmail(
        pages=[],
        place_error=ApplicationError("gone", type=RESOURCE_NOT_FOUND, non_retryable=True),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await run_draft(time_env, fake, "acct-1")
    assert isinstance(failure.value.cause, ActivityError)
    assert isinstance(failure.value.cause.cause, ApplicationError)
    assert failure.value.cause.cause.type == RESOURCE_NOT_FOUND
    assert len(fake.inputs("place_email_draft")) == 1
