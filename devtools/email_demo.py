"""The email half of ``make run``: emulated Gmail, Outlook and Claude on loopback with one
seeded mailbox each, connected as demo accounts and synced once, so a new user sees a sync
and its auto-drafts work end to end with no credentials.

``devtools.run`` starts this process and points the workers at the ports below (only when
no real provider is configured).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from devtools.demo_support import demo_main, stop_on_signals, wait_finished
from emulators import anthropic as anthropic_emulator
from emulators import google as google_emulator
from emulators import microsoft as microsoft_emulator
from emulators.endpoints import email_provider_settings
from emulators.server import serve

GOOGLE_PORT, MICROSOFT_PORT, ANTHROPIC_PORT = 8301, 8302, 8303
DEMO_API_KEY = "sk-ant-demo-emulator"
DEMO_USER = "demo-user"
DEMO_ADDRESS = "demo@example.com"


def demo_environment() -> dict[str, str]:
    """Settings that point the workers at the demo emulators."""
    return email_provider_settings(
        google_url=f"http://127.0.0.1:{GOOGLE_PORT}",
        microsoft_url=f"http://127.0.0.1:{MICROSOFT_PORT}",
        anthropic_url=f"http://127.0.0.1:{ANTHROPIC_PORT}",
        anthropic_key=DEMO_API_KEY,
    )


async def _follow(queue: JobQueue, job_id: str, provider: str) -> None:
    info = await wait_finished(queue, job_id)
    if info is not None:
        print(f"demo {provider} sync {info.state.value}: {info.result or info.failure_reason}")


async def run_demo() -> None:
    google = google_emulator.GoogleState()
    google.seed_mailbox(DEMO_ADDRESS, 200, important_every=50)
    microsoft = microsoft_emulator.MicrosoftState()
    microsoft.seed_mailbox(
        DEMO_ADDRESS, 200, start=datetime.now(UTC) - timedelta(days=2), high_importance_every=50
    )
    claude = anthropic_emulator.AnthropicState(api_keys={DEMO_API_KEY})
    stop = stop_on_signals()
    async with (
        serve(google_emulator.create_app(google), port=GOOGLE_PORT),
        serve(microsoft_emulator.create_app(microsoft), port=MICROSOFT_PORT),
        serve(anthropic_emulator.create_app(claude), port=ANTHROPIC_PORT),
    ):
        print(
            f"email emulators on :{GOOGLE_PORT} (Gmail), :{MICROSOFT_PORT} (Graph), "
            f":{ANTHROPIC_PORT} (Claude)",
            flush=True,
        )
        queue = await JobQueue.connect(load_settings())
        try:
            expires = datetime.now(UTC) + timedelta(hours=1)
            followers = []
            for provider, (access, refresh) in (
                ("gmail", google.issue_tokens(DEMO_ADDRESS)),
                ("outlook", microsoft.issue_tokens(DEMO_ADDRESS)),
            ):
                account_id = await queue.connect_email_account(
                    DEMO_USER, provider, DEMO_ADDRESS, access, refresh, expires
                )
                job = await queue.add_job(
                    "email",
                    "email_sync",
                    {"userId": DEMO_USER, "accountId": account_id, "emailProvider": provider},
                )
                print(f"demo {provider} account {account_id}: sync job {job.id}", flush=True)
                followers.append(asyncio.create_task(_follow(queue, job.id, provider)))
            await asyncio.gather(*followers)
            print(
                f"demo drafts created: Gmail {len(google.drafts)}, Outlook {len(microsoft.drafts)}",
                flush=True,
            )
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await queue.close()


if __name__ == "__main__":
    exit_process(demo_main(run_demo))
