"""Benchmark: VOICE_CALL jobs against the Vapi emulator.

``python -m bench.voice`` (100 calls in a burst, 30 spaced; writes BENCHMARKS.md) or
``python -m bench.voice --quick`` (20 and 10; does not write unless ``--write``).

One run starts its own dev server (SQLite file in a temp dir), a private PostgreSQL database
(migrated), a private Redis key prefix, the Vapi emulator and the HTTP API (which receives
the emulator's server messages) in this process, and one ``worker.py --task-queue voice``
subprocess. Calls ring for 0.05 s and talk for 0.3 s. Two phases:

* **burst**: all calls added at once; at most 3 are in flight (FR-041), so this measures
  calls per minute through the slot limit, and how long the last ones queue for a slot;
* **spaced**: one call a second, so a slot is always free; this measures the time from
  ``add_job`` returning to the emulator receiving ``POST /call`` (the PRD asks for 10 s,
  the issue for p99 under 2 s), against the **bare floor**: ``POST /call`` sent straight
  to the emulator by this process, in the same run.

Also the largest workflow history of any call job (bytes) and the worker's peak RSS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from api.app import create_app as create_api
from api.vapi import PATH as VAPI_MESSAGES_PATH
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
from emulators import vapi as emulator
from emulators.endpoints import vapi_settings
from emulators.server import serve
from tracking.store import JobState

VOICE = "voice"
START_MARK = "<!-- voice-bench:start -->"
END_MARK = "<!-- voice-bench:end -->"
SCRIPT = emulator.Script(ring_s=0.05, talk_s=0.3)
HISTORY_LIMIT_BYTES = 2 * 1024 * 1024
TARGET_P99_S = 2.0


@dataclass
class Results:
    burst_calls: int
    burst_s: float
    burst_max_in_flight: int
    burst_wait_p50_s: float
    burst_wait_max_s: float
    spaced_calls: int
    place_p50_s: float
    place_p99_s: float
    place_max_s: float
    bare_p50_s: float
    bare_p99_s: float
    largest_history_bytes: int
    worker_rss_peak_mb: float

    @property
    def calls_per_minute(self) -> float:
        return self.burst_calls / self.burst_s * 60


def _phone(n: int) -> str:
    return f"+1555{n:07d}"


async def _placed_delays(
    queue: JobQueue, state: emulator.VapiState, added: dict[str, float], timeout: float
) -> list[float]:
    """Wait for every job, then seconds from add_job to the emulator's create, per call."""
    deadline = time.monotonic() + timeout
    for job_id in added:
        while True:
            info = await queue.get_job(job_id)
            if info.state in (JobState.COMPLETED, JobState.FAILED):
                if info.state is JobState.FAILED:
                    raise RuntimeError(f"call job {job_id} failed: {info.failure_reason}")
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"call job {job_id} still {info.state.value}")
            await asyncio.sleep(0.2)
    created = {
        call.body["assistantOverrides"]["metadata"]["jobId"]: call.created_at
        for call in state.calls.values()
    }
    # Wall-clock seconds since the epoch on both sides (same machine, same clock).
    return [created[job_id].timestamp() - added[job_id] for job_id in added]


async def _add(queue: JobQueue, n: int, run: str) -> tuple[str, float]:
    job = await queue.add_job(
        VOICE,
        "voice_call",
        {
            "userId": "bench-user",
            "callId": f"bench-{run}-{n}",
            "phoneNumber": _phone(n),
            "metadata": {"campaignId": f"bench-{run}"},
        },
    )
    return job.id, datetime.now(UTC).timestamp()


async def measure(
    calls: int, spaced: int, env: dict[str, str], tmp: Path, children: list[Child]
) -> Results:
    state = emulator.VapiState(default=SCRIPT)
    async with serve(emulator.create_app(state)) as vapi_url:
        env = {**env, **vapi_settings(vapi_url), "LOG_LEVEL": "WARNING"}
        settings = load_settings(dict(env))
        async with serve(create_api(settings), lifespan="on") as api_url:
            state.server_url = api_url + VAPI_MESSAGES_PATH
            queue = await JobQueue.connect(settings)
            try:
                rss, sampling = await start_worker(VOICE, env, tmp, children, queue.client)
                run = uuid.uuid4().hex[:6]

                log(f"burst: {calls} calls at once")
                started = time.monotonic()
                added = dict(await asyncio.gather(*(_add(queue, n, run) for n in range(calls))))
                burst_waits = await _placed_delays(queue, state, added, timeout=600)
                burst_s = time.monotonic() - started
                burst_in_flight = state.max_in_flight
                job_ids = list(added)

                log(f"spaced: {spaced} calls, one a second")
                state.calls.clear()
                spaced_added: dict[str, float] = {}
                for n in range(spaced):
                    job_id, at = await _add(queue, calls + n, run)
                    spaced_added[job_id] = at
                    await asyncio.sleep(1.0)
                delays = await _placed_delays(queue, state, spaced_added, timeout=120)
                job_ids += list(spaced_added)

                log("bare floor: POST /call straight to the emulator")
                bare: list[float] = []
                async with httpx.AsyncClient(timeout=5) as http:
                    for n in range(spaced):
                        t0 = time.perf_counter()
                        answer = await http.post(
                            f"{vapi_url}/call",
                            headers={"Authorization": f"Bearer {emulator.DEFAULT_API_KEY}"},
                            json={
                                "assistantId": emulator.DEFAULT_ASSISTANT_ID,
                                "phoneNumberId": emulator.DEFAULT_PHONE_NUMBER_ID,
                                "customer": {"number": _phone(10_000 + n)},
                            },
                        )
                        answer.raise_for_status()
                        bare.append(time.perf_counter() - t0)
                        await asyncio.sleep(0.1)

                largest = 0
                for job_id in job_ids:
                    history = await queue.client.get_workflow_handle(job_id).fetch_history()
                    largest = max(largest, sum(event.ByteSize() for event in history.events))
                sampling.cancel()
                return Results(
                    burst_calls=calls,
                    burst_s=burst_s,
                    burst_max_in_flight=burst_in_flight,
                    burst_wait_p50_s=percentile(burst_waits, 50),
                    burst_wait_max_s=max(burst_waits),
                    spaced_calls=spaced,
                    place_p50_s=percentile(delays, 50),
                    place_p99_s=percentile(delays, 99),
                    place_max_s=max(delays),
                    bare_p50_s=percentile(bare, 50),
                    bare_p99_s=percentile(bare, 99),
                    largest_history_bytes=largest,
                    worker_rss_peak_mb=rss.peak_mb,
                )
            finally:
                await queue.close()


def _table(r: Results) -> str:
    rows = [
        (
            f"burst: {r.burst_calls} calls added at once",
            f"{r.burst_s:.1f} s, **{r.calls_per_minute:.0f} calls/min**",
        ),
        ("burst: most calls in flight at once (limit 3, FR-041)", str(r.burst_max_in_flight)),
        (
            "burst: add to placed, p50 / max (queued for a slot)",
            f"{r.burst_wait_p50_s:.2f} s / {r.burst_wait_max_s:.2f} s",
        ),
        (
            f"spaced: {r.spaced_calls} calls one a second, add to placed p50 / p99 / max",
            f"{r.place_p50_s * 1000:.0f} / {r.place_p99_s * 1000:.0f} / "
            f"{r.place_max_s * 1000:.0f} ms",
        ),
        (
            "bare floor: `POST /call` to the emulator, p50 / p99",
            f"{r.bare_p50_s * 1000:.1f} / {r.bare_p99_s * 1000:.1f} ms",
        ),
        (
            "largest history of any call job",
            f"{r.largest_history_bytes:,} bytes "
            f"({'under' if r.largest_history_bytes < HISTORY_LIMIT_BYTES else 'over'} 2 MB)",
        ),
        ("voice worker peak RSS", f"{r.worker_rss_peak_mb:.0f} MB"),
    ]
    return markdown_table(("measure", "value"), rows)


def render_markdown(r: Results, facts: dict[str, str], when: str) -> str:
    verdict = "met" if r.place_p99_s < TARGET_P99_S else "missed"
    return f"""{START_MARK}
## Voice calls

`make bench-voice` (`python -m bench.voice`), {when}, {facts.get("cpu", "")}: one voice worker,
the Vapi emulator (calls ring 0.05 s, talk 0.3 s) and the HTTP API receiving its server
messages, all on this machine.

{_table(r)}

Time to place a call with a slot free: p99 {r.place_p99_s:.2f} s against the target of
{TARGET_P99_S:.0f} s (PRD: 10 s): **{verdict}**. The burst rate is bounded by the three call
slots and, with calls this short, by the queue's server-side rate of 5 activities a second
(FR-041): every step counts against it, and a call takes about five (place, one or two checks,
finish, and the ask of each of the two jobs woken when its slot is given back), so about one
call a second. Real calls last minutes, so in production the three slots are the bound; the
rate only binds for calls shorter than a few seconds, like the emulator's.
{END_MARK}"""


def main(argv: list[str] | None = None) -> int:
    def body_for(calls: int, quick: bool) -> Body[Results]:
        spaced = 10 if quick else 30
        return lambda env, tmp, children: measure(calls, spaced, env, tmp, children)

    return bench_main(
        argv,
        prog="python -m bench.voice",
        description=__doc__,
        name="voice",
        title="Voice calls",
        marks=(START_MARK, END_MARK),
        size_option="calls",
        sizes=(100, 20),
        body_for=body_for,
        render=render_markdown,
    )


if __name__ == "__main__":
    exit_process(main())
