"""Benchmark: one full EMAIL_SYNC of a large Gmail and a large Outlook mailbox.

``python -m bench.email_sync`` (20,000 messages per mailbox, writes BENCHMARKS.md) or
``python -m bench.email_sync --quick`` (2,000 messages, does not write unless ``--write``).

One run starts its own dev server (SQLite file in a temp dir), a private PostgreSQL database
(migrated), a private Redis key prefix, the Google and the Microsoft emulators each in a process
of its own (so they do not share an event loop with the worker or the measuring code), and one
worker subprocess for the ``email`` queue. For each provider in turn it connects one account,
adds one ``email_sync`` job and waits for it, measuring:

* wall time from ``add_job`` to the job's ``finished_at``, and messages per second;
* the worker's peak RSS (psutil, sampled every 100 ms while the job runs);
* CPU seconds (utime + stime) over the job of: the emulator process, the worker process tree,
  the dev server process tree, and the PostgreSQL backends connected to the private database;
  "outside the emulator" is (worker + server + PostgreSQL) / (that + emulator) CPU-seconds.

The mailboxes hold no important messages (no IMPORTANT label, no high importance, no keyword
subjects), so no draft jobs start and the Anthropic API is never called.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import psutil

from bench.measure import PROJECT_ROOT, Child, machine_facts, replace_section, tree_cpu_seconds
from bench.run import (
    clean_up,
    create_database,
    log,
    product_env,
    wait_polling,
)
from client.queue import JobQueue
from core.config import load_settings
from core.logging import configure_logging, exit_process
from core.queues import QueueName
from db.migrate import upgrade_database
from devtools.devserver import DevServer, temporal_cli_path
from tracking.store import JobState

EMAIL = QueueName.EMAIL.value
PROVIDERS = ("gmail", "outlook")
EMULATOR_OF = {"gmail": "google", "outlook": "microsoft"}
START_MARK = "<!-- email-bench:start -->"
END_MARK = "<!-- email-bench:end -->"
SYNC_TIMEOUT_S = 1800.0
PRD_P95_S = 120.0
AIM_S = 60.0
AIM_MESSAGES = 20_000


# -- the emulators, each served in a process of its own ----------------------------------------


async def _serve_emulator(kind: str, port: int, messages: int, address: str) -> None:
    """Serve one seeded emulator and print KEY=VALUE lines the benchmark reads."""
    from emulators import google, microsoft
    from emulators.endpoints import google_settings, microsoft_settings
    from emulators.server import serve

    lines: dict[str, str]
    if kind == "google":
        g = google.GoogleState()
        g.seed_mailbox(address, messages, important_every=0)
        access, refresh = g.issue_tokens(address)
        app = google.create_app(g)
        async with serve(app, port=port) as url:
            lines = google_settings(url)
            _print_ready(lines, access, refresh)
            await asyncio.Event().wait()
    else:
        m = microsoft.MicrosoftState()
        start = datetime.now(UTC) - timedelta(minutes=messages)
        m.seed_mailbox(address, messages, start=start, high_importance_every=0)
        access, refresh = m.issue_tokens(address)
        app = microsoft.create_app(m)
        async with serve(app, port=port) as url:
            lines = microsoft_settings(url)
            _print_ready(lines, access, refresh)
            await asyncio.Event().wait()


def _print_ready(lines: dict[str, str], access: str, refresh: str) -> None:
    for key, value in lines.items():
        print(f"{key}={value}")
    print(f"access_token={access}")
    print(f"refresh_token={refresh}")
    print("ready=1", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(child: Child, timeout: float = 300.0) -> dict[str, str]:
    """The KEY=VALUE lines an emulator child printed, once it printed ``ready=1``."""
    deadline = time.monotonic() + timeout
    while True:
        text = child.tail(100_000)
        if "ready=1" in text:
            return dict(
                line.split("=", 1) for line in text.splitlines() if re.match(r"^\w+=", line)
            )
        if child.exited() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name} not ready:\n{child.tail()}")
        await asyncio.sleep(0.1)


# -- measuring ---------------------------------------------------------------------------------


class PostgresCpu:
    """CPU seconds of the PostgreSQL backends connected to one database (found by the process
    title, re-scanned every second; the last reading of a backend that exits is kept)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.procs: dict[int, psutil.Process] = {}
        self.last: dict[int, float] = {}

    def scan(self) -> None:
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.pid in self.procs:
                continue
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if cmdline.startswith("postgres:") and f" {self.database} " in f"{cmdline} ":
                self.procs[proc.pid] = proc

    def read(self) -> None:
        for pid, proc in list(self.procs.items()):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                del self.procs[pid]
                continue
            self.last[pid] = t.user + t.system

    def total(self) -> float:
        self.scan()
        self.read()
        return sum(self.last.values())


class Sampler:
    """Every 100 ms: the worker's RSS; every second: the PostgreSQL backends' CPU."""

    def __init__(self, worker_pid: int, pg: PostgresCpu) -> None:
        self.worker_pid = worker_pid
        self.pg = pg
        self.peak_mb = 0.0
        self.samples = 0

    async def run(self) -> None:
        proc = psutil.Process(self.worker_pid)
        tick = 0
        while True:
            with contextlib.suppress(psutil.Error):
                rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / (
                    1024.0 * 1024.0
                )
                self.peak_mb = max(self.peak_mb, rss)
                self.samples += 1
            if tick % 10 == 0:
                self.pg.scan()
            self.pg.read()
            tick += 1
            await asyncio.sleep(0.1)


@dataclass
class SyncResult:
    provider: str
    messages: int
    fetched: int
    stored: int
    seconds: float
    rss_peak_mb: float
    rss_samples: int
    worker_cpu_s: float
    server_cpu_s: float
    postgres_cpu_s: float
    emulator_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.fetched / self.seconds if self.seconds > 0 else float("nan")

    @property
    def system_cpu_s(self) -> float:
        return self.worker_cpu_s + self.server_cpu_s + self.postgres_cpu_s

    @property
    def outside_share(self) -> float:
        total = self.system_cpu_s + self.emulator_cpu_s
        return self.system_cpu_s / total if total > 0 else float("nan")


# -- the run -----------------------------------------------------------------------------------


async def run_syncs(
    messages: int,
    server: DevServer,
    env: dict[str, str],
    tmp: Path,
    children: list[Child],
    db_name: str,
) -> list[SyncResult]:
    run_id = uuid.uuid4().hex[:8]
    addresses = {p: f"bench-{p}-{run_id}@example.com" for p in PROVIDERS}
    emulators: dict[str, Child] = {}
    for provider in PROVIDERS:
        kind = EMULATOR_OF[provider]
        child = Child(
            f"{kind}-emulator",
            [
                sys.executable,
                "-m",
                "bench.email_sync",
                "--serve-emulator",
                kind,
                "--port",
                str(free_port()),
                "--messages",
                str(messages),
                "--address",
                addresses[provider],
            ],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            tmp / f"{kind}.log",
        )
        children.append(child)
        child.start()
        emulators[provider] = child
    log(f"seeding two emulators with {messages} messages each")
    tokens: dict[str, tuple[str, str]] = {}
    provider_env: dict[str, str] = {
        # Never reached: no message is important, so no draft job runs.
        "ANTHROPIC_API_KEY": "sk-ant-unused",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    }
    for provider, child in emulators.items():
        printed = await wait_ready(child)
        tokens[provider] = (printed.pop("access_token"), printed.pop("refresh_token"))
        printed.pop("ready", None)
        provider_env.update(printed)

    env = {**env, **provider_env}
    settings = load_settings(dict(env))
    queue = await JobQueue.connect(settings)
    worker = Child(
        "email-worker",
        [sys.executable, str(PROJECT_ROOT / "worker.py"), "--task-queue", EMAIL],
        {**os.environ, **env},
        tmp / "worker.log",
    )
    children.append(worker)
    results: list[SyncResult] = []
    try:
        worker.start()
        await wait_polling(queue.client, EMAIL, worker)
        log(f"worker polling {EMAIL}")
        pg = PostgresCpu(db_name)
        for provider in PROVIDERS:
            access, refresh = tokens[provider]
            user = f"bench-user-{provider}-{run_id}"
            account_id = await queue.connect_email_account(
                user,
                provider,
                addresses[provider],
                access,
                refresh,
                datetime.now(UTC) + timedelta(hours=1),
            )
            emulator = emulators[provider]
            sampler = Sampler(worker.pid, pg)
            sampling = asyncio.create_task(sampler.run())
            try:
                emu0 = tree_cpu_seconds(emulator.pid)
                worker0 = tree_cpu_seconds(worker.pid)
                server0 = tree_cpu_seconds(server.pid)
                pg0 = pg.total()
                log(f"{provider}: full sync of {messages} messages")
                t0 = time.time()
                job = await queue.add_job(
                    EMAIL,
                    "email_sync",
                    {"userId": user, "accountId": account_id, "emailProvider": provider},
                )
                deadline = time.monotonic() + SYNC_TIMEOUT_S
                while True:
                    info = await queue.get_job(job.id)
                    if info.state in (JobState.COMPLETED, JobState.FAILED):
                        break
                    if worker.exited() is not None:
                        raise RuntimeError(f"worker exited:\n{worker.tail()}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{provider} sync not done in {SYNC_TIMEOUT_S} s")
                    await asyncio.sleep(0.1)
                t_seen = time.time()
                emu_cpu = tree_cpu_seconds(emulator.pid) - emu0
                worker_cpu = tree_cpu_seconds(worker.pid) - worker0
                server_cpu = tree_cpu_seconds(server.pid) - server0
                pg_cpu = pg.total() - pg0
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            if info.state is not JobState.COMPLETED:
                raise RuntimeError(f"{provider} sync failed: {info.failure_reason}")
            finished = info.finished_at.timestamp() if info.finished_at else t_seen
            result = SyncResult(
                provider=provider,
                messages=messages,
                fetched=int(info.result["fetched"]),
                stored=int(info.result["stored"]),
                seconds=max(finished - t0, 0.001),
                rss_peak_mb=sampler.peak_mb,
                rss_samples=sampler.samples,
                worker_cpu_s=worker_cpu,
                server_cpu_s=server_cpu,
                postgres_cpu_s=pg_cpu,
                emulator_cpu_s=emu_cpu,
            )
            if (result.fetched, result.stored) != (messages, messages):
                raise RuntimeError(f"{provider}: fetched/stored {result.fetched}/{result.stored}")
            log(
                f"  {provider}: {result.seconds:.1f} s, {result.per_s:.0f} msg/s, "
                f"RSS peak {result.rss_peak_mb:.0f} MB, outside emulator "
                f"{result.outside_share:.0%}"
            )
            results.append(result)
    finally:
        await queue.close()
    return results


# -- reporting ---------------------------------------------------------------------------------


def render_table(results: list[SyncResult]) -> str:
    head = (
        "| Provider | Messages | Wall (s) | Messages/s | Worker peak RSS (MB) "
        "| CPU-s worker / server / PostgreSQL | CPU-s emulator | Outside emulator |"
    )
    rows = [head, "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        rows.append(
            f"| {r.provider} | {r.messages:,} | {r.seconds:.1f} | {r.per_s:.0f} "
            f"| {r.rss_peak_mb:.0f} | {r.worker_cpu_s:.1f} / {r.server_cpu_s:.1f} / "
            f"{r.postgres_cpu_s:.1f} | {r.emulator_cpu_s:.1f} | {r.outside_share:.0%} |"
        )
    return "\n".join(rows)


def render_markdown(results: list[SyncResult], facts: dict[str, str], when: str) -> str:
    messages = results[0].messages if results else 0
    scaled = [r.seconds * AIM_MESSAGES / r.messages for r in results]
    verdict = ", ".join(
        f"{r.provider} {'meets' if r.seconds * AIM_MESSAGES / r.messages < AIM_S else 'misses'}"
        f" it" + ("" if r.messages == AIM_MESSAGES else f" (scaled: {s:.0f} s)")
        for r, s in zip(results, scaled, strict=True)
    )
    return f"""{START_MARK}
## Email sync

`python -m bench.email_sync` ({when}; {facts["nproc"]} cores, {facts["cpu"]}, Python
{facts["python"]}, temporalio {facts["temporalio"]}). One full `email_sync` job per provider,
{messages:,} messages each, run one after the other by one `email` worker subprocess against
the Gmail and Graph emulators, each served by a process of its own. A dev server (SQLite file),
a private PostgreSQL database and a private Redis key prefix are used for this run only. No
message is important, so no draft jobs run.

Targets (from the issue): PRD P95 sync time 120 s; aim: 20,000 messages in under 60 s
({verdict}).

{render_table(results)}

* Wall: from the `add_job` call to the job's `finished_at` (ms resolution). Messages/s is
  messages fetched / wall.
* Worker peak RSS: the worker process tree, sampled every 100 ms while its job ran.
* CPU-s are utime + stime over the job: the worker and dev server process trees, the
  PostgreSQL backends connected to the private database (not the shared checkpointer or WAL
  writer; Redis not counted), and the emulator process. "Outside emulator" is
  (worker + server + PostgreSQL) / (worker + server + PostgreSQL + emulator) CPU-seconds: the
  share of the CPU work that a real provider would not take off this machine. It is a CPU
  share, not a share of wall time; on 2 cores the emulator's CPU still competes with ours.
{END_MARK}"""


# -- entry point -------------------------------------------------------------------------------


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def _until_signalled(
    messages: int,
    server: DevServer,
    env: dict[str, str],
    tmp: Path,
    children: list[Child],
    db_name: str,
) -> list[SyncResult]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_syncs(messages, server, env, tmp, children, db_name)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.email_sync", description=__doc__)
    parser.add_argument("--messages", type=int, help="per mailbox; default 20000 (2000 --quick)")
    parser.add_argument("--quick", action="store_true", help="2,000 messages per mailbox")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md even if quick")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--serve-emulator", choices=["google", "microsoft"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--address", default="bench@example.com", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    messages = opts.messages or (2000 if opts.quick else AIM_MESSAGES)

    if opts.serve_emulator:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_emulator(opts.serve_emulator, opts.port, messages, opts.address))
        return 0

    configure_logging(json_logs=False, level="WARNING")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    facts = machine_facts(temporal_cli_path())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    tmp = Path(tempfile.mkdtemp(prefix="bjemailbench-"))
    prefix = f"bjemailbench-{uuid.uuid4().hex[:12]}:"
    children: list[Child] = []
    db_name: str | None = None
    server: DevServer | None = None
    try:
        db_name, db_url = create_database()
        upgrade_database(db_url)
        db_file = tmp / "temporal.db"
        server = DevServer(headless=True, db_filename=str(db_file), log_path=tmp / "server.log")
        server.start()
        log(f"dev server on {server.address} ({db_file})")
        env = product_env(server.address, db_url, prefix)
        results = asyncio.run(_until_signalled(messages, server, env, tmp, children, db_name))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; cleaning up")
        return 130
    finally:
        clean_up(children, server, db_name, prefix, tmp, keep=opts.keep)

    print(render_table(results))
    if not opts.no_write and (not opts.quick or opts.write):
        path = PROJECT_ROOT / "BENCHMARKS.md"
        replace_section(path, render_markdown(results, facts, when), START_MARK, END_MARK)
        log(f"wrote the Email sync section of {path}")
    return 0


if __name__ == "__main__":
    exit_process(main())
