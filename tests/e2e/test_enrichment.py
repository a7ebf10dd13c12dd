"""Lead enrichment end to end: JobQueue, real workers, the dev server, PostgreSQL, Redis and the
Apify emulator. 1,000 leads with some failing and some skipped; per-lead outcomes paged by
their owner only; a 429 storm that slows the job instead of failing it; one user's large
import not starving another user's small one; 100,000 leads added with a small input."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from client.base import JobInfo
from client.queue import JobQueue
from core.errors import InvalidJobData, JobNotFound
from core.queues import QueueName
from core.temporal import data_converter
from emulators import apify as emulator
from tests.e2e.conftest import Enrichment
from tests.support import eventually, payloads_in, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


def leads(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-{i}", "email": f"lead{i}.{tag}@acme.io"} for i in range(n)]


async def finished(queue: JobQueue, job_id: str, timeout: float = 120) -> JobInfo:
    return await eventually(
        lambda: queue.get_job(job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=timeout,
        interval=0.2,
    )


async def test_a_thousand_leads_with_failures_and_skips(enrichment: Enrichment):
    tag = uuid.uuid4().hex[:6]
    batch = leads(1000, tag)
    for i in range(0, 1000, 50):
        batch[i]["email"] = f"fail{i}@acme.io"  # 20 the actor finds nothing for
    for i in range(25, 1000, 100):
        batch[i] = {"id": f"{tag}-{i}"}  # 10 with nothing to look up
    user = f"user-{tag}"
    queue = await JobQueue.connect(enrichment.settings)
    try:
        async with running_workers(enrichment.settings, [QueueName.ENRICHMENT]):
            job = await queue.add_job(
                "enrichment", "lead_enrichment", {"userId": user, "leads": batch, "batchSize": 10}
            )
            info = await finished(queue, job.id)
        assert info.state is JobState.COMPLETED, info.failure_reason
        assert info.result == {"total": 1000, "enriched": 970, "failed": 20, "skipped": 10}
        assert info.progress == 100
        assert all(len(b) <= 10 for b in enrichment.apify.batches)
        page = await queue.get_enrichment_results(job.id, offset=0, limit=100, user_id=user)
        assert [o["position"] for o in page] == list(range(100))
        assert page[0]["status"] == "failed" and page[1]["status"] == "enriched"
        assert page[1]["result"]["person_email"] == f"lead1.{tag}@acme.io"
        assert page[25]["status"] == "skipped"
        last = await queue.get_enrichment_results(job.id, offset=990, limit=100)
        assert [o["position"] for o in last] == list(range(990, 1000))
        with pytest.raises(JobNotFound):
            await queue.get_enrichment_results(job.id, user_id="someone-else")
        # The leads are not in the job's history: its input carries their count.
        history = await queue.client.get_workflow_handle(job.id).fetch_history()
        assert sum(event.ByteSize() for event in history.events) < 64 * 1024
        codec = data_converter(enrichment.settings).payload_codec
        assert codec is not None
        decoded = await codec.decode([p for e in history.events for p in payloads_in(e)])
        text = b"".join(p.data for p in decoded).decode(errors="replace")
        compact = text.replace(" ", "")
        assert '"lead_count":1000' in compact or '"leadCount":1000' in compact
        assert f"lead1.{tag}@acme.io" not in text and f"{tag}-1" not in text
    finally:
        await queue.close()


async def test_rate_limits_slow_the_job_instead_of_failing_it(enrichment: Enrichment):
    enrichment.apify.faults.add("run.start", *[emulator.rate_limited(1)] * 3)
    queue = await JobQueue.connect(enrichment.settings)
    try:
        async with running_workers(enrichment.settings, [QueueName.ENRICHMENT]):
            started = time.monotonic()
            job = await queue.add_job(
                "enrichment",
                "lead_enrichment",
                {"userId": "user-429", "leads": leads(20, uuid.uuid4().hex[:6])},
            )
            info = await finished(queue, job.id)
        assert info.state is JobState.COMPLETED and info.result["enriched"] == 20
        assert enrichment.apify.rate_limited == 3 and time.monotonic() - started >= 3
        assert info.attempts_made <= 1  # waited out inside the attempt, never failed
    finally:
        await queue.close()


async def test_a_large_import_does_not_starve_another_users_small_one(enrichment: Enrichment):
    enrichment.apify.run_s = 0.01
    queue = await JobQueue.connect(enrichment.settings)
    try:
        async with running_workers(enrichment.settings, [QueueName.ENRICHMENT]):
            large = await queue.add_job(
                "enrichment",
                "lead_enrichment",
                {"userId": "user-large", "leads": leads(5000, uuid.uuid4().hex[:6])},
            )
            small = await queue.add_job(
                "enrichment",
                "lead_enrichment",
                {"userId": "user-small", "leads": leads(10, uuid.uuid4().hex[:6])},
            )
            small_info = await finished(queue, small.id, timeout=60)
            large_info = await finished(queue, large.id, timeout=300)
        assert small_info.state is JobState.COMPLETED and large_info.state is JobState.COMPLETED
        assert small_info.finished_at is not None and large_info.finished_at is not None
        assert small_info.started_at is not None
        small_took = (small_info.finished_at - small_info.started_at).total_seconds()
        large_left = (large_info.finished_at - small_info.finished_at).total_seconds()
        assert small_took < 5 and large_left > 4 * small_took
    finally:
        await queue.close()


async def test_a_hundred_thousand_leads_are_added_with_a_small_input(enrichment: Enrichment):
    queue = await JobQueue.connect(enrichment.settings)
    try:
        many = [{"id": f"l{i}", "email": f"l{i}@acme.io"} for i in range(100_000)]
        job = await queue.add_job(
            "enrichment", "lead_enrichment", {"userId": "user-bulk", "leads": many}
        )
        history = await queue.client.get_workflow_handle(job.id).fetch_history()
        started = history.events[0]
        assert started.ByteSize() < 8 * 1024
        assert job.id  # no worker runs the enrichment queue here; the job is removed
        await queue.remove_job(job.id)
        with pytest.raises(InvalidJobData) as given_count:
            await queue.add_job(
                "enrichment", "lead_enrichment", {"userId": "u", "leads": many[:1], "leadCount": 1}
            )
        assert "lead_count" in given_count.value.problems
        with pytest.raises(InvalidJobData) as none:
            await queue.add_job("enrichment", "lead_enrichment", {"userId": "u"})
        assert "leads" in none.value.problems
    finally:
        await queue.close()
