"""Activities of the maintenance jobs: agent memory cleanup and pattern consolidation, and the
housekeeping purge of expired rows.

``clean_memory`` runs one cleanup step (expired entries, or low-performance patterns) in
chunks of ``CHUNK`` ids, each chunk one short transaction that also records the step's
progress (``db.memory.MemoryCleaner``), so a retried attempt, even after its worker was
killed mid-chunk, starts after the last committed chunk with exact counts. It heartbeats
after every chunk (a cancel reaches it) and returns after ``TIME_BUDGET_S``; the workflow
asks again until the step is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from temporalio import activity

from activities import Dependencies
from activities.heartbeat import auto_heartbeat, heartbeat
from core.crypto import TokenCipher, token_key
from core.logging import get_logger
from db.ads import AdFileStore
from db.base import utcnow
from db.browser import ExecutionStore
from db.dedup import JobKeyStore
from db.housekeeping import purge_analysis, purge_executions, purge_once
from db.job_inputs import JobInputStore
from db.memory import MemoryCleaner, PatternConsolidator, StepKey
from db.reports import ReportStore
from db.secrets import SecretStore
from db.seo import CrawlPageStore

# A crawl's pages are deleted with its report; those left this long belong to abandoned jobs.
CRAWL_PAGES_RETENTION = timedelta(days=7)

log = get_logger(__name__)

CHUNK = 1000
TIME_BUDGET_S = 300.0

CleanupStep = Literal["expired", "low_performance"]


class CleanMemoryInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: CleanupStep
    # Entries that expired before this instant (the job's start, the same for every chunk).
    cutoff: datetime
    min_success_rate: float = 0.0
    min_usage_count: int = 0


class CleanMemoryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    done: bool
    deleted: int
    chunks: int


class ConsolidateInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent_id: str | None
    session_id: str | None
    threshold: float


class ConsolidateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    agents: int
    groups: int
    merged: int


class PurgeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    dedup_keys: int
    job_secrets: int
    job_inputs: int
    browser_executions: int = 0
    # Analysis reports, ad data files and abandoned crawl pages.
    analysis_rows: int = 0


class MaintenanceActivities:
    def __init__(
        self,
        cleaner: MemoryCleaner,
        consolidator: PatternConsolidator,
        purgers: tuple[JobKeyStore, SecretStore, JobInputStore],
        executions: ExecutionStore,
        execution_retention: timedelta,
        analysis: tuple[ReportStore, AdFileStore, CrawlPageStore] | None = None,
        analysis_retention: timedelta = timedelta(days=90),
    ) -> None:
        self._cleaner = cleaner
        self._consolidator = consolidator
        self._purgers = purgers
        self._executions = executions
        self._execution_retention = execution_retention
        self._analysis = analysis
        self._analysis_retention = analysis_retention

    @activity.defn(name="purge_expired_rows")
    @auto_heartbeat
    async def purge_expired_rows(self) -> PurgeResult:
        """Delete expired job-id dedup keys, job secrets and stored job inputs, and browser
        executions past BROWSER_EXECUTION_RETENTION_DAYS, and analysis reports and ad data
        files past ANALYSIS_RETENTION_DAYS (with the pages of crawls abandoned for a week)."""
        keys, secrets, inputs = await purge_once(*self._purgers)
        executions = await purge_executions(self._executions, utcnow() - self._execution_retention)
        analysis = 0
        if self._analysis is not None:
            analysis = await purge_analysis(
                *self._analysis,
                stored_before=utcnow() - self._analysis_retention,
                crawled_before=utcnow() - CRAWL_PAGES_RETENTION,
            )
        log.info(
            "housekeeping.purged",
            dedup_keys=keys,
            job_secrets=secrets,
            job_inputs=inputs,
            browser_executions=executions,
            analysis_rows=analysis,
        )
        return PurgeResult(
            dedup_keys=keys,
            job_secrets=secrets,
            job_inputs=inputs,
            browser_executions=executions,
            analysis_rows=analysis,
        )

    @activity.defn(name="clean_memory")
    @auto_heartbeat
    async def clean_memory(self, input: CleanMemoryInput) -> CleanMemoryResult:
        info = activity.info()
        key = StepKey(info.workflow_id or "", info.workflow_run_id or "", input.step)
        started = time.monotonic()
        progress = await self._cleaner.progress(key)
        while not progress.done and time.monotonic() - started < TIME_BUDGET_S:
            if input.step == "expired":
                progress = await self._cleaner.delete_expired(key, cutoff=input.cutoff, chunk=CHUNK)
            else:
                progress = await self._cleaner.delete_low_performers(
                    key,
                    min_success_rate=input.min_success_rate,
                    min_usage_count=input.min_usage_count,
                    chunk=CHUNK,
                )
            heartbeat({"after_id": progress.after_id, "deleted": progress.deleted})
        if progress.done:
            log.info(
                "memory.cleanup_step_done",
                step=input.step,
                deleted=progress.deleted,
                chunks=progress.chunks,
            )
        return CleanMemoryResult(
            done=progress.done, deleted=progress.deleted, chunks=progress.chunks
        )

    @activity.defn(name="consolidate_patterns")
    @auto_heartbeat
    async def consolidate_patterns(self, input: ConsolidateInput) -> ConsolidateResult:
        agents = await self._consolidator.agents(
            agent_id=input.agent_id, session_id=input.session_id
        )
        # A retried attempt resumes after the agents the last one finished (heartbeated
        # with its counts; the agent list is in a fixed order).
        details = activity.info().heartbeat_details
        resumed = details[0] if details and isinstance(details[0], dict) else {}
        first = int(resumed.get("agents_done", 0))
        groups, merged = int(resumed.get("groups", 0)), int(resumed.get("merged", 0))
        for n, agent_id in enumerate(agents[first:], start=first):
            done = await self._consolidator.consolidate_agent(
                agent_id, session_id=input.session_id, threshold=input.threshold
            )
            groups += done.groups
            merged += done.merged
            heartbeat({"agents_done": n + 1, "groups": groups, "merged": merged})
        log.info("memory.consolidated", agents=len(agents), groups=groups, merged=merged)
        return ConsolidateResult(agents=len(agents), groups=groups, merged=merged)


def build_maintenance_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    at_rest = token_key(deps.settings)
    maintenance = MaintenanceActivities(
        MemoryCleaner(deps.sessions),
        PatternConsolidator(deps.sessions),
        (
            JobKeyStore(deps.sessions),
            SecretStore(deps.sessions, TokenCipher(at_rest), at_rest),
            JobInputStore(deps.sessions),
        ),
        ExecutionStore(deps.sessions),
        timedelta(days=deps.settings.browser_execution_retention_days),
        (ReportStore(deps.sessions), AdFileStore(deps.sessions), CrawlPageStore(deps.sessions)),
        timedelta(days=deps.settings.analysis_retention_days),
    )
    return [
        maintenance.clean_memory,
        maintenance.consolidate_patterns,
        maintenance.purge_expired_rows,
    ]
