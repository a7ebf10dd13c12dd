"""Worker process of the bare baseline.

``python -m bench.bare_worker --address HOST:PORT --task-queue NAME --concurrency 20``

Runs until SIGTERM or SIGINT, then shuts down (running activities get a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareActivities, BareWebhookWorkflow


async def serve(address: str, task_queue: str, concurrency: int) -> None:
    client = await Client.connect(address, namespace="default")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Same client shape as the product worker's (worker.py), so the HTTP side is comparable.
    async with httpx.AsyncClient(
        follow_redirects=False,
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    ) as http:
        activities = BareActivities(http)
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[BareWebhookWorkflow],
            activities=[activities.deliver],
            max_concurrent_activities=concurrency,
            disable_eager_activity_execution=True,
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
        async with worker:
            print("bare-worker ready", flush=True)
            await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.address, args.task_queue, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
