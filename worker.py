"""Worker process: python worker.py --task-queue email [--task-queue webhooks ...] | --all

Brings the database schema to head (or refuses to start, with DB_MIGRATE_ON_START=false),
registers each queue's workflows and activities with the queue's concurrency and rate from
the catalog, makes sure the Temporal side is set up, keeps the Redis statistics reconciled,
and shuts down gracefully on SIGTERM/SIGINT: it stops taking activities, gives running ones up
to WORKER_SHUTDOWN_GRACE_SECONDS, completes the jobs they belong to, then stops; anything
unfinished stays in Temporal for other workers.
"""

from __future__ import annotations

import time

# Start-up time (NFR-003: under 5 s) is reported from here, before the heavy imports.
_PROCESS_START = time.monotonic()

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import Dependencies, build_activities
from core import temporal
from core.catalog import implemented_queues
from core.config import ConfigError, Settings, load_settings
from core.errors import DatabaseUnavailable, SchemaNotReady, TemporalUnavailable
from core.logging import configure_logging, exit_process, get_logger
from core.queues import QueueName, QueueSpec, load_catalog
from core.schedules import declared_schedules, sync_schedules
from core.temporal import connect
from db.schema import ensure_schema
from db.session import create_engine, create_sessionmaker
from tracking.interceptor import JobTrackingInterceptor
from tracking.reconcile import Reconciler, reconcile_loop
from tracking.store import JobTracker, connect_redis
from workflows.registry import workflows_of

log = get_logger("jobs.worker")

# Our own modules are deterministic at import and safe to share with workflow code; passing
# them (and the heavy libraries they import) through saves re-importing them per workflow.
PASSTHROUGH_MODULES = (
    "core",
    "activities",
    "client",
    "tracking",
    "db",
    "integrations",
    "pydantic",
    "pydantic_core",
    "structlog",
    "redis",
    "sqlalchemy",
    "httpx",
    "anyio",
    "cryptography",
)


def workflow_runner(*, strict: bool = False) -> SandboxedWorkflowRunner:
    """The sandbox workers run workflows in.

    The sandbox loads and executes a workflow's module again for every workflow run; for
    short jobs that was about a third of the worker's CPU. Workers therefore pass the
    ``workflows`` package through too. The workflow and replay tests run ``strict``
    (workflow modules sandboxed), so a non-deterministic call in workflow code still fails
    there before it ships.
    """
    modules = PASSTHROUGH_MODULES if strict else (*PASSTHROUGH_MODULES, "workflows")
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


# Exit codes (also in --help and README).
EXIT_OK = 0
EXIT_FAILED = 1  # could not start (Temporal or the database unreachable) or crashed
EXIT_USAGE = 2  # bad arguments or environment variables
EXIT_SCHEMA = 3  # the database is behind this version and DB_MIGRATE_ON_START=false
EXIT_NOTHING_TO_RUN = 4  # none of the requested queues has a job type implemented yet


def _help_epilog() -> str:
    served = ", ".join(q.value for q in implemented_queues())
    declared = ", ".join(q.value for q in QueueName if q not in implemented_queues())
    return (
        f"queues with job types: {served}\n"
        f"queues declared, no job type implemented yet: {declared or '-'}\n\n"
        "SIGTERM or SIGINT stops gracefully: running jobs get WORKER_SHUTDOWN_GRACE_SECONDS\n"
        "to finish. Exit codes: 0 stopped, 1 failed to start or crashed, 2 bad arguments or\n"
        "environment, 3 database schema behind (run python -m db.migrate), 4 nothing to run."
    )


def parse_queues(argv: Sequence[str] | None = None) -> list[QueueName]:
    parser = argparse.ArgumentParser(
        prog="worker.py",
        description="Run the workers of one or more job queues.",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--task-queue",
        action="append",
        default=[],
        choices=[q.value for q in QueueName],
        metavar="NAME",
        help="queue to serve (repeatable): " + ", ".join(q.value for q in QueueName),
    )
    parser.add_argument(
        "--all", action="store_true", help="serve every queue that has a job type implemented"
    )
    args = parser.parse_args(argv)
    if args.all:
        return list(implemented_queues())
    if not args.task_queue:
        parser.error("give --task-queue NAME (repeatable) or --all")
    return list(dict.fromkeys(QueueName(q) for q in args.task_queue))


@dataclass
class QueueWorkers:
    """A queue's workflow tasks and activity tasks, polled by two Workers.

    ``Worker.shutdown()`` stops all of a Worker's polling at once, so a single Worker that
    stops while an activity finishes in its grace period never processes the workflow task
    that completes the job. Apart, the activity Worker stops first and the workflow Worker
    still completes the jobs whose activities ran here (on its sticky queue).
    """

    queue: QueueName
    workflows: Worker | None
    activities: Worker | None

    def all(self) -> list[Worker]:
        return [w for w in (self.workflows, self.activities) if w is not None]


def build_queue_workers(
    client: Client,
    spec: QueueSpec,
    deps: Dependencies,
    interceptor: JobTrackingInterceptor,
    shutdown_grace: timedelta,
) -> QueueWorkers | None:
    """The Workers of one queue, or None when none of its job types is implemented."""
    workflows = workflows_of(spec.name)
    activities = build_activities(deps, spec.name)
    if not workflows and not activities:
        return None

    def worker(**options: Any) -> Worker:
        return Worker(client, task_queue=spec.name.value, interceptors=[interceptor], **options)

    workflow_worker = (
        worker(
            workflows=workflows,
            workflow_runner=workflow_runner(),
            # Eager activities bypass the task queue, and with it the server-side pause and
            # rate (a workflow-only Worker has none to run anyway).
            disable_eager_activity_execution=True,
        )
        if workflows
        else None
    )
    activity_worker = (
        worker(
            activities=activities,
            max_concurrent_activities=spec.concurrency,
            # The server-side queue rate is the real limit across processes; a local guard.
            max_activities_per_second=spec.rate_per_second,
            graceful_shutdown_timeout=shutdown_grace,
        )
        if activities
        else None
    )
    return QueueWorkers(spec.name, workflow_worker, activity_worker)


async def prepare_temporal(
    client: Client, settings: Settings, catalog: dict[QueueName, QueueSpec], queues: list[QueueName]
) -> None:
    """Namespace, search attributes and queue rates: idempotent, safe from many workers."""
    namespace = settings.temporal_namespace
    longest = max(spec.keep_failed_for for spec in catalog.values())
    await temporal.ensure_namespace(client, namespace, longest)
    await temporal.ensure_search_attributes(client, namespace)
    for queue in queues:
        rate = await temporal.get_queue_rate(client, namespace, queue.value)
        if rate.paused:
            log.info("queue.still_paused", queue=queue.value)
            continue
        wanted = catalog[queue].rate_per_second
        if rate.requests_per_second != wanted:
            await temporal.set_queue_rate(client, namespace, queue.value, wanted, "catalog")


@dataclass
class WorkerRuntime:
    """Everything one worker process holds: clients, tracking and the Workers of each queue."""

    client: Client
    tracker: JobTracker
    interceptor: JobTrackingInterceptor
    deps: Dependencies
    workers: dict[QueueName, QueueWorkers]

    def all_workers(self) -> list[Worker]:
        return [w for queue in self.workers.values() for w in queue.all()]


@contextlib.asynccontextmanager
async def worker_runtime(
    settings: Settings, queues: list[QueueName], catalog: dict[QueueName, QueueSpec]
) -> AsyncIterator[WorkerRuntime]:
    """Check the database schema, connect, prepare Temporal and build the workers; close
    every client on exit."""
    async with contextlib.AsyncExitStack() as cleanup:
        engine = create_engine(settings.database_url)
        cleanup.push_async_callback(engine.dispose)
        # Before any job is taken: a job must never run its side effect and then find no
        # table to record it in.
        await ensure_schema(engine, settings.database_url, migrate=settings.db_migrate_on_start)
        try:
            client = await connect(settings)
        except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
            raise TemporalUnavailable(
                f"cannot reach Temporal at {settings.temporal_address} (TEMPORAL_ADDRESS): "
                f"{str(exc).splitlines()[0][:300]}"
            ) from None
        await prepare_temporal(client, settings, catalog, queues)
        redis = connect_redis(settings)
        cleanup.push_async_callback(redis.aclose)
        http = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        cleanup.push_async_callback(http.aclose)
        tracker = JobTracker(redis, catalog, settings.redis_key_prefix)
        interceptor = JobTrackingInterceptor(tracker)
        await interceptor.start()
        deps = Dependencies(settings=settings, http=http, sessions=create_sessionmaker(engine))
        grace = timedelta(seconds=settings.worker_shutdown_grace_seconds)
        workers: dict[QueueName, QueueWorkers] = {}
        try:
            for queue in queues:
                worker = build_queue_workers(client, catalog[queue], deps, interceptor, grace)
                if worker is not None:
                    workers[queue] = worker
            for start in deps.starters:
                await start(client)
            yield WorkerRuntime(client, tracker, interceptor, deps, workers)
        finally:
            # Flush the lifecycle events the workflows reported before closing Redis.
            await interceptor.stop()
            for close in deps.closers:
                await close()


# After the activities drained, how long the workflow tasks they caused may still take.
WORKFLOW_TASK_DRAIN_S = 3.0


async def stop_gracefully(runtime: WorkerRuntime, grace_s: float) -> None:
    """Stop taking activities, let the running ones finish within ``grace_s``, complete the
    workflow tasks their endings caused, then stop taking workflow tasks."""
    started = time.monotonic()
    jobs = runtime.interceptor.jobs

    async def report_unfinished() -> None:
        await asyncio.sleep(max(grace_s - 0.1, 0))
        if jobs.running:
            # Cancelled now; Temporal retries them on another worker.
            log.warning(
                "worker.jobs_unfinished",
                job_ids=sorted(jobs.running),
                grace_s=grace_s,
                note="cancelled at the end of the grace period; retried by another worker",
            )

    reporter = asyncio.create_task(report_unfinished())
    activity_workers = [q.activities for q in runtime.workers.values() if q.activities]
    await asyncio.gather(*(w.shutdown() for w in activity_workers), return_exceptions=True)
    reporter.cancel()
    # The jobs whose activities ended lately or in the grace: their next workflow task is
    # (or is about to be) on this process's sticky queue.
    touched = jobs.ended_since(started - jobs.RECENT_S)
    workflow_workers = [q.workflows for q in runtime.workers.values() if q.workflows]
    if touched and workflow_workers:
        remaining = max(grace_s - (time.monotonic() - started), WORKFLOW_TASK_DRAIN_S)
        await _await_workflow_tasks(runtime.client, touched, remaining)
    await asyncio.gather(*(w.shutdown() for w in workflow_workers), return_exceptions=True)
    log.info("worker.drained", jobs=len(touched), seconds=round(time.monotonic() - started, 3))


async def _await_workflow_tasks(client: Client, job_ids: set[str], timeout_s: float) -> None:
    """Until none of ``job_ids`` has a workflow task pending (or ``timeout_s`` passed)."""
    deadline = time.monotonic() + timeout_s
    pending = set(job_ids)
    while pending and time.monotonic() < deadline:
        answers = await asyncio.gather(
            *(client.get_workflow_handle(job_id).describe() for job_id in pending),
            return_exceptions=True,
        )
        for job_id, desc in zip(list(pending), answers, strict=True):
            if isinstance(desc, BaseException):
                pending.discard(job_id)  # gone, or the server is away: nothing to wait for
            elif (
                desc.status != WorkflowExecutionStatus.RUNNING
                or not desc.raw_description.HasField("pending_workflow_task")
            ):
                pending.discard(job_id)
        if pending:
            await asyncio.sleep(0.05)
    if pending:
        log.warning("worker.workflow_tasks_left", job_ids=sorted(pending))


class _Stop:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.exit_code = 0

    def request(self, reason: str, exit_code: int = 0) -> None:
        if not self.event.is_set():
            log.info("worker.stopping", reason=reason)
            self.exit_code = exit_code
            self.event.set()


async def run(queues: list[QueueName], settings: Settings) -> int:
    catalog = load_catalog()
    loop = asyncio.get_running_loop()
    stop = _Stop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.request, signal.Signals(signum).name)

    def on_loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        log.error(
            "worker.unhandled_error",
            message=context.get("message"),
            exc_info=exc if isinstance(exc, BaseException) else None,
        )
        stop.request("unhandled error", exit_code=1)

    loop.set_exception_handler(on_loop_error)

    # Bad SCHEDULE_<NAME>_CRON values stop the start before anything runs.
    schedules = declared_schedules() if QueueName.MAINTENANCE in queues else None
    async with worker_runtime(settings, queues, catalog) as runtime:
        if schedules is not None:
            # The maintenance worker keeps the declared schedules in step (core/schedules.py).
            await sync_schedules(runtime.client, schedules, catalog=catalog)
        reconciler = Reconciler(
            runtime.client, runtime.tracker, settings.temporal_namespace, catalog
        )
        reconcile_task = asyncio.create_task(
            reconcile_loop(reconciler, runtime.interceptor, [q.value for q in runtime.workers]),
            name="reconcile",
        )
        run_tasks = {
            asyncio.create_task(w.run(), name=f"worker-{q.value}"): q
            for q, queue_workers in runtime.workers.items()
            for w in queue_workers.all()
        }
        log.info(
            "worker.ready",
            queues={q.value: catalog[q].concurrency for q in runtime.workers},
            startup_s=round(time.monotonic() - _PROCESS_START, 3),
            pid=os.getpid(),
        )
        stop_task: asyncio.Task[Any] = asyncio.create_task(stop.event.wait())
        done, _ = await asyncio.wait({stop_task, *run_tasks}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            crashed = run_tasks.get(task)
            if crashed is not None and task.exception() is not None:
                log.error("worker.crashed", queue=crashed.value, exc_info=task.exception())
                stop.request("worker crashed", exit_code=1)
        stop.request("worker finished")
        stop_task.cancel()

        await stop_gracefully(runtime, settings.worker_shutdown_grace_seconds)
        await asyncio.gather(*run_tasks, return_exceptions=True)
        reconcile_task.cancel()
        await asyncio.gather(reconcile_task, return_exceptions=True)
    log.info("worker.stopped", exit_code=stop.exit_code)
    return stop.exit_code


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    log.critical("worker.uncaught_exception", exc_info=(kind, value, tb))


# glibc mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
# Allocations above this are mmapped and handed back to the OS when freed.
_MALLOC_MMAP_BYTES = 128 * 1024


def _tune_malloc() -> None:
    """Keep glibc from holding on to freed memory, before any thread starts.

    glibc gives threads their own arenas (up to 8 per core), and its mmap threshold grows
    with every large block freed, so the SDK's threads and its transient payload buffers
    leave tens of MB of freed memory in the heap. Two arenas, and a fixed 128 KiB mmap and
    trim threshold (as MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
    MALLOC_TRIM_THRESHOLD_=131072 would): about 10 MB less peak RSS in the benchmark.
    Variables set in the environment take precedence.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for variable, parameter, value in (
        ("MALLOC_ARENA_MAX", _M_ARENA_MAX, 2),
        ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, _MALLOC_MMAP_BYTES),
        ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, _MALLOC_MMAP_BYTES),
    ):
        if variable not in os.environ:
            libc.mallopt(parameter, value)


def main(argv: Sequence[str] | None = None) -> int:
    _tune_malloc()
    queues = parse_queues(argv)
    try:
        settings = load_settings()
        load_catalog()
        declared_schedules()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runnable = [q for q in queues if q in implemented_queues()]
    if not runnable:
        served = ", ".join(q.value for q in implemented_queues())
        asked = ", ".join(q.value for q in queues)
        print(
            f"worker: no job type of queue {asked} is implemented yet, so there is nothing "
            f"to run; queues with job types: {served}",
            file=sys.stderr,
        )
        return EXIT_NOTHING_TO_RUN
    configure_logging(json_logs=settings.is_production, level=settings.log_level)
    sys.excepthook = _log_uncaught
    for queue in queues:
        if queue not in runnable:
            log.warning("worker.queue_skipped", queue=queue.value, reason="no job type implemented")
    try:
        return asyncio.run(run(runnable, settings))
    except ConfigError as exc:  # a setting only a queue's activities read (their builder)
        print(f"worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SchemaNotReady, DatabaseUnavailable, TemporalUnavailable) as exc:
        log.error("worker.start_failed", error=str(exc))
        print(f"worker: {exc}", file=sys.stderr)
        return EXIT_SCHEMA if isinstance(exc, SchemaNotReady) else EXIT_FAILED
    except Exception:
        log.critical("worker.start_failed", exc_info=True)
        return EXIT_FAILED


if __name__ == "__main__":
    exit_process(main())
