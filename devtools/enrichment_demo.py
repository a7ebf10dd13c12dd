"""The enrichment part of ``make run``: an emulated Apify on loopback and one demo import of
40 leads (two the actor finds nothing for, one with nothing to look up), so a new user sees
a LEAD_ENRICHMENT job's progress, summary and per-lead results with no credentials.

``devtools.run`` starts this process and points the workers at it (only when no real Apify is
configured).
"""

from __future__ import annotations

import contextlib
import uuid

from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from devtools.demo_support import demo_main, stop_on_signals, wait_finished
from emulators import apify as apify_emulator
from emulators.endpoints import apify_settings
from emulators.server import serve

APIFY_PORT = 8305
DEMO_USER = "demo-user"


def demo_environment() -> dict[str, str]:
    """Settings that point the workers at the demo Apify."""
    return apify_settings(f"http://127.0.0.1:{APIFY_PORT}")


def demo_leads(tag: str) -> list[dict[str, str]]:
    leads = [{"id": f"demo-{tag}-{n}", "email": f"person{n}@example.com"} for n in range(40)]
    leads[7]["email"] = "fail.unknown@example.com"
    leads[21]["email"] = "fail.bounced@example.com"
    leads[30] = {"id": f"demo-{tag}-30"}
    return leads


async def run_demo() -> None:
    settings = load_settings()
    # A little latency per actor run, so the job's progress can be watched.
    state = apify_emulator.ApifyState(run_s=0.2)
    stop = stop_on_signals()
    async with serve(apify_emulator.create_app(state), port=APIFY_PORT):
        print(f"apify emulator on :{APIFY_PORT}", flush=True)
        queue = await JobQueue.connect(settings)
        try:
            job = await queue.add_job(
                "enrichment",
                "lead_enrichment",
                {"userId": DEMO_USER, "leads": demo_leads(uuid.uuid4().hex[:6])},
            )
            print(f"demo enrichment of 40 leads: job {job.id}", flush=True)
            info = await wait_finished(queue, job.id)
            if info is not None:
                print(f"demo enrichment {info.state.value}: {info.result or info.failure_reason}")
            first = await queue.get_enrichment_results(job.id, limit=1)
            print(f"demo enrichment, first lead: {first[0] if first else None}", flush=True)
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await queue.close()


if __name__ == "__main__":
    exit_process(demo_main(run_demo))
