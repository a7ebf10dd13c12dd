"""The memory maintenance workflows with their activities replaced: cleanup asks again until
each step is done and reports the step totals, skips the steps it was not asked for, and
consolidation passes its scope and threshold through."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.maintenance import (
    CleanMemoryInput,
    CleanMemoryResult,
    ConsolidateInput,
    ConsolidateResult,
    PurgeResult,
)
from core.jobs import (
    HousekeepingJobData,
    JobType,
    MemoryCleanupJobData,
    MemoryConsolidationJobData,
)
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import JobRun, run_options
from tests.workflows.conftest import record_history
from worker import workflow_runner
from workflows.memory import (
    HousekeepingWorkflow,
    MemoryCleanupWorkflow,
    MemoryConsolidationWorkflow,
)

pytestmark = pytest.mark.workflow


@dataclass
class FakeMaintenance:
    """Each cleanup step takes ``calls_per_step`` calls (its time budget runs out before)."""

    calls_per_step: int = 3
    cleaned: list[CleanMemoryInput] = field(default_factory=list)
    consolidated: list[ConsolidateInput] = field(default_factory=list)
    purged: int = 0

    @activity.defn(name="clean_memory")
    async def clean(self, input: CleanMemoryInput) -> CleanMemoryResult:
        self.cleaned.append(input)
        calls = sum(1 for c in self.cleaned if c.step == input.step)
        per_call = 1000 if input.step == "expired" else 7
        return CleanMemoryResult(
            done=calls >= self.calls_per_step, deleted=calls * per_call, chunks=calls * 10
        )

    @activity.defn(name="purge_expired_rows")
    async def purge(self) -> PurgeResult:
        self.purged += 1
        return PurgeResult(dedup_keys=3, job_secrets=2, job_inputs=1)

    @activity.defn(name="consolidate_patterns")
    async def consolidate(self, input: ConsolidateInput) -> ConsolidateResult:
        self.consolidated.append(input)
        return ConsolidateResult(agents=2, groups=3, merged=5)


async def run(env: WorkflowEnvironment, fake: FakeMaintenance, workflow: Any, data: Any,
              history: str | None = None) -> Any:  # fmt: skip
    queue = f"maintenance-test-{uuid.uuid4().hex[:8]}"
    job_type = {
        MemoryCleanupWorkflow: JobType.MEMORY_CLEANUP,
        MemoryConsolidationWorkflow: JobType.MEMORY_CONSOLIDATION,
        HousekeepingWorkflow: JobType.HOUSEKEEPING,
    }[workflow]
    run_opts = run_options(DEFAULT_CATALOG[QueueName.MAINTENANCE], job_type)
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[MemoryCleanupWorkflow, MemoryConsolidationWorkflow, HousekeepingWorkflow],
        activities=[fake.clean, fake.consolidate, fake.purge],
        workflow_runner=workflow_runner(),
    ):
        handle = await env.client.start_workflow(
            workflow.run,
            JobRun[type(data)](data=data, run=run_opts),  # type: ignore[misc,operator]
            id=f"{job_type.value}-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        result = await handle.result()
        if history is not None:
            await record_history(handle, history)
        return result


async def test_cleanup_runs_each_step_to_its_end_and_reports_totals(time_env: WorkflowEnvironment):
    fake = FakeMaintenance()
    data = MemoryCleanupJobData.model_validate(
        {"options": {"cleanupLowPerformance": True, "minSuccessRate": 0.4, "minUsageCount": 8}}
    )
    result = await run(
        time_env, fake, MemoryCleanupWorkflow, data, history="memory_cleanup_two_steps"
    )
    assert [c.step for c in fake.cleaned] == ["expired"] * 3 + ["low_performance"] * 3
    assert len({c.cutoff for c in fake.cleaned}) == 1  # one cutoff for the whole job
    low = fake.cleaned[-1]
    assert (low.min_success_rate, low.min_usage_count) == (0.4, 8)
    assert (result.expired_removed, result.patterns_removed, result.chunks) == (3000, 21, 60)
    assert result.duration_ms >= 0


async def test_cleanup_skips_the_steps_not_asked_for(time_env: WorkflowEnvironment):
    fake = FakeMaintenance(calls_per_step=1)
    data = MemoryCleanupJobData.model_validate({"options": {"cleanupExpired": False}})
    result = await run(time_env, fake, MemoryCleanupWorkflow, data)
    assert fake.cleaned == [] and result.expired_removed == result.patterns_removed == 0


async def test_consolidation_passes_its_scope_through(time_env: WorkflowEnvironment):
    fake = FakeMaintenance()
    data = MemoryConsolidationJobData.model_validate(
        {"options": {"agentId": "agent-7", "sessionId": "s-1", "threshold": 0.9}}
    )
    result = await run(
        time_env, fake, MemoryConsolidationWorkflow, data, history="memory_consolidation"
    )
    [asked] = fake.consolidated
    assert (asked.agent_id, asked.session_id, asked.threshold) == ("agent-7", "s-1", 0.9)
    assert (result.agents, result.groups, result.merged) == (2, 3, 5)


async def test_housekeeping_purges_once_and_reports_the_counts(time_env: WorkflowEnvironment):
    fake = FakeMaintenance()
    result = await run(
        time_env, fake, HousekeepingWorkflow, HousekeepingJobData(), history="housekeeping"
    )
    assert fake.purged == 1
    assert (result.dedup_keys, result.job_secrets, result.job_inputs) == (3, 2, 1)
