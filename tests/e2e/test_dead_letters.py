"""Webhook dead letters end to end: a delivery that failed for good is listed with its attempts,
redelivered once however often it is asked for at once, or discarded; an endpoint that answered
410 Gone gets nothing more until it is enabled."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from client.base import JobInfo
from client.queue import JobQueue
from core.queues import QueueName
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import eventually, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


def hook(
    receiver: WebhookReceiver, user: str, path: str, event: str = "lead.created"
) -> dict[str, Any]:
    return {
        "userId": user,
        "url": receiver.url(path),
        "eventType": event,
        "payload": {"path": path},
        "secret": receiver.secret,
    }


async def finished(queue: JobQueue, job_id: str) -> JobInfo:
    return await eventually(
        lambda: queue.get_job(job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=60,
    )


async def test_a_gone_endpoint_is_disabled_until_enabled(
    settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    user, path = f"user-{uuid.uuid4().hex[:6]}", f"/gone-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse(status=410)])
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        first = await job_queue.add_job("webhooks", "webhook_delivery", hook(receiver, user, path))
        assert (await finished(job_queue, first.id)).state is JobState.FAILED
        second = await job_queue.add_job("webhooks", "webhook_delivery", hook(receiver, user, path))
        info = await finished(job_queue, second.id)
        assert info.state is JobState.FAILED and "endpoint_disabled" in (info.failure_reason or "")
        assert len(receiver.requests(path)) == 1  # the second job sent nothing
        # It is a dead letter, to redeliver once the endpoint is back.
        dead = {i["id"]: i for i in (await job_queue.list_dead_webhooks(user_id=user))["items"]}
        assert second.id in dead
        assert dead[second.id]["attempt_history"][-1]["error"] == "endpoint_disabled"
        # Another user's deliveries to the same URL are not affected.
        other = await job_queue.add_job(
            "webhooks", "webhook_delivery", hook(receiver, "someone-else", path)
        )
        assert (await finished(job_queue, other.id)).state is JobState.COMPLETED
        assert await job_queue.enable_webhook_endpoint(receiver.url(path), user_id=user)
        await asyncio.sleep(10.5)  # the workers' cache of disabled endpoints
        third = await job_queue.add_job("webhooks", "webhook_delivery", hook(receiver, user, path))
        assert (await finished(job_queue, third.id)).state is JobState.COMPLETED


async def test_dead_letters_are_listed_redelivered_once_and_discarded(
    settings, job_queue: JobQueue, receiver: WebhookReceiver
):
    user = f"user-{uuid.uuid4().hex[:6]}"
    paths = [f"/dead-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
    for path in paths:
        receiver.script(path, [ScriptedResponse(status=400)])  # permanent, then 200 later
    async with running_workers(settings, [QueueName.WEBHOOKS]):
        jobs = [
            await job_queue.add_job(
                "webhooks",
                "webhook_delivery",
                hook(receiver, user, path, event="lead.lost" if n == 2 else "lead.created"),
            )
            for n, path in enumerate(paths)
        ]
        for job in jobs:
            assert (await finished(job_queue, job.id)).state is JobState.FAILED

        first_page = await job_queue.list_dead_webhooks(user_id=user, limit=2)
        assert len(first_page["items"]) == 2 and first_page["next_cursor"]
        second_page = await job_queue.list_dead_webhooks(
            user_id=user, limit=2, cursor=first_page["next_cursor"]
        )
        listed = [i["id"] for i in first_page["items"] + second_page["items"]]
        assert sorted(listed) == sorted(j.id for j in jobs) and second_page["next_cursor"] is None
        letter = first_page["items"][0]
        assert letter["status"] == "failed" and letter["last_status_code"] == 400
        assert [a["outcome"] for a in letter["attempt_history"]] == ["failed"]
        assert receiver.secret not in str(letter) and "secret_id" not in letter

        # Two clicks at once redeliver it once.
        target = jobs[0].id
        counts = await asyncio.gather(
            job_queue.redeliver_webhooks([target]), job_queue.redeliver_webhooks([target])
        )
        assert sorted(counts) == [0, 1]
        assert await job_queue.redeliver_webhooks([target]) == 0
        redelivery = await finished(job_queue, f"{target}.redelivery")
        assert redelivery.state is JobState.COMPLETED
        assert len(receiver.requests(paths[0])) == 2  # the failed POST and the redelivery

        # Discard by filter: only the matching one goes.
        assert await job_queue.discard_webhooks(user_id=user, event_type="lead.lost") == 1
        left = await job_queue.list_dead_webhooks(user_id=user)
        assert [i["id"] for i in left["items"]] == [jobs[1].id]
        with pytest.raises(Exception, match="give ids or a filter"):
            await job_queue.redeliver_webhooks()
