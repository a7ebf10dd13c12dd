"""The voice half of ``make run``: an emulated Vapi on loopback whose server messages go to
the HTTP API (``python -m api``), and three demo calls of one campaign (answered, not
answered, busy), so a new user sees calls placed, followed and counted with no credentials.

``devtools.run`` starts this process and points the workers at it (only when no real Vapi is
configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from api.vapi import PATH as VAPI_MESSAGES_PATH
from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from devtools.demo_support import demo_main, stop_on_signals, wait_finished
from emulators import vapi as vapi_emulator
from emulators.endpoints import vapi_settings
from emulators.server import serve

VAPI_PORT = 8304
DEMO_USER = "demo-user"
DEMO_CAMPAIGN = "demo-campaign"
# One number per ending; the emulator rings each the way its script says.
DEMO_CALLS = {
    "+15550100001": vapi_emulator.Script(ring_s=1.0, talk_s=4.0),
    "+15550100002": vapi_emulator.Script(
        ended_reason="customer-did-not-answer", ring_s=3.0, talk_s=0, transcript=""
    ),
    "+15550100003": vapi_emulator.BUSY,
}


def demo_environment() -> dict[str, str]:
    """Settings that point the workers at the demo Vapi."""
    return vapi_settings(f"http://127.0.0.1:{VAPI_PORT}")


async def _follow(queue: JobQueue, job_id: str) -> None:
    info = await wait_finished(queue, job_id)
    if info is not None:
        outcome = info.result.get("outcome") if isinstance(info.result, dict) else None
        print(f"demo call {job_id} {info.state.value}: {outcome or info.failure_reason}")


async def run_demo() -> None:
    settings = load_settings()
    # Vapi's server URL: the HTTP API that make run serves.
    server_url = f"http://{settings.api_host}:{settings.api_port}{VAPI_MESSAGES_PATH}"
    state = vapi_emulator.VapiState(
        scripts=dict(DEMO_CALLS), server_url=server_url, server_secret=settings.vapi_server_secret
    )
    stop = stop_on_signals()
    async with serve(vapi_emulator.create_app(state), port=VAPI_PORT):
        print(f"vapi emulator on :{VAPI_PORT}, server messages to {server_url}", flush=True)
        queue = await JobQueue.connect(settings)
        try:
            run = uuid.uuid4().hex[:8]
            jobs = []
            for n, number in enumerate(DEMO_CALLS, start=1):
                job = await queue.add_job(
                    "voice",
                    "voice_call",
                    {
                        "userId": DEMO_USER,
                        "callId": f"demo-call-{run}-{n}",
                        "phoneNumber": number,
                        "metadata": {"campaignId": DEMO_CAMPAIGN},
                    },
                )
                jobs.append(job.id)
            print(f"demo calls enqueued: {', '.join(jobs)}", flush=True)
            await asyncio.gather(*(_follow(queue, job_id) for job_id in jobs))
            stats = await queue.get_campaign_stats(DEMO_CAMPAIGN)
            print(f"demo campaign statistics: {stats}", flush=True)
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await queue.close()


if __name__ == "__main__":
    exit_process(demo_main(run_demo))
