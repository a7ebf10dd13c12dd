"""The maintenance the system runs on Temporal Schedules, and the one step that syncs them.

``DECLARED`` names every schedule: the job it starts (a job type of the catalog, with its
data), its default cron expression (``SCHEDULE_<NAME>_CRON`` overrides it, name upper-cased
with ``-`` as ``_``) and a catch-up window. Every schedule skips a run while the previous one
is still going (``ScheduleOverlapPolicy.SKIP``). ``sync_schedules`` creates the declared
schedules that are missing, updates those that differ, and deletes the schedules of this
system (ids starting ``SCHEDULE_PREFIX``) that are no longer declared; running it twice
changes nothing. The worker of the maintenance queue runs it at start, and so does
``python -m devtools.schedules`` for deployments that sync as a separate step.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from core.catalog import JOB_KINDS
from core.config import ConfigError
from core.jobs import (
    HousekeepingJobData,
    JobData,
    JobType,
    MemoryCleanupJobData,
    MemoryConsolidationJobData,
)
from core.logging import get_logger
from core.queues import QueueName, QueueSpec, load_catalog
from core.runs import JobRun, run_options

log = get_logger("jobs.schedules")

SCHEDULE_PREFIX = "bj-"


@dataclass(frozen=True, slots=True)
class Declared:
    name: str
    job_type: JobType
    data: JobData
    cron: str
    catchup_window: timedelta = timedelta(hours=1)

    @property
    def schedule_id(self) -> str:
        return SCHEDULE_PREFIX + self.name

    @property
    def fingerprint(self) -> str:
        """A short hash of everything the system declares about it. The server keeps cron
        expressions as calendars, so a described schedule cannot be compared field by field;
        the fingerprint rides in the started jobs' id prefix instead."""
        return self.fingerprint_with(load_catalog())

    def fingerprint_with(self, catalog: Mapping[QueueName, QueueSpec]) -> str:
        """The fingerprint, including the run options (timeouts, retries) its jobs get."""
        kind = JOB_KINDS[self.job_type]
        text = "|".join(
            (
                self.cron,
                str(self.catchup_window.total_seconds()),
                kind.workflow_name,
                kind.queue.value,
                _job(self, catalog).model_dump_json(),
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def variable(self) -> str:
        return f"SCHEDULE_{self.name.upper().replace('-', '_')}_CRON"


DECLARED: tuple[Declared, ...] = (
    Declared(
        "memory-cleanup",
        JobType.MEMORY_CLEANUP,
        MemoryCleanupJobData.model_validate({"options": {"cleanupLowPerformance": True}}),
        cron="0 3 * * *",
    ),
    Declared(
        "memory-consolidation",
        JobType.MEMORY_CONSOLIDATION,
        MemoryConsolidationJobData(),
        cron="30 3 * * *",
    ),
    Declared("housekeeping", JobType.HOUSEKEEPING, HousekeepingJobData(), cron="17 * * * *"),
)


def _valid_cron(text: str) -> bool:
    fields = text.split()
    return len(fields) in (5, 6) and all(f.strip() for f in fields)


def declared_schedules(environ: Mapping[str, str] | None = None) -> tuple[Declared, ...]:
    """The declared schedules with their ``SCHEDULE_<NAME>_CRON`` overrides."""
    env = os.environ if environ is None else environ
    known = {d.variable: d for d in DECLARED}
    for var in env:
        if var.startswith("SCHEDULE_") and var.endswith("_CRON") and var not in known:
            raise ConfigError(f"{var}: no such schedule; one of {sorted(known)}")
    out = []
    for declared in DECLARED:
        cron = env.get(declared.variable, declared.cron).strip()
        if not _valid_cron(cron):
            raise ConfigError(f"{declared.variable}: not a cron expression: {cron!r}")
        out.append(replace(declared, cron=cron))
    return tuple(out)


def _job(declared: Declared, catalog: Mapping[QueueName, QueueSpec]) -> JobRun[Any]:
    spec = catalog[JOB_KINDS[declared.job_type].queue]
    # Parametrised so the job's own fields are serialised, not just the base's.
    run_model: type[JobRun[Any]] = JobRun[type(declared.data)]  # type: ignore[misc,assignment]
    return run_model(data=declared.data, run=run_options(spec, declared.job_type))


def _schedule(declared: Declared, catalog: Mapping[QueueName, QueueSpec]) -> Schedule:
    kind = JOB_KINDS[declared.job_type]
    job = _job(declared, catalog)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            kind.workflow_name,
            job,
            # Each run's id is this prefix plus the scheduled time, so its job id says
            # where it came from (and which definition started it).
            id=f"{declared.name}-{declared.fingerprint_with(catalog)}",
            task_queue=kind.queue.value,
        ),
        spec=ScheduleSpec(cron_expressions=[declared.cron]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=declared.catchup_window
        ),
    )


def _same(current: Schedule, wanted: Schedule) -> bool:
    return (
        isinstance(current.action, ScheduleActionStartWorkflow)
        and isinstance(wanted.action, ScheduleActionStartWorkflow)
        and current.action.id == wanted.action.id
        and current.policy.overlap == wanted.policy.overlap
    )


@dataclass(frozen=True, slots=True)
class SyncReport:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]


async def sync_schedules(
    client: Client,
    declared: tuple[Declared, ...] | None = None,
    *,
    catalog: Mapping[QueueName, QueueSpec] | None = None,
) -> SyncReport:
    """Make the server's schedules of this system exactly the declared ones."""
    declared = declared if declared is not None else declared_schedules()
    wanted = {d.schedule_id: d for d in declared}
    specs = catalog if catalog is not None else load_catalog()
    existing = [
        entry.id
        async for entry in await client.list_schedules()
        if entry.id.startswith(SCHEDULE_PREFIX)
    ]
    created, updated, deleted, unchanged = [], [], [], []
    for schedule_id, d in wanted.items():
        schedule = _schedule(d, specs)
        handle = client.get_schedule_handle(schedule_id)
        if schedule_id not in existing:
            try:
                await client.create_schedule(schedule_id, schedule)
                created.append(schedule_id)
                continue
            except ScheduleAlreadyRunningError:
                pass  # created meanwhile by another worker: compare it below
        current = (await handle.describe()).schedule
        if _same(current, schedule):
            unchanged.append(schedule_id)
            continue

        def keep_state(update: ScheduleUpdateInput, wanted: Schedule = schedule) -> ScheduleUpdate:
            # A paused schedule stays paused; only what the system declares is replaced.
            wanted.state = update.description.schedule.state
            return ScheduleUpdate(schedule=wanted)

        try:
            await handle.update(keep_state)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # Deleted meanwhile (another worker's sync): the next sync creates it.
            continue
        updated.append(schedule_id)
    for schedule_id in existing:
        if schedule_id not in wanted:
            try:
                await client.get_schedule_handle(schedule_id).delete()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # another worker's sync deleted it first
            deleted.append(schedule_id)
    report = SyncReport(tuple(created), tuple(updated), tuple(deleted), tuple(unchanged))
    if created or updated or deleted:
        log.info(
            "schedules.synced",
            created=report.created,
            updated=report.updated,
            deleted=report.deleted,
        )
    return report
