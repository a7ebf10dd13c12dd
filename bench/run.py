"""Benchmark: the jobs system against bare temporalio, on one dev server, for webhook jobs.

``python -m bench.run`` (about 5 minutes on 2 cores) or ``python -m bench.run --quick``
(about 1 minute, smoke test; does not touch BENCHMARKS.md unless ``--write``).

What it does, in one run on one dev server it starts itself (SQLite file in a temp dir, WAL):

1. ``get_all_queue_stats`` latency with an empty system.
2. Rounds of bare / ours (ABBA), each with its worker in a separate process started for the
   phase: pick-up latency at a light load, then a throughput run of N jobs with 32 enqueues in
   flight (enqueue latency under load, server and worker CPU seconds, worker peak RSS).
3. Enqueue latency idle (no worker running; ours interleaved with bare, one call at a time).
4. A backlog of waiting webhook jobs (queue paused, no worker) and stats latency over it.

Every job is a webhook delivery to a local receiver that answers 200 at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import redis
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.bare import BareJob, BareWebhookWorkflow
from bench.measure import (
    PROJECT_ROOT,
    Child,
    RssSampler,
    machine_busy_seconds,
    machine_facts,
    own_cpu_seconds,
    percentile,
    rss_mb,
    tree_cpu_seconds,
    vm_hwm_mb,
)
from bench.report import (
    PhaseResult,
    Results,
    render_markdown,
    render_table,
    write_benchmarks_md,
)
from client.queue import JobQueue
from core.config import load_settings
from core.logging import configure_logging, exit_process
from core.queues import DEFAULT_CATALOG, QueueName, load_catalog
from db.migrate import upgrade_database
from devtools.devserver import DevServer, temporal_cli_path
from devtools.scratch import create_postgres_database, drop_postgres_database
from emulators.webhook_receiver import WebhookReceiver
from worker import prepare_temporal

REDIS_URL = "redis://127.0.0.1:6379/0"
WEBHOOKS = QueueName.WEBHOOKS.value
CONCURRENCY = DEFAULT_CATALOG[QueueName.WEBHOOKS].concurrency

STATS_WARMUP = 20

Enqueue = Callable[[int], Awaitable[str]]


@dataclass(frozen=True)
class Plan:
    rounds: int  # ABBA: each round is one bare and one ours phase, order alternating
    throughput_jobs: int
    in_flight: int
    pickup_jobs: int  # per phase
    pickup_interval_s: float
    idle_calls: int  # per system
    idle_gap_s: float
    backlog_jobs: int
    backlog_budget_s: float
    stats_calls: int
    # One unmeasured phase of each system first: the very first jobs on an empty dev server
    # run faster than any later ones, which would favour whichever system went first.
    warm_up: bool = True
    # A steady CPU-bound load on one core (bench/burn.py) through every phase: the latency
    # of serial steps stretches on a busy host, and this is where it shows.
    busy: bool = False


FULL = Plan(
    # Three rounds (ABB AAB): run-to-run spread of one system is up to 10 %, the size of the
    # targets, so two would leave a verdict to chance.
    rounds=3,
    throughput_jobs=750,
    in_flight=32,
    pickup_jobs=100,
    pickup_interval_s=0.12,
    idle_calls=300,
    idle_gap_s=0.01,
    backlog_jobs=10_000,
    backlog_budget_s=240.0,
    stats_calls=1000,
)
QUICK = replace(
    FULL,
    rounds=1,
    throughput_jobs=150,
    pickup_jobs=30,
    idle_calls=50,
    backlog_jobs=1000,
    backlog_budget_s=30.0,
    stats_calls=100,
    warm_up=False,
)


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


# -- infrastructure ---------------------------------------------------------------------------


def create_database() -> tuple[str, str]:
    return create_postgres_database("bj_bench")


def drop_database(name: str) -> None:
    drop_postgres_database(name)


def delete_redis_keys(prefix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


def clean_up(
    children: list[Child],
    server: DevServer | None,
    db_name: str | None,
    prefix: str,
    tmp: Path,
    *,
    keep: bool,
) -> None:
    """Stop everything a benchmark started and delete its database, keys and files."""
    # Let the clean-up finish even if the signal is repeated.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for child in children:
        child.stop(timeout=10)
    if server is not None:
        server.stop()
    if db_name is not None:
        with contextlib.suppress(psycopg.Error):
            drop_database(db_name)
    with contextlib.suppress(redis.RedisError):
        delete_redis_keys(prefix)
    if keep:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def product_env(address: str, database_url: str, prefix: str) -> dict[str, str]:
    import base64

    return {
        "APP_ENV": "test",
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": "default",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": prefix,
        "DATABASE_URL": database_url,
        "PAYLOAD_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
    }


async def wait_polling(client: Client, task_queue: str, child: Child, timeout: float = 60) -> None:
    """Until the child's workflow and activity pollers are on the task queue."""
    identity = f"{child.pid}@"
    deadline = time.monotonic() + timeout
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    while True:
        if child.exited() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
        seen = 0
        for kind in kinds:
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=kind
                )
            )
            if any(p.identity.startswith(identity) for p in resp.pollers):
                seen += 1
        if seen == len(kinds):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name} not polling {task_queue}:\n{child.tail()}")
        await asyncio.sleep(0.2)


# -- the two systems --------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        plan: Plan,
        server: DevServer,
        env: dict[str, str],
        tmp: Path,
        children: list[Child],
    ) -> None:
        self.plan = plan
        self.server = server
        self.env = env
        self.tmp = tmp
        self.children = children
        self.run_id = uuid.uuid4().hex[:8]
        self.receiver = WebhookReceiver()
        self.queue: JobQueue | None = None
        self.bare: Client | None = None
        # Busy mode: the steady one-core load that runs through every phase.
        self.burner: Child | None = None

    def burner_cpu(self) -> float:
        return tree_cpu_seconds(self.burner.pid) if self.burner is not None else math.nan

    # enqueue functions ---------------------------------------------------------------------

    def job_data(self, path: str, i: int) -> dict[str, Any]:
        return {
            "user_id": f"bench-user-{i % 8}",
            "url": self.receiver.url(path),
            "event_type": "bench.ping",
            "payload": {"seq": i, "path": path},
            "secret": self.receiver.secret,
        }

    def ours(self, path: str) -> Enqueue:
        queue = self.queue
        assert queue is not None

        async def enqueue(i: int) -> str:
            job = await queue.add_job(WEBHOOKS, "webhook_delivery", self.job_data(path, i))
            return job.id

        return enqueue

    def bare_enqueue(self, path: str, task_queue: str) -> Enqueue:
        client = self.bare
        assert client is not None

        async def enqueue(i: int) -> str:
            data = self.job_data(path, i)
            workflow_id = f"bare-{uuid.uuid4().hex}"
            await client.start_workflow(
                BareWebhookWorkflow.run,
                BareJob(
                    user_id=data["user_id"],
                    url=data["url"],
                    event_type=data["event_type"],
                    secret=data["secret"],
                    payload=data["payload"],
                ),
                id=workflow_id,
                task_queue=task_queue,
            )
            return workflow_id

        return enqueue

    # completion checks ---------------------------------------------------------------------

    async def ours_fields(self, job_ids: list[str], name: str) -> list[str | None]:
        queue = self.queue
        assert queue is not None and queue.tracker is not None
        tracker = queue.tracker
        async with tracker.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(tracker.keys.job(job_id), name)
            values: list[str | None] = await pipe.execute()
        return values

    async def ours_done(self, job_ids: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = await self.ours_fields(job_ids, "state")
            left = sum(1 for s in states if s != "completed")
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{left} of {len(job_ids)} jobs not completed in Redis")
            await asyncio.sleep(0.1)

    async def bare_done(self, task_queue: str, expected: int, timeout: float = 120) -> None:
        client = self.bare
        assert client is not None
        deadline = time.monotonic() + timeout
        query = f'TaskQueue="{task_queue}" AND ExecutionStatus="Completed"'
        while True:
            count = (await client.count_workflows(query)).count
            if count >= expected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} of {expected} bare workflows completed")
            await asyncio.sleep(0.1)

    # measurement runs ----------------------------------------------------------------------

    async def enqueue_many(
        self, enqueue: Enqueue, n: int, in_flight: int, deadline: float | None = None
    ) -> tuple[list[str], list[float]]:
        """Enqueue up to n jobs with ``in_flight`` calls at a time: (ids, latencies in ms)."""
        numbers = iter(range(n))
        ids: list[str] = []
        latencies: list[float] = []

        async def lane() -> None:
            for i in numbers:
                if deadline is not None and time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                ids.append(await enqueue(i))
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(lane() for _ in range(in_flight)))
        return ids, latencies

    async def pickup(
        self, system: str, enqueue: Enqueue, path: str, worker: Child, task_queue: str
    ) -> tuple[list[float], float, float]:
        """Pick-up latency (ms) at a light load, one job every pickup_interval_s; with the
        server's and the worker's CPU seconds for these jobs (both systems at the same pace).
        """
        plan = self.plan
        sent: list[tuple[str, float]] = []
        server0 = tree_cpu_seconds(self.server.pid)
        worker0 = tree_cpu_seconds(worker.pid)
        start = time.perf_counter()
        for i in range(plan.pickup_jobs):
            t_ms = time.time() * 1000
            sent.append((await enqueue(i), t_ms))
            pause = start + (i + 1) * plan.pickup_interval_s - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
        requests = await self.receiver.wait_for_requests(path, plan.pickup_jobs, timeout=120)
        ids = [job_id for job_id, _ in sent]
        if system == "ours":
            await self.ours_done(ids)
        else:
            await self.bare_done(task_queue, plan.pickup_jobs)
        server_cpu = tree_cpu_seconds(self.server.pid) - server0
        worker_cpu = tree_cpu_seconds(worker.pid) - worker0
        if system == "ours":
            started = await self.ours_fields(ids, "started_at")
            latencies = [
                float(s) - t for (_, t), s in zip(sent, started, strict=True) if s is not None
            ]
        else:
            by_id = {r.headers["webhook-id"]: float(r.headers["x-started-at"]) for r in requests}
            latencies = [by_id[job_id] - t for job_id, t in sent if job_id in by_id]
        return latencies, server_cpu, worker_cpu

    async def throughput(
        self,
        system: str,
        enqueue: Enqueue,
        path: str,
        worker: Child,
        done: Callable[[list[str]], Awaitable[None]],
    ) -> tuple[PhaseResult, list[float]]:
        plan = self.plan
        n = plan.throughput_jobs
        server0 = tree_cpu_seconds(self.server.pid)
        worker0 = tree_cpu_seconds(worker.pid)
        bench0 = own_cpu_seconds()
        machine0 = machine_busy_seconds()
        burner0 = self.burner_cpu()
        t0 = time.perf_counter()
        arrived = asyncio.create_task(self.receiver.wait_for_requests(path, n, timeout=600))
        ids, latencies = await self.enqueue_many(enqueue, n, plan.in_flight)
        enqueue_s = time.perf_counter() - t0
        requests = await arrived
        seconds = time.perf_counter() - t0
        await done(ids)
        server_cpu = tree_cpu_seconds(self.server.pid) - server0
        worker_cpu = tree_cpu_seconds(worker.pid) - worker0
        bench_cpu = own_cpu_seconds() - bench0
        machine_cpu = machine_busy_seconds() - machine0
        burner_cpu = self.burner_cpu() - burner0
        distinct = {r.headers.get("webhook-id") for r in requests}
        result = PhaseResult(
            system=system,
            round=0,
            jobs=n,
            seconds=seconds,
            enqueue_seconds=enqueue_s,
            jobs_per_s=n / seconds,
            server_cpu_s=server_cpu,
            worker_cpu_s=worker_cpu,
            bench_cpu_s=bench_cpu,
            machine_cpu_s=machine_cpu,
            duplicates=len(requests) - len(distinct),
            rss_peak_mb=0.0,
            vm_hwm_mb=0.0,
            rss_ready_mb=0.0,
            worker_start_s=0.0,
            burner_cpu_s=burner_cpu,
        )
        return result, latencies

    async def phase(self, system: str, round_no: int) -> PhaseResult:
        assert self.queue is not None and self.bare is not None
        tag = f"{system}-{round_no}-{self.run_id}"
        if system == "ours":
            task_queue = WEBHOOKS
            args = [sys.executable, str(PROJECT_ROOT / "worker.py"), "--task-queue", WEBHOOKS]
            env = {**os.environ, **self.env}
        else:
            task_queue = f"bare-{tag}"
            args = [
                sys.executable,
                "-m",
                "bench.bare_worker",
                "--address",
                self.server.address,
                "--task-queue",
                task_queue,
                "--concurrency",
                str(CONCURRENCY),
            ]
            env = dict(os.environ)
        child = Child(f"{system}-worker-{round_no}", args, env, self.tmp / f"worker-{tag}.log")
        self.children.append(child)
        started = time.perf_counter()
        child.start()
        sampler: RssSampler | None = None
        sampling: asyncio.Task[None] | None = None
        try:
            client = self.queue.client if system == "ours" else self.bare
            await wait_polling(client, task_queue, child)
            worker_start = time.perf_counter() - started
            ready_rss = rss_mb(child.pid)
            sampler = RssSampler(child.pid)
            sampling = asyncio.create_task(sampler.run())

            pick_path = f"/{tag}/pickup"
            pick_enqueue = (
                self.ours(pick_path)
                if system == "ours"
                else self.bare_enqueue(pick_path, task_queue)
            )
            pickup, pick_server, pick_worker = await self.pickup(
                system, pick_enqueue, pick_path, child, task_queue
            )

            tp_path = f"/{tag}/throughput"
            expected = self.plan.pickup_jobs + self.plan.throughput_jobs

            async def done(ids: list[str]) -> None:
                if system == "ours":
                    await self.ours_done(ids)
                else:
                    await self.bare_done(task_queue, expected)

            tp_enqueue = (
                self.ours(tp_path) if system == "ours" else self.bare_enqueue(tp_path, task_queue)
            )
            result, latencies = await self.throughput(system, tp_enqueue, tp_path, child, done)
            hwm = vm_hwm_mb(child.pid)
        finally:
            if sampling is not None:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            await asyncio.to_thread(child.stop)
        result.round = round_no
        result.enqueue_ms = latencies
        result.pickup_ms = pickup
        result.paced_jobs = self.plan.pickup_jobs
        result.paced_server_cpu_s = pick_server
        result.paced_worker_cpu_s = pick_worker
        result.rss_peak_mb = sampler.peak_mb if sampler is not None else float("nan")
        result.vm_hwm_mb = hwm
        result.worker_start_s = worker_start
        result.rss_ready_mb = ready_rss
        return result

    async def stats_latency(self, calls: int) -> tuple[list[float], dict[str, Any]]:
        queue = self.queue
        assert queue is not None
        latencies: list[float] = []
        last: dict[str, Any] = {}
        for _ in range(STATS_WARMUP):  # connection set-up is not what is measured
            await queue.get_all_queue_stats()
        for _ in range(calls):
            t0 = time.perf_counter()
            last = await queue.get_all_queue_stats()
            latencies.append((time.perf_counter() - t0) * 1000)
        return latencies, last

    async def idle_enqueue(self) -> tuple[list[float], list[float]]:
        """One call at a time with no worker running, ours and bare interleaved."""
        ours = self.ours(f"/backlog-{self.run_id}")
        bare = self.bare_enqueue(f"/idle-{self.run_id}", f"bare-idle-{self.run_id}")
        ours_ms: list[float] = []
        bare_ms: list[float] = []
        for i in range(self.plan.idle_calls):
            order = [(ours, ours_ms), (bare, bare_ms)]
            if i % 2:
                order.reverse()
            for enqueue, out in order:
                t0 = time.perf_counter()
                await enqueue(i)
                out.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(self.plan.idle_gap_s)
        return ours_ms, bare_ms

    # the whole run -------------------------------------------------------------------------

    async def run_until_signalled(self, results: Results) -> None:
        """``run``, cancelled (so every finally block runs) on SIGTERM."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await self.run(results)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    async def run(self, results: Results) -> None:
        plan = self.plan
        settings = load_settings(dict(self.env))
        await self.receiver.start()
        if plan.busy:
            report = self.tmp / "burner.txt"
            self.burner = Child(
                "burner",
                [sys.executable, "-m", "bench.burn", "--core", "0", "--report", str(report)],
                dict(os.environ),
                self.tmp / "burner.log",
            )
            self.children.append(self.burner)
            self.burner.start()
        try:
            self.queue = await JobQueue.connect(settings)
            self.bare = await Client.connect(self.server.address, namespace="default")
            # What every worker does at start (namespace, search attributes, queue rate).
            await prepare_temporal(
                self.queue.client, settings, load_catalog({}), [QueueName.WEBHOOKS]
            )

            log(f"stats latency, empty system ({plan.stats_calls} calls)")
            results.stats_empty_ms, _ = await self.stats_latency(plan.stats_calls)

            if plan.warm_up:
                for system in ("bare", "ours"):
                    log(f"warm-up: {system} (not measured)")
                    await self.phase(system, 0)
            for round_no in range(1, plan.rounds + 1):
                # ABBA: the dev server's cost per job grows with its database over a run, so
                # alternating which system goes first keeps that drift out of the ratios.
                order = ("bare", "ours") if round_no % 2 else ("ours", "bare")
                for system in order:
                    log(f"round {round_no}: {system} (pick-up, then {plan.throughput_jobs} jobs)")
                    phase = await self.phase(system, round_no)
                    results.phases.append(phase)
                    log(
                        f"  {system}: {phase.jobs_per_s:.1f} jobs/s, "
                        f"server {phase.server_cpu_s:.1f} CPU-s, worker {phase.worker_cpu_s:.1f} "
                        f"CPU-s, pick-up p50 {percentile(phase.pickup_ms, 50):.1f} ms, "
                        f"RSS peak {max(phase.rss_peak_mb, phase.vm_hwm_mb):.0f} MB"
                    )

            assert self.queue is not None
            await self.queue.pause_queue(WEBHOOKS)
            log(f"idle enqueue latency ({plan.idle_calls} calls each, no worker, queue paused)")
            results.idle_ours_ms, results.idle_bare_ms = await self.idle_enqueue()

            remaining = plan.backlog_jobs - plan.idle_calls
            log(f"backlog: {remaining} more waiting webhook jobs, {plan.in_flight} in flight")
            t0 = time.perf_counter()
            ids, _ = await self.enqueue_many(
                self.ours(f"/backlog-{self.run_id}"),
                remaining,
                plan.in_flight,
                deadline=time.monotonic() + plan.backlog_budget_s,
            )
            results.backlog_fill_s = time.perf_counter() - t0
            results.backlog_added = len(ids) + plan.idle_calls
            results.backlog_fill_rate = len(ids) / results.backlog_fill_s
            log(
                f"  {results.backlog_added} waiting after {results.backlog_fill_s:.0f} s "
                f"({results.backlog_fill_rate:.0f} adds/s)"
            )
            log(f"stats latency, backlog ({plan.stats_calls} calls)")
            results.stats_backlog_ms, stats = await self.stats_latency(plan.stats_calls)
            results.backlog_waiting_seen = int(stats[WEBHOOKS]["waiting"])
            await self.queue.resume_queue(WEBHOOKS)
        finally:
            if self.burner is not None:
                await asyncio.to_thread(self.burner.stop)
                loops, seconds, cpu = (self.tmp / "burner.txt").read_text().split()
                results.burner_loops_per_s = int(loops) / float(seconds)
                results.burner_cpu_share = float(cpu) / float(seconds)
            if self.queue is not None:
                await self.queue.close()
            await self.receiver.stop()


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_mode(plan: Plan, opts: argparse.Namespace) -> Results | None:
    """One whole benchmark (its own dev server, database and keys); None if interrupted."""
    results = Results(
        mode=("quick" if opts.quick else "full") + (", busy" if plan.busy else ""),
        plan=asdict(plan),
        machine=machine_facts(temporal_cli_path()),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        load_before=os.getloadavg(),
        concurrency=CONCURRENCY,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bjbench-"))
    prefix = f"bjbench-{uuid.uuid4().hex[:12]}:"
    children: list[Child] = []
    db_name: str | None = None
    server: DevServer | None = None
    t_start = time.perf_counter()
    try:
        db_name, db_url = create_database()
        upgrade_database(db_url)
        db_file = tmp / "temporal.db"
        server = DevServer(headless=True, db_filename=str(db_file), log_path=tmp / "server.log")
        results.server_db = (
            f"SQLite file {db_file.name} in a temp dir, journal_mode=wal, synchronous=normal"
        )
        log(f"{results.mode}: dev server on {server.address} ({db_file})")
        server.start()
        env = product_env(server.address, db_url, prefix)
        bench = Bench(plan, server, env, tmp, children)
        asyncio.run(bench.run_until_signalled(results))
        results.total_s = time.perf_counter() - t_start
        results.load_after = os.getloadavg()
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; cleaning up")
        return None
    finally:
        clean_up(children, server, db_name, prefix, tmp, keep=opts.keep)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (~1 minute)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--busy", action="store_true", help="only the run beside a busy core")
    which.add_argument("--quiet", action="store_true", help="only the run on a quiet machine")
    parser.add_argument(
        "--write", action="store_true", help="write BENCHMARKS.md even with --quick"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument(
        "--rounds", type=int, help="bare/ours rounds (ABBA...); default 3 (1 with --quick)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    opts = parser.parse_args(argv)
    plan = QUICK if opts.quick else FULL
    if opts.rounds is not None:
        plan = replace(plan, rounds=max(1, opts.rounds))
    # A full run measures both modes; --quick only the quiet one unless asked for busy.
    modes = [True] if opts.busy else [False] if opts.quiet or opts.quick else [False, True]
    configure_logging(json_logs=False, level="WARNING")
    # Ctrl-C and SIGTERM both end the run cleanly (asyncio.run turns SIGINT into a cancel of
    # the main task; SIGTERM raises KeyboardInterrupt outside the loop). SIGINT is set
    # explicitly because a shell's background job starts with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)

    runs: list[Results] = []
    for busy in modes:
        results = run_mode(replace(plan, busy=busy), opts)
        if results is None:
            return 130
        print(render_table(results))
        runs.append(results)
    if opts.json is not None:
        opts.json.write_text(json.dumps([r.to_json() for r in runs], indent=2))
    if not opts.no_write and (not opts.quick or opts.write):
        path = PROJECT_ROOT / "BENCHMARKS.md"
        for results in runs:
            write_benchmarks_md(path, render_markdown(results), busy=bool(results.plan["busy"]))
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    exit_process(main())
