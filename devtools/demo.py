"""``make demo``: enqueue one webhook delivery to the demo receiver and follow it."""

from __future__ import annotations

import asyncio

from client.queue import JobQueue
from core.logging import configure_logging, exit_process
from devtools.run import DEMO_RECEIVER_PORT, demo_secret
from tracking.store import JobState


async def demo() -> int:
    queue = await JobQueue.connect()
    try:
        job = await queue.add_job(
            "webhooks",
            "webhook_delivery",
            {
                "userId": "demo-user",
                "url": f"http://127.0.0.1:{DEMO_RECEIVER_PORT}/hook",
                "eventType": "demo.ping",
                "payload": {"hello": "world"},
                "secret": demo_secret(),
            },
        )
        print(f"added job {job.id} to queue {job.queue}")
        for _ in range(300):
            info = await queue.get_job(job.id)
            if info.state in (JobState.COMPLETED, JobState.FAILED):
                break
            await asyncio.sleep(0.1)
        print(f"state={info.state.value} attempts={info.attempts_made} result={info.result}")
        for offset, event in await queue.get_job_events(job.id):
            print(f"  {offset} {event.get('event')} {event.get('state')}")
        print(f"webhooks queue: {await queue.get_queue_stats('webhooks')}")
        return 0 if info.state is JobState.COMPLETED else 1
    finally:
        await queue.close()


def main() -> int:
    configure_logging(json_logs=False, level="WARNING")
    return asyncio.run(demo())


if __name__ == "__main__":
    exit_process(main())
