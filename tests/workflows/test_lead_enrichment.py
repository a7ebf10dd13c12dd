"""The lead enrichment workflow with its activity replaced: slices of the stored leads one after
another, a slice cut short continued where it stopped, the counts summed into the result,
and a continue-as-new that keeps every run's history small and the counts whole."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows.lead_enrichment
from activities.enrichment import EnrichLeadsInput, EnrichLeadsResult
from core.jobs import JobType, LeadEnrichmentJobData
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import run_options
from tests.workflows.conftest import record_history
from worker import workflow_runner
from workflows.lead_enrichment import (
    SLICE_LEADS,
    LeadEnrichmentInput,
    LeadEnrichmentWorkflow,
)

pytestmark = pytest.mark.workflow


@dataclass
class FakeEnrichment:
    """Enriches every lead but each ``fail_every``-th; ``cut`` stops a slice early once."""

    fail_every: int = 0
    cut: int | None = None
    inputs: list[EnrichLeadsInput] = field(default_factory=list)

    @activity.defn(name="enrich_leads")
    async def enrich(self, input: EnrichLeadsInput) -> EnrichLeadsResult:
        self.inputs.append(input)
        stop = input.stop
        if self.cut is not None:
            stop, self.cut = min(stop, input.start + self.cut), None
        positions = range(input.start, stop)
        failed = sum(1 for p in positions if self.fail_every and p % self.fail_every == 0)
        return EnrichLeadsResult(position=stop, enriched=len(positions) - failed, failed=failed)


def job(queue: str, count: int) -> LeadEnrichmentInput:
    run = run_options(DEFAULT_CATALOG[QueueName.ENRICHMENT], JobType.LEAD_ENRICHMENT)
    return LeadEnrichmentInput(
        data=LeadEnrichmentJobData(user_id="u-1", lead_count=count, batch_size=5),
        run=run.model_copy(update={"queue": queue}),
    )


async def run_job(
    env: WorkflowEnvironment,
    fake: FakeEnrichment,
    count: int,
    history: str | None = None,
    *,
    sandboxed: bool = True,
):
    queue = f"enrichment-test-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[LeadEnrichmentWorkflow],
        activities=[fake.enrich],
        # The sandbox imports the workflow module afresh; a patched constant needs none.
        workflow_runner=workflow_runner() if sandboxed else UnsandboxedWorkflowRunner(),
    ):
        handle = await env.client.start_workflow(
            LeadEnrichmentWorkflow.run,
            job(queue, count),
            id=f"lead_enrichment-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        result = await handle.result()
        if history is not None:
            await record_history(handle, history)
        return handle, result


async def test_slices_are_enriched_in_order_and_summed(time_env: WorkflowEnvironment):
    fake = FakeEnrichment(fail_every=100)
    _, result = await run_job(time_env, fake, 2500, history="lead_enrichment_three_slices")
    assert [(i.start, i.stop) for i in fake.inputs] == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert all(i.total == 2500 and i.batch_size == 5 for i in fake.inputs)
    assert (result.total, result.enriched, result.failed, result.skipped) == (2500, 2475, 25, 0)


async def test_a_slice_cut_short_is_continued_where_it_stopped(time_env: WorkflowEnvironment):
    fake = FakeEnrichment(cut=300)
    _, result = await run_job(time_env, fake, 1500)
    assert [(i.start, i.stop) for i in fake.inputs] == [(0, 1000), (300, 1300), (1300, 1500)]
    assert result.enriched == 1500


async def test_a_long_import_continues_as_new_with_its_counts(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(workflows.lead_enrichment, "SLICES_PER_RUN", 2)
    fake = FakeEnrichment(fail_every=10)
    count = 5 * SLICE_LEADS + 1
    handle, result = await run_job(time_env, fake, count, sandboxed=False)
    assert (result.total, result.enriched + result.failed) == (count, count)
    assert result.failed == len(range(0, count, 10))
    assert len(fake.inputs) == 6
    # The first run ended in a continue-as-new after two slices.
    first_run = time_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    history = await first_run.fetch_history()
    types = [e.event_type for e in history.events]
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 2


async def test_no_leads_means_nothing_to_do(time_env: WorkflowEnvironment):
    fake = FakeEnrichment()
    _, result = await run_job(time_env, fake, 0)
    assert result.total == 0 and fake.inputs == []
