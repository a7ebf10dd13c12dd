"""Benchmark: one LEAD_ENRICHMENT job of 10,000 leads against the Apify emulator.

``python -m bench.enrichment`` (10,000 leads; writes BENCHMARKS.md) or ``--quick`` (1,000;
does not write unless ``--write``). One run (``bench/harness.py``: private dev server,
database and Redis prefix) serves the Apify emulator, answering at once, in this process and
runs one ``worker.py --task-queue enrichment`` subprocess. It measures ``add_job`` for the
whole import (the leads are stored then), the time from ``add_job`` to the job's end and
leads per second, the largest history of any run of the job (it continues as new), and the
worker's peak RSS. The bare floor is the emulator itself: the same number of actor runs
(start, then read the items) sent straight from this process, one after another.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import Body, bench_main, start_worker
from bench.measure import (
    Child,
    markdown_table,
)
from bench.run import log
from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from emulators import apify as emulator
from emulators.endpoints import apify_settings
from emulators.server import serve
from integrations.apify import ApifyClient
from tracking.store import JobState

ENRICHMENT = "enrichment"
START_MARK = "<!-- enrichment-bench:start -->"
END_MARK = "<!-- enrichment-bench:end -->"
TARGET_S = 120.0
HISTORY_LIMIT_BYTES = 2 * 1024 * 1024
BATCH_SIZE = 5


@dataclass
class Results:
    leads: int
    add_s: float
    job_s: float
    runs: int
    largest_history_bytes: int
    worker_rss_peak_mb: float
    bare_s: float
    summary: dict[str, int]

    @property
    def leads_per_s(self) -> float:
        return self.leads / self.job_s


async def measure(count: int, env: dict[str, str], tmp: Path, children: list[Child]) -> Results:
    state = emulator.ApifyState()
    async with serve(emulator.create_app(state)) as apify_url:
        env = {**env, **apify_settings(apify_url), "LOG_LEVEL": "WARNING"}
        settings = load_settings(dict(env))
        queue = await JobQueue.connect(settings)
        try:
            rss, sampling = await start_worker(ENRICHMENT, env, tmp, children, queue.client)
            tag = uuid.uuid4().hex[:6]
            leads = [{"id": f"{tag}-{n}", "email": f"lead{n}@acme.io"} for n in range(count)]
            log(f"one job of {count} leads, batches of {BATCH_SIZE}")
            t0 = time.perf_counter()
            job = await queue.add_job(
                ENRICHMENT,
                "lead_enrichment",
                {"userId": "bench-user", "leads": leads, "batchSize": BATCH_SIZE},
            )
            add_s = time.perf_counter() - t0
            while True:
                info = await queue.get_job(job.id)
                if info.state in (JobState.COMPLETED, JobState.FAILED):
                    break
                await asyncio.sleep(0.2)
            job_s = time.perf_counter() - t0
            sampling.cancel()
            if info.state is JobState.FAILED:
                raise RuntimeError(f"the enrichment job failed: {info.failure_reason}")
            runs, largest = 0, 0
            async for execution in queue.client.list_workflows(f'WorkflowId="{job.id}"'):
                runs += 1
                handle = queue.client.get_workflow_handle(job.id, run_id=execution.run_id)
                history = await handle.fetch_history()
                largest = max(largest, sum(event.ByteSize() for event in history.events))

            log("bare floor: the same actor runs sent straight to the emulator")
            async with httpx.AsyncClient(timeout=10) as http:
                client = ApifyClient(http, base_url=apify_url, token=emulator.DEFAULT_TOKEN)
                t1 = time.perf_counter()
                for first in range(0, count, BATCH_SIZE):
                    run = await client.start_run(
                        emulator.DEFAULT_ACTOR_ID, {"leads": leads[first : first + BATCH_SIZE]}
                    )
                    assert run.dataset_id is not None
                    await client.all_items(run.dataset_id)
                bare_s = time.perf_counter() - t1
            return Results(
                leads=count,
                add_s=add_s,
                job_s=job_s,
                runs=runs,
                largest_history_bytes=largest,
                worker_rss_peak_mb=rss.peak_mb,
                bare_s=bare_s,
                summary=info.result,
            )
        finally:
            await queue.close()


def _table(r: Results) -> str:
    history = "under" if r.largest_history_bytes < HISTORY_LIMIT_BYTES else "over"
    rows = [
        ("`add_job` of the whole import (the leads are stored)", f"{r.add_s:.2f} s"),
        ("`add_job` to the job's end", f"**{r.job_s:.1f} s, {r.leads_per_s:.0f} leads/s**"),
        (
            "bare floor: the same actor runs sent straight to the emulator",
            f"{r.bare_s:.1f} s ({r.leads / r.bare_s:.0f} leads/s)",
        ),
        ("our time over the floor", f"{r.job_s / r.bare_s:.2f}x"),
        ("runs of the job (continue-as-new)", str(r.runs)),
        ("largest history of any run", f"{r.largest_history_bytes:,} bytes ({history} 2 MB)"),
        ("enrichment worker peak RSS", f"{r.worker_rss_peak_mb:.0f} MB"),
        ("summary", str(r.summary)),
    ]
    return markdown_table(("measure", "value"), rows)


def render_markdown(r: Results, facts: dict[str, str], when: str) -> str:
    verdict = "met" if r.job_s < TARGET_S else "missed"
    return f"""{START_MARK}
## Lead enrichment

`make bench-enrichment` (`python -m bench.enrichment`), {when}, {facts.get("cpu", "")}: one
enrichment worker and the Apify emulator (answering at once) on this machine; one job of
{r.leads:,} leads in batches of {BATCH_SIZE} ({r.leads // BATCH_SIZE:,} actor runs).

{_table(r)}

{r.leads:,} leads in {r.job_s:.0f} s against the target of {TARGET_S:.0f} s: **{verdict}**.
Beyond the floor, each batch costs a database read of its leads (one per slice of 1,000), an
upsert of its outcomes and a heartbeat; each slice of 1,000 leads is one activity.
{END_MARK}"""


def main(argv: list[str] | None = None) -> int:
    def body_for(count: int, _quick: bool) -> Body[Results]:
        return lambda env, tmp, children: measure(count, env, tmp, children)

    return bench_main(
        argv,
        prog="python -m bench.enrichment",
        description=__doc__,
        name="enrichment",
        title="Lead enrichment",
        marks=(START_MARK, END_MARK),
        size_option="leads",
        sizes=(10_000, 1000),
        body_for=body_for,
        render=render_markdown,
    )


if __name__ == "__main__":
    exit_process(main())
