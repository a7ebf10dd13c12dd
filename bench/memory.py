"""Benchmark: one MEMORY_CLEANUP of 1,000,000 agent memory rows on PostgreSQL, with a reader
and a writer running beside it.

``python -m bench.memory`` (1,000,000 rows; writes BENCHMARKS.md) or ``--quick`` (100,000;
does not write unless ``--write``). One run (``bench/harness.py``) seeds a private database
with COPY (every third row expired, the rest live or expiring later), starts one
``worker.py --task-queue maintenance`` and adds one cleanup job. While it runs, this process
keeps a reader (``MemoryStore.get``) and a writer (``MemoryStore.put``) going on other
sessions' keys, and samples ``pg_stat_activity`` every 20 ms for the oldest open transaction
of the worker's connections. It measures rows scanned per second, the longest transaction
seen, the reader's and writer's p50 / p99 / max, and the worker's peak RSS. The bare floor is
the reader and writer alone, in the same run, before the cleanup.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.harness import Body, bench_main, start_worker
from bench.measure import (
    Child,
    markdown_table,
    percentile,
)
from bench.run import log
from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from db.memory import MemoryStore
from db.session import create_engine, create_sessionmaker
from tracking.store import JobState

MAINTENANCE = "maintenance"
START_MARK = "<!-- memory-bench:start -->"
END_MARK = "<!-- memory-bench:end -->"
TARGET_TXN_S = 1.0
TARGET_P99_S = 0.05


@dataclass
class Results:
    rows: int
    expired: int
    seed_s: float
    job_s: float
    result: dict[str, int]
    longest_txn_s: float
    reader: list[float]
    writer: list[float]
    reader_alone: list[float]
    writer_alone: list[float]
    worker_rss_peak_mb: float


def _conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def seed(database_url: str, rows: int) -> int:
    """COPY ``rows`` entries in; the number expired."""
    now = datetime.now(UTC)
    past, later = (now - timedelta(hours=1)).isoformat(), (now + timedelta(days=1)).isoformat()
    buffer = io.StringIO()
    expired = 0
    for i in range(rows):
        if i % 3 == 0:
            expires, expired = past, expired + 1
        else:
            expires = later if i % 2 else "\\N"
        buffer.write(
            f'u{i % 100}\ts{i % 1000}\ta{i % 10}\tk{i}\t{{"i": {i}}}\t{now.isoformat()}\t'
            f"{now.isoformat()}\t{expires}\n"
        )
    with psycopg.connect(_conninfo(database_url)) as conn, conn.cursor() as cursor:
        columns = (
            "user_id, session_id, agent_id, key, value, created_at, last_accessed_at, expires_at"
        )
        with cursor.copy(f"COPY agent_memories ({columns}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
        conn.commit()
        cursor.execute("ANALYZE agent_memories")
    return expired


async def _beside(store: MemoryStore, stop: asyncio.Event) -> tuple[list[float], list[float]]:
    """A reader and a writer on other sessions' keys until ``stop``: their latencies."""
    reads: list[float] = []
    writes: list[float] = []

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            await store.put(
                user_id="bench", session_id="live", agent_id="a", key=f"w{n % 500}", value=n
            )
            writes.append(time.perf_counter() - t0)
            n += 1
            await asyncio.sleep(0.01)

    async def reader() -> None:
        n = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            await store.get(user_id="u1", session_id=f"s{n % 1000}", agent_id="a1", key=f"k{n}")
            reads.append(time.perf_counter() - t0)
            n += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(writer(), reader())
    return reads, writes


async def _longest_transaction(database_url: str, stop: asyncio.Event) -> float:
    """The oldest open transaction of any session of the database (the cleanup's, the
    reader's, the writer's), sampled every 20 ms."""
    longest = 0.0
    async with await psycopg.AsyncConnection.connect(
        _conninfo(database_url), autocommit=True
    ) as conn:
        while not stop.is_set():
            cursor = await conn.execute(
                "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            row = await cursor.fetchone()
            longest = max(longest, float(row[0]) if row else 0.0)
            await asyncio.sleep(0.02)
    return longest


async def measure(rows: int, env: dict[str, str], tmp: Path, children: list[Child]) -> Results:
    env = {**env, "QUEUE_MAINTENANCE_RATE_PER_SECOND": "50", "LOG_LEVEL": "WARNING"}
    settings = load_settings(dict(env))
    log(f"seeding {rows:,} memory rows")
    t0 = time.perf_counter()
    expired = await asyncio.to_thread(seed, settings.database_url, rows)
    seed_s = time.perf_counter() - t0
    engine = create_engine(settings.database_url)
    store = MemoryStore(create_sessionmaker(engine))
    queue = await JobQueue.connect(settings)
    try:
        rss, sampling = await start_worker(MAINTENANCE, env, tmp, children, queue.client)
        log("reader and writer alone, 10 s")
        stop = asyncio.Event()
        alone = asyncio.create_task(_beside(store, stop))
        await asyncio.sleep(10)
        stop.set()
        reader_alone, writer_alone = await alone

        log("the cleanup, with the reader and writer beside it")
        stop = asyncio.Event()
        beside = asyncio.create_task(_beside(store, stop))
        watch = asyncio.create_task(_longest_transaction(settings.database_url, stop))
        t1 = time.perf_counter()
        job = await queue.add_job(MAINTENANCE, "memory_cleanup", {"options": {}})
        while True:
            info = await queue.get_job(job.id)
            if info.state in (JobState.COMPLETED, JobState.FAILED):
                break
            await asyncio.sleep(0.2)
        job_s = time.perf_counter() - t1
        stop.set()
        reader, writer = await beside
        longest = await watch
        sampling.cancel()
        if info.state is JobState.FAILED:
            raise RuntimeError(f"the cleanup failed: {info.failure_reason}")
        return Results(
            rows=rows,
            expired=expired,
            seed_s=seed_s,
            job_s=job_s,
            result=info.result,
            longest_txn_s=longest,
            reader=reader,
            writer=writer,
            reader_alone=reader_alone,
            writer_alone=writer_alone,
            worker_rss_peak_mb=rss.peak_mb,
        )
    finally:
        await queue.close()
        await engine.dispose()


def _ms(values: list[float]) -> str:
    return " / ".join(
        f"{q * 1000:.1f}" for q in (percentile(values, 50), percentile(values, 99), max(values))
    )


def render_markdown(r: Results, facts: dict[str, str], when: str) -> str:
    p99s = max(percentile(r.reader, 99), percentile(r.writer, 99))
    verdict_txn = "met" if r.longest_txn_s < TARGET_TXN_S else "missed"
    verdict_p99 = "met" if p99s < TARGET_P99_S else "missed"
    rows = [
        (
            "rows in the table / expired",
            f"{r.rows:,} / {r.expired:,} (seeded by COPY in {r.seed_s:.0f} s)",
        ),
        (
            "cleanup, add_job to the job's end",
            f"**{r.job_s:.1f} s, {r.rows / r.job_s:,.0f} rows scanned/s**",
        ),
        ("result", str(r.result)),
        (
            "longest open transaction of any session (sampled every 20 ms)",
            f"{r.longest_txn_s * 1000:.0f} ms",
        ),
        ("reader p50 / p99 / max during the cleanup, ms", _ms(r.reader)),
        ("writer p50 / p99 / max during the cleanup, ms", _ms(r.writer)),
        ("reader p50 / p99 / max alone (floor), ms", _ms(r.reader_alone)),
        ("writer p50 / p99 / max alone (floor), ms", _ms(r.writer_alone)),
        ("maintenance worker peak RSS", f"{r.worker_rss_peak_mb:.0f} MB"),
    ]
    return f"""{START_MARK}
## Memory cleanup

`make bench-memory` (`python -m bench.memory`), {when}, {facts.get("cpu", "")}: one maintenance
worker, PostgreSQL and the dev server on this machine; a reader and a writer on other sessions'
keys run beside the cleanup, one request every 10 ms each.

{markdown_table(("measure", "value"), rows)}

Targets: no transaction over {TARGET_TXN_S:.0f} s (**{verdict_txn}**); reader and writer p99 under
{TARGET_P99_S * 1000:.0f} ms during the cleanup (**{verdict_p99}**). Each chunk scans 1,000 ids by
primary key, deletes the expired among them and records its progress, all in one transaction.
{END_MARK}"""


def main(argv: list[str] | None = None) -> int:
    def body_for(rows: int, _quick: bool) -> Body[Results]:
        return lambda env, tmp, children: measure(rows, env, tmp, children)

    return bench_main(
        argv,
        prog="python -m bench.memory",
        description=__doc__,
        name="memory",
        title="Memory cleanup",
        marks=(START_MARK, END_MARK),
        size_option="rows",
        sizes=(1_000_000, 100_000),
        body_for=body_for,
        render=render_markdown,
    )


if __name__ == "__main__":
    exit_process(main())
