"""Benchmark: WORKFLOW_EXECUTION runs of 10 steps in real headless Chromium, against the same
steps run bare with Playwright.

``python -m bench.browser`` (20 runs of each kind; writes BENCHMARKS.md) or ``--quick`` (6;
does not write unless ``--write``). One run (``bench/harness.py``: private dev server,
database and Redis prefix) serves the fixture website in this process and runs one
``worker.py --task-queue workflow`` subprocess with local Chromium. It measures 20 jobs one
after another and 20 jobs added at once (at most 3 browsers at a time, FR-043): runs per
minute and each job's time from ``add_job`` to its end (p50, p99), the worker's peak RSS, and
the Chromium processes left afterwards (must be 0). The bare floor is the same 10 steps in
the same browser (launched, connected over CDP, closed per run) driven directly from this
process with a warm Playwright driver, one after another and 3 at a time; the overhead per
step is a job's time minus a bare run's, over 10.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from bench.harness import Body, bench_main, start_worker
from bench.measure import Child, markdown_table, percentile
from bench.run import log
from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from emulators import fixture_site
from emulators.server import serve
from integrations.browsers import LocalChromium, chromium_processes
from tracking.store import JobState

WORKFLOW = "workflow"
START_MARK = "<!-- browser-bench:start -->"
END_MARK = "<!-- browser-bench:end -->"
TARGET_STEP_OVERHEAD_MS = 50.0
STEPS = 10
CONCURRENT = 3


def bench_steps() -> list[dict[str, Any]]:
    return [
        {"action": "navigate", "url": "{{site}}/login"},
        {"action": "fill", "selector": "#name", "value": "{{name}}"},
        {"action": "fill", "selector": "#password", "value": "bench-password"},
        {"action": "click", "selector": "#submit"},
        {"action": "wait_for", "text": "Welcome"},
        {"action": "extract", "selector": "#greeting", "into": "greeting"},
        {"action": "navigate", "url": "{{site}}/table"},
        {"action": "extract", "selector": "#total", "into": "total"},
        {"action": "assert", "selector": "#products"},
        {"action": "screenshot"},
    ]


async def bare_run(driver: Any, chromium: LocalChromium, site: str) -> float:
    """The same steps, written straight against Playwright, in a browser of its own."""
    t0 = time.perf_counter()
    session = await chromium.open("bare")
    try:
        browser = await driver.chromium.connect_over_cdp(session.cdp_url)
        page = browser.contexts[0].pages[0]
        await page.goto(f"{site}/login", wait_until="load")
        await page.fill("#name", "Bench")
        await page.fill("#password", "bench-password")
        await page.click("#submit")
        await page.get_by_text("Welcome").first.wait_for(state="visible")
        await page.locator("#greeting").first.inner_text()
        await page.goto(f"{site}/table", wait_until="load")
        await page.locator("#total").first.inner_text()
        await page.locator("#products").first.wait_for(state="attached")
        await page.screenshot()
        await browser.close()
    finally:
        await chromium.release(session)
    return time.perf_counter() - t0


@dataclass
class Results:
    runs: int
    sequential_s: list[float]
    sequential_total_s: float
    concurrent_s: list[float]
    concurrent_total_s: float
    peak_sessions: int
    bare_s: list[float]
    bare_concurrent_total_s: float
    step_ms: list[float]
    worker_rss_peak_mb: float
    chromium_left: int

    def per_min(self, total_s: float) -> float:
        return self.runs / total_s * 60

    @property
    def overhead_per_step_ms(self) -> float:
        return (percentile(self.sequential_s, 50) - percentile(self.bare_s, 50)) * 1000 / STEPS


async def _wait(queue: JobQueue, job_id: str, t0: float) -> float:
    while True:
        info = await queue.get_job(job_id)
        if info.state in (JobState.COMPLETED, JobState.FAILED):
            if info.state is JobState.FAILED:
                raise RuntimeError(f"a browser job failed: {info.failure_reason}")
            return time.perf_counter() - t0
        await asyncio.sleep(0.02)


async def measure(runs: int, env: dict[str, str], tmp: Path, children: list[Child]) -> Results:
    site_state = fixture_site.SiteState()
    profiles = tmp / "profiles"
    profiles.mkdir()
    async with serve(fixture_site.create_app(site_state)) as site:
        env = {
            **env,
            "BROWSER_PROVIDER": "local",
            "BROWSER_PROFILES_DIR": str(profiles),
            "LOG_LEVEL": "WARNING",
        }
        settings = load_settings(dict(env))
        queue = await JobQueue.connect(settings)
        try:
            rss, sampling = await start_worker(WORKFLOW, env, tmp, children, queue.client)
            workflow_id = await queue.save_browser_workflow("bench-user", "bench", bench_steps())
            data = {
                "userId": "bench-user",
                "workflowId": workflow_id,
                "context": {"site": site, "name": "Bench"},
            }
            # One run first: it starts the worker's Playwright driver (about a second).
            warm = await queue.add_job(WORKFLOW, "workflow_execution", data)
            await _wait(queue, warm.id, time.perf_counter())

            log(f"{runs} runs of {STEPS} steps one after another")
            sequential: list[float] = []
            step_ms: list[float] = []
            t_all = time.perf_counter()
            for _ in range(runs):
                t0 = time.perf_counter()
                job = await queue.add_job(WORKFLOW, "workflow_execution", data)
                sequential.append(await _wait(queue, job.id, t0))
                info = await queue.get_job(job.id)
                execution = await queue.get_workflow_execution(info.result["execution_id"])
                step_ms.extend(float(step["duration_ms"]) for step in execution["steps"])
            sequential_total = time.perf_counter() - t_all

            log(f"{runs} runs added at once, {CONCURRENT} browsers at a time")
            peak = 0

            async def watch() -> None:
                nonlocal peak
                while True:
                    open_now = {_profile_of(pid) for pid in chromium_processes(str(profiles))} - {
                        ""
                    }
                    peak = max(peak, len(open_now))
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            t_all = time.perf_counter()
            starts = []
            for _ in range(runs):
                starts.append(
                    (await queue.add_job(WORKFLOW, "workflow_execution", data), time.perf_counter())
                )
            concurrent = await asyncio.gather(*(_wait(queue, job.id, t0) for job, t0 in starts))
            concurrent_total = time.perf_counter() - t_all
            watcher.cancel()
            sampling.cancel()
            await asyncio.sleep(1.0)
            left = len(chromium_processes(str(profiles)))

            log(f"bare floor: the same {STEPS} steps straight through Playwright")
            chromium = LocalChromium(settings.chromium_path, str(tmp / "bare-profiles"))
            bare: list[float] = []
            async with async_playwright() as driver:
                await bare_run(driver, chromium, site)  # warm
                for _ in range(runs):
                    bare.append(await bare_run(driver, chromium, site))
                gate = asyncio.Semaphore(CONCURRENT)

                async def gated() -> float:
                    async with gate:
                        return await bare_run(driver, chromium, site)

                t_all = time.perf_counter()
                await asyncio.gather(*(gated() for _ in range(runs)))
                bare_concurrent_total = time.perf_counter() - t_all
            return Results(
                runs=runs,
                sequential_s=sequential,
                sequential_total_s=sequential_total,
                concurrent_s=list(concurrent),
                concurrent_total_s=concurrent_total,
                peak_sessions=peak,
                bare_s=bare,
                bare_concurrent_total_s=bare_concurrent_total,
                step_ms=step_ms,
                worker_rss_peak_mb=rss.peak_mb,
                chromium_left=left,
            )
        finally:
            await queue.close()


def _profile_of(pid: int) -> str:
    # The browsers of one session share its profile directory; count sessions, not processes
    # ("" for a process that ended meanwhile).
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    for argument in arguments:
        if argument.startswith(b"--user-data-dir="):
            return argument.decode(errors="replace")
    return ""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _table(r: Results) -> str:
    seq, conc, bare = r.sequential_s, r.concurrent_s, r.bare_s
    rows = [
        (
            f"{r.runs} runs one after another",
            f"{r.per_min(r.sequential_total_s):.0f} runs/min; per run p50 "
            f"{_ms(percentile(seq, 50))}, p99 {_ms(percentile(seq, 99))}",
        ),
        (
            f"{r.runs} runs added at once ({CONCURRENT} browsers at a time)",
            f"{r.per_min(r.concurrent_total_s):.0f} runs/min; add to end p50 "
            f"{_ms(percentile(conc, 50))}, p99 {_ms(percentile(conc, 99))}",
        ),
        (
            f"bare, {CONCURRENT} at a time",
            f"{r.per_min(r.bare_concurrent_total_s):.0f} runs/min (ours: "
            f"{r.concurrent_total_s / r.bare_concurrent_total_s:.2f}x its time)",
        ),
        ("most browser sessions open at once", str(r.peak_sessions)),
        (
            "bare floor: the same steps straight through Playwright (a browser per run)",
            f"p50 {_ms(percentile(bare, 50))}, p99 {_ms(percentile(bare, 99))}",
        ),
        (
            "**overhead per step** (job p50 minus bare p50, over 10)",
            f"**{r.overhead_per_step_ms:.0f} ms**",
        ),
        (
            "a step inside the job (its own timing)",
            f"p50 {percentile(r.step_ms, 50):.0f} ms, p99 {percentile(r.step_ms, 99):.0f} ms",
        ),
        ("workflow worker peak RSS (without its browsers)", f"{r.worker_rss_peak_mb:.0f} MB"),
        ("Chromium processes left afterwards", f"**{r.chromium_left}**"),
    ]
    return markdown_table(("measure", "value"), rows)


def render_markdown(r: Results, facts: dict[str, str], when: str) -> str:
    verdict = "met" if r.overhead_per_step_ms < TARGET_STEP_OVERHEAD_MS else "missed"
    return f"""{START_MARK}
## Browser workflows

`make bench-browser` (`python -m bench.browser`), {when}, {facts.get("cpu", "")}: one workflow
worker with local headless Chromium (Debian's) and the fixture website on this machine;
{r.runs} runs of a {STEPS}-step workflow (sign in, wait, extract, navigate, assert, screenshot)
one after another, then {r.runs} added at once.

{_table(r)}

Overhead per step {r.overhead_per_step_ms:.0f} ms against the target of
{TARGET_STEP_OVERHEAD_MS:.0f} ms p50: **{verdict}**. A job's time beyond the bare run is its
workflow start, three activities (begin, run the steps, finish), the browser slot, one
database write per step (its result, and the screenshot) and a progress event per step.
{END_MARK}"""


def main(argv: list[str] | None = None) -> int:
    def body_for(runs: int, _quick: bool) -> Body[Results]:
        return lambda env, tmp, children: measure(runs, env, tmp, children)

    return bench_main(
        argv,
        prog="python -m bench.browser",
        description=__doc__,
        name="browser",
        title="Browser workflows",
        marks=(START_MARK, END_MARK),
        size_option="runs",
        sizes=(20, 6),
        body_for=body_for,
        render=render_markdown,
    )


if __name__ == "__main__":
    exit_process(main())
