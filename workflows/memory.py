"""MEMORY_CLEANUP and MEMORY_CONSOLIDATION: agent memory maintenance (US-007); and the
system's HOUSEKEEPING purge.

Cleanup removes expired memory entries and, when asked, patterns whose success rate stayed
below ``minSuccessRate`` after at least ``minUsageCount`` uses. Each step is a series of
``clean_memory`` calls, each working through bounded chunks until its time budget, so a
table of millions is cleaned without a long transaction; the result carries
``expired_removed``, ``patterns_removed``, ``chunks`` and ``duration_ms``. Consolidation merges
each agent's near-duplicate patterns (token-set Jaccard at least ``threshold``, see
``db.memory.group_near_duplicates``); the result carries ``groups`` and ``merged``.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.maintenance import (
        CleanMemoryInput,
        CleanupStep,
        ConsolidateInput,
        MaintenanceActivities,
        PurgeResult,
    )
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import (
        HousekeepingJobData,
        JobType,
        MemoryCleanupJobData,
        MemoryConsolidationJobData,
    )
    from core.runs import JobRun


class MemoryCleanupResult(BaseModel):
    expired_removed: int
    patterns_removed: int
    chunks: int
    duration_ms: int


class MemoryConsolidationResult(BaseModel):
    agents: int
    groups: int
    merged: int


@workflow.defn(name=WORKFLOW_NAMES[JobType.MEMORY_CLEANUP])
class MemoryCleanupWorkflow:
    @workflow.run
    async def run(self, job: JobRun[MemoryCleanupJobData]) -> MemoryCleanupResult:
        options = job.data.options
        started = workflow.now()
        steps: list[CleanupStep] = []
        if options.cleanup_expired:
            steps.append("expired")
        if options.cleanup_low_performance:
            steps.append("low_performance")
        removed: dict[str, int] = {"expired": 0, "low_performance": 0}
        chunks = 0
        for step in steps:
            while True:
                done = await workflow.execute_activity_method(
                    MaintenanceActivities.clean_memory,
                    CleanMemoryInput(
                        step=step,
                        cutoff=started,
                        min_success_rate=options.min_success_rate,
                        min_usage_count=options.min_usage_count,
                    ),
                    **policies.long_step(job.run),
                )
                if done.done:
                    # The counts are the step's totals (kept with its progress in the database).
                    removed[step] = done.deleted
                    chunks += done.chunks
                    break
        result = MemoryCleanupResult(
            expired_removed=removed["expired"],
            patterns_removed=removed["low_performance"],
            chunks=chunks,
            duration_ms=int((workflow.now() - started).total_seconds() * 1000),
        )
        workflow.logger.info("memory cleanup done: %s", result.model_dump())
        return result


@workflow.defn(name=WORKFLOW_NAMES[JobType.MEMORY_CONSOLIDATION])
class MemoryConsolidationWorkflow:
    @workflow.run
    async def run(self, job: JobRun[MemoryConsolidationJobData]) -> MemoryConsolidationResult:
        options = job.data.options
        done = await workflow.execute_activity_method(
            MaintenanceActivities.consolidate_patterns,
            ConsolidateInput(
                agent_id=options.agent_id,
                session_id=options.session_id,
                threshold=options.threshold,
            ),
            **policies.long_step(job.run),
        )
        return MemoryConsolidationResult(agents=done.agents, groups=done.groups, merged=done.merged)


@workflow.defn(name=WORKFLOW_NAMES[JobType.HOUSEKEEPING])
class HousekeepingWorkflow:
    """The system's own purge of expired job-id dedup keys, job secrets and stored inputs."""

    @workflow.run
    async def run(self, job: JobRun[HousekeepingJobData]) -> PurgeResult:
        return await workflow.execute_activity_method(
            MaintenanceActivities.purge_expired_rows, **policies.long_step(job.run)
        )
