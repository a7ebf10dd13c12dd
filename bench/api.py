"""Benchmark: the HTTP API under load, each figure beside a bare baseline of the same run.

``python -m bench.api`` (writes BENCHMARKS.md) or ``--quick`` (smaller; does not write unless
``--write``). One run (``bench/harness.py``: private dev server, database and Redis prefix)
starts ``python -m api`` as a subprocess and measures from this process:

- ``GET /v1/queues/stats`` with 100 concurrent clients (an operator key, every queue's
  counts from Redis): p50 and p99; the baseline is ``GET /healthz`` of the same server under
  the same load (the HTTP stack alone: no key, no Redis).
- Progress to SSE: a job's progress written the way a worker's ``report_progress`` writes it
  (the tracking script on Redis), to the moment an SSE client of the API reads the event:
  p50 and p99; the baseline is a bare ``XREAD BLOCK`` on the same stream.
- 1,000 SSE connections held open at once, one per job: the API process's RSS and CPU while
  they are held and while 100 of their jobs report progress every second.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis.asyncio as aioredis

from bench.harness import Body, bench_main
from bench.measure import Child, markdown_table, percentile, rss_mb
from bench.run import log
from core.config import load_settings
from core.logging import exit_process
from core.queues import load_catalog
from db.api_keys import ApiKeyStore
from db.session import create_engine, create_sessionmaker
from tracking.store import JobState, JobTracker, Transition

START_MARK = "<!-- api-bench:start -->"
END_MARK = "<!-- api-bench:end -->"
CLIENTS = 100
# Each client asks this often (a dashboard polls every second or two; 100 of them every
# half second is 200 requests a second).
POLL_S = 0.5
TARGET_STATS_P99_MS = 20.0
TARGET_SSE_P99_MS = 50.0
TARGET_SSE_RSS_MB = 300.0


@dataclass
class Results:
    requests: int
    stats_ms: list[float]
    healthz_ms: list[float]
    stats_rps: float
    healthz_rps: float
    sse_ms: list[float]
    bare_sse_ms: list[float]
    connections: int
    rss_idle_mb: float
    rss_held_mb: float
    cpu_held_pct: float
    cpu_busy_pct: float


async def _load(
    http: httpx.AsyncClient, path: str, total: int, headers: dict[str, str], every_s: float
) -> tuple[list[float], float]:
    """``total`` GETs of ``path`` by CLIENTS concurrent clients, each asking every
    ``every_s`` seconds (0: as fast as it can); each request's latency (ms) and the
    requests answered per second."""
    latencies: list[float] = []
    per_client = total // CLIENTS

    async def client(n: int) -> None:
        if every_s:
            await asyncio.sleep(every_s * n / CLIENTS)  # spread the clients over the period
        for _ in range(per_client):
            t0 = time.perf_counter()
            answer = await http.get(path, headers=headers)
            latencies.append((time.perf_counter() - t0) * 1000)
            answer.raise_for_status()
            if every_s:
                await asyncio.sleep(max(0.0, every_s - (time.perf_counter() - t0)))

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return latencies, len(latencies) / (time.perf_counter() - started)


async def _add_job(tracker: JobTracker, job_id: str) -> None:
    await tracker.apply(
        Transition(
            job_id=job_id,
            queue="webhooks",
            state=JobState.ACTIVE,
            event="started",
            fields={"type": "webhook_delivery"},
            mode="add",
        )
    )


async def _progress(tracker: JobTracker, job_id: str, percent: int) -> None:
    # What report_progress does in a worker (tracking.progress._progress).
    await tracker.apply(
        Transition(
            job_id=job_id,
            queue="webhooks",
            state=None,
            event="progress",
            fields={"progress": percent},
        )
    )


async def _sse_latency(
    http: httpx.AsyncClient, tracker: JobTracker, headers: dict[str, str], samples: int
) -> list[float]:
    job_id = f"bench-sse-{os.getpid()}"
    await _add_job(tracker, job_id)
    latencies: list[float] = []
    sent: dict[int, float] = {}
    arrived = asyncio.Event()

    async def reader() -> None:
        async with http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None
        ) as answer:
            async for line in answer.aiter_lines():
                if line.startswith("data: ") and '"progress"' in line:
                    percent = int(line.split('"progress": "')[1].split('"')[0])
                    if percent in sent:
                        latencies.append((time.perf_counter() - sent.pop(percent)) * 1000)
                        arrived.set()

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.5)  # the stream is open and following
    for n in range(samples):
        arrived.clear()
        sent[n % 100] = time.perf_counter()
        await _progress(tracker, job_id, n % 100)
        await asyncio.wait_for(arrived.wait(), 5)
        await asyncio.sleep(0.01)
    task.cancel()
    return latencies


async def _bare_sse_latency(
    redis: aioredis.Redis, tracker: JobTracker, samples: int
) -> list[float]:
    job_id = f"bench-bare-{os.getpid()}"
    await _add_job(tracker, job_id)
    key = tracker.keys.events(job_id)
    last = "$"
    latencies = []
    for n in range(samples):
        read: asyncio.Task[Any] = asyncio.create_task(_xread(redis, key, last))
        await asyncio.sleep(0.005)  # the XREAD is blocking
        t0 = time.perf_counter()
        await _progress(tracker, job_id, n % 100)
        answer: Any = await read
        latencies.append((time.perf_counter() - t0) * 1000)
        last = answer[0][1][-1][0]
    return latencies


async def _xread(redis: aioredis.Redis, key: str, last: str) -> Any:
    return await redis.xread({key: last}, block=5000, count=1)


async def _held(
    url: str, tracker: JobTracker, headers: dict[str, str], count: int, api_pid: int
) -> tuple[float, float, float, float]:
    """RSS before and with ``count`` streams open, and CPU % while held and while busy."""
    process = psutil.Process(api_pid)
    rss_idle = rss_mb(api_pid)
    jobs = [f"bench-held-{os.getpid()}-{i}" for i in range(count)]
    for job_id in jobs:
        await _add_job(tracker, job_id)
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=None) as http:
        opened = 0
        all_open = asyncio.Event()

        async def hold(job_id: str) -> None:
            nonlocal opened
            async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as answer:
                opened += 1
                if opened == count:
                    all_open.set()
                async for _ in answer.aiter_lines():
                    pass

        tasks = [asyncio.create_task(hold(job_id)) for job_id in jobs]
        await asyncio.wait_for(all_open.wait(), 120)
        await asyncio.sleep(2.0)
        rss_held = rss_mb(api_pid)
        cpu0 = process.cpu_times()
        await asyncio.sleep(5.0)
        cpu1 = process.cpu_times()
        held_pct = ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / 5.0 * 100
        for second in range(5):
            await asyncio.gather(*(_progress(tracker, job_id, second) for job_id in jobs[:100]))
            await asyncio.sleep(1.0)
        cpu2 = process.cpu_times()
        busy_pct = ((cpu2.user + cpu2.system) - (cpu1.user + cpu1.system)) / 5.0 * 100
        rss_held = max(rss_held, rss_mb(api_pid))
        for task in tasks:
            task.cancel()
    return rss_idle, rss_held, held_pct, busy_pct


async def measure(size: int, env: dict[str, str], tmp: Path, children: list[Child]) -> Results:
    settings = load_settings(dict(env))
    engine = create_engine(settings.database_url)
    _, key = await ApiKeyStore(create_sessionmaker(engine)).create("bench-ops", "operator")
    await engine.dispose()
    port = 18_000 + os.getpid() % 1000
    api = Child(
        "api",
        [sys.executable, "-m", "api", "--port", str(port)],
        {**os.environ, **env, "LOG_LEVEL": "WARNING"},
        tmp / "api.log",
    )
    children.append(api)
    api.start()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    redis = aioredis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
    tracker = JobTracker(redis, load_catalog({}), settings.redis_key_prefix)
    limits = httpx.Limits(max_connections=CLIENTS + 10)
    try:
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if api.exited() is not None:
                    raise RuntimeError(f"the API exited:\n{api.tail()}")
                await asyncio.sleep(0.1)
            requests = size
            log(f"stats and healthz: {CLIENTS} clients asking every {POLL_S} s, then flat out")
            await _load(http, "/v1/queues/stats", 1000, headers, 0)  # warm-up
            stats: list[float] = []
            healthz: list[float] = []
            for _ in range(2):  # interleaved, so a noisy moment hits both
                stats += (await _load(http, "/v1/queues/stats", requests // 2, headers, POLL_S))[0]
                healthz += (await _load(http, "/healthz", requests // 2, {}, POLL_S))[0]
            _, stats_rps = await _load(http, "/v1/queues/stats", 2000, headers, 0)
            _, healthz_rps = await _load(http, "/healthz", 2000, {}, 0)
            log("progress to SSE, and the bare XREAD")
            sse = await _sse_latency(http, tracker, headers, 200)
            bare = await _bare_sse_latency(redis, tracker, 200)
        connections = 1000 if size >= 4000 else 200
        log(f"{connections} SSE connections held")
        rss_idle, rss_held, held_pct, busy_pct = await _held(
            url, tracker, headers, connections, api.pid
        )
    finally:
        await redis.aclose()
    return Results(
        requests=len(stats),
        stats_ms=stats,
        healthz_ms=healthz,
        stats_rps=stats_rps,
        healthz_rps=healthz_rps,
        sse_ms=sse,
        bare_sse_ms=bare,
        connections=connections,
        rss_idle_mb=rss_idle,
        rss_held_mb=rss_held,
        cpu_held_pct=held_pct,
        cpu_busy_pct=busy_pct,
    )


def _p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f} ms"


def render_markdown(r: Results, facts: dict[str, str], when: str) -> str:
    stats99, sse99 = percentile(r.stats_ms, 99), percentile(r.sse_ms, 99)
    rows = [
        (
            f"`GET /v1/queues/stats`, {CLIENTS} concurrent clients each asking every "
            f"{POLL_S} s ({r.requests:,} requests)",
            f"p50 {_p(r.stats_ms, 50)}, **p99 {_p(r.stats_ms, 99)}**",
        ),
        (
            "bare: `GET /healthz` of the same server, same load",
            f"p50 {_p(r.healthz_ms, 50)}, p99 {_p(r.healthz_ms, 99)} (stats p99: "
            f"{stats99 / percentile(r.healthz_ms, 99):.2f}x)",
        ),
        (
            f"flat out, {CLIENTS} clients with no pause: requests answered per second",
            f"stats {r.stats_rps:,.0f}/s; healthz {r.healthz_rps:,.0f}/s "
            f"(stats: {r.stats_rps / r.healthz_rps:.2f}x)",
        ),
        (
            "progress written to the job's log -> read by an SSE client of the API",
            f"p50 {_p(r.sse_ms, 50)}, **p99 {_p(r.sse_ms, 99)}**",
        ),
        (
            "bare: the same write -> a blocking XREAD on the stream",
            f"p50 {_p(r.bare_sse_ms, 50)}, p99 {_p(r.bare_sse_ms, 99)}",
        ),
        (
            f"API process RSS, idle -> {r.connections:,} SSE streams open",
            f"{r.rss_idle_mb:.0f} MB -> **{r.rss_held_mb:.0f} MB**",
        ),
        (
            f"API CPU with {r.connections:,} streams held; with 100 of them reporting 1/s",
            f"{r.cpu_held_pct:.1f} %; {r.cpu_busy_pct:.1f} % of one core",
        ),
    ]
    verdicts = (
        f"stats p99 {stats99:.1f} ms against {TARGET_STATS_P99_MS:.0f} ms: "
        f"**{'met' if stats99 < TARGET_STATS_P99_MS else 'missed'}**; progress to SSE p99 "
        f"{sse99:.1f} ms against {TARGET_SSE_P99_MS:.0f} ms: "
        f"**{'met' if sse99 < TARGET_SSE_P99_MS else 'missed'}**; {r.connections:,} streams in "
        f"{r.rss_held_mb:.0f} MB against {TARGET_SSE_RSS_MB:.0f} MB: "
        f"**{'met' if r.rss_held_mb < TARGET_SSE_RSS_MB else 'missed'}**"
    )
    return f"""{START_MARK}
## HTTP API

`make bench-api` (`python -m bench.api`), {when}, {facts.get("cpu", "")}: one `python -m api`
process, the clients in the benchmark's process on the same machine (both share its 2 cores;
the clients' own HTTP work is in every latency). Flat out, a latency is mostly the wait in
line behind the other 99 clients, which is why the paced run gives the figures.

{markdown_table(("measure", "value"), rows)}

Targets: {verdicts}. The bare endpoint's p99 ({percentile(r.healthz_ms, 99):.0f} ms) is the
floor of this host under this load (clients and server on the same 2 cores, tails from
whichever process the scheduler runs); the stats route's p99 is {
        stats99 / percentile(r.healthz_ms, 99):.2f}x it.
{END_MARK}"""


def main(argv: list[str] | None = None) -> int:
    def body_for(size: int, _quick: bool) -> Body[Results]:
        return lambda env, tmp, children: measure(size, env, tmp, children)

    return bench_main(
        argv,
        prog="python -m bench.api",
        description=__doc__,
        name="api",
        title="HTTP API",
        marks=(START_MARK, END_MARK),
        size_option="requests",
        sizes=(6_000, 1_000),
        body_for=body_for,
        render=render_markdown,
    )


if __name__ == "__main__":
    exit_process(main())
