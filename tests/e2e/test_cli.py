"""The operator CLI as a script would use it: ``python -m cli.main`` (the ``jobs`` console
script) in a subprocess, against the HTTP API (JOBS_API_URL, JOBS_API_KEY) and directly
against Temporal, Redis and the database. Keys made and revoked, JSON output, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from api.app import create_app
from core.config import Settings
from core.queues import QueueName
from emulators.server import serve
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import PROJECT_ROOT, eventually, running_workers

pytestmark = pytest.mark.integration


async def jobs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", *args],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_keys_are_made_listed_and_revoked(session_env: dict[str, str]):
    user = f"cli-{uuid.uuid4().hex[:6]}"
    made = await jobs(session_env, "keys", "create", "--user", user, "--role", "user")
    assert made.returncode == 0 and made.stdout.startswith("bbk_")
    assert "shown once" in made.stderr
    listed = _json(await jobs(session_env, "--json", "keys", "list", "--user", user))
    (key,) = listed
    assert (key["user_id"], key["role"], key["revoked_at"]) == (user, "user", None)
    assert made.stdout.strip() not in json.dumps(listed)  # the key itself is never stored
    assert (await jobs(session_env, "keys", "revoke", key["id"])).returncode == 0
    assert (await jobs(session_env, "keys", "revoke", key["id"])).returncode == 3
    bad = await jobs(session_env, "keys", "create", "--user", user, "--role", "admin")
    assert bad.returncode == 2


async def test_the_cli_over_the_api_and_directly(
    settings: Settings, session_env: dict[str, str], receiver: WebhookReceiver
):
    operator = (
        await jobs(session_env, "keys", "create", "--user", "ops", "--role", "operator")
    ).stdout.strip()
    receiver.script("/cli-rejected", [ScriptedResponse(status=400)])
    async with (
        serve(create_app(settings), lifespan="on") as url,
        running_workers(settings, [QueueName.WEBHOOKS]),
    ):
        via_api = {**session_env, "JOBS_API_URL": url, "JOBS_API_KEY": operator}
        from client.queue import JobQueue

        queue = await JobQueue.connect(settings)
        try:
            job = await queue.add_job(
                "webhooks",
                "webhook_delivery",
                {
                    "userId": "cli-user",
                    "url": receiver.url("/cli-rejected"),
                    "eventType": "x.y",
                    "payload": {},
                    "secret": receiver.secret,
                },
            )
            await eventually(lambda: queue.get_job(job.id), lambda i: i.state.value == "failed")
        finally:
            await queue.close()
        stats = await jobs(via_api, "stats")
        assert stats.returncode == 0 and "webhooks" in stats.stdout
        assert "via the HTTP API" in stats.stderr
        failed = _json(
            await jobs(via_api, "--json", "list", "--queue", "webhooks", "--state", "failed")
        )
        assert job.id in [j["id"] for j in failed]
        dry = _json(await jobs(via_api, "--json", "retry", "--queue", "webhooks", "--dry-run"))
        assert dry["matched"] >= 1 and dry["done"] == 0
        assert (await jobs(via_api, "retry", job.id)).returncode == 0
        tail = await jobs(via_api, "--json", "tail", job.id)
        assert tail.returncode == 0 and '"completed"' in tail.stdout
        assert (await jobs(via_api, "get", "no-such-job")).returncode == 3
        denied = await jobs({**via_api, "JOBS_API_KEY": "bbk_bad_key"}, "stats")
        assert denied.returncode == 4
        # On a worker host: no JOBS_API_URL, the same answers straight from the sources.
        direct = await jobs(session_env, "--json", "get", job.id)
        assert _json(direct)["state"] == "completed"
        assert "directly" in (await jobs(session_env, "stats")).stderr
        assert (await jobs(session_env, "pause", "nope")).returncode == 2
        schedules = _json(await jobs(via_api, "--json", "schedules", "list"))
        assert schedules == _json(await jobs(session_env, "--json", "schedules", "list"))
