"""Real ``python worker.py`` processes: pause across processes, SIGKILL, SIGTERM, Redis outage."""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.queue import JobQueue
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.support import (
    RedisServer,
    WorkerProcess,
    eventually,
    make_queue,
    settings_from,
)
from tracking.store import JobState

pytestmark = pytest.mark.integration

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")


@pytest.fixture
def workers(session_env: dict[str, str], tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def spawn(
    started: list[WorkerProcess], env: dict[str, str], log_dir: Path, queue: str = "webhooks"
) -> WorkerProcess:
    worker = WorkerProcess(env, queue, log_dir=log_dir)
    started.append(worker)
    worker.start()
    await worker.wait_ready()
    return worker


def data(receiver: WebhookReceiver, path: str) -> dict[str, object]:
    return {
        "user_id": "user-1",
        "url": receiver.url(path),
        "event_type": "job.test",
        "payload": {"n": 1},
        "secret": receiver.secret,
    }


def job_state(queue: JobQueue, job_id: str):
    return functools.partial(queue.get_job, job_id)


async def test_pause_holds_for_every_worker_process(
    session_env, job_queue: JobQueue, receiver: WebhookReceiver, workers, tmp_path
):
    await asyncio.gather(
        spawn(workers, session_env, tmp_path), spawn(workers, session_env, tmp_path)
    )
    path = f"/paused-{uuid.uuid4().hex[:6]}"
    await job_queue.pause_queue("webhooks")
    try:
        jobs = [
            await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
            for _ in range(6)
        ]

        async def backlog() -> int:
            n = 0
            for job in jobs:
                desc = await job_queue.client.get_workflow_handle(job.id).describe()
                n += len(desc.raw_description.pending_activities)
            return n

        # Both workers poll the queue, every job's activity is scheduled, and yet nothing
        # is dispatched for as long as we watch.
        await eventually(backlog, lambda n: n == len(jobs))
        await asyncio.sleep(2)
        assert receiver.requests(path) == []
        stats = await job_queue.get_queue_stats("webhooks")
        assert stats["paused"] is True
        assert stats["waiting"] >= len(jobs) and stats["active"] == 0
    finally:
        await job_queue.resume_queue("webhooks")
    await receiver.wait_for_requests(path, len(jobs), timeout=30)
    for job in jobs:
        await eventually(job_state(job_queue, job.id), lambda i: i.state is JobState.COMPLETED)
    assert (await job_queue.get_queue_stats("webhooks"))["paused"] is False


async def test_sigkill_mid_job_loses_nothing(
    session_env, job_queue: JobQueue, receiver: WebhookReceiver, workers, tmp_path
):
    doomed = await spawn(workers, session_env, tmp_path)
    path = f"/killed-{uuid.uuid4().hex[:6]}"
    # The first attempt hangs until the client times out; the worker dies before that.
    receiver.script(path, [ScriptedResponse(delay_s=5)])
    job = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
    await receiver.wait_for_requests(path, 1, timeout=15)
    assert doomed.proc is not None
    doomed.proc.send_signal(signal.SIGKILL)
    assert await doomed.wait_exit() == -signal.SIGKILL
    await spawn(workers, session_env, tmp_path)
    # The attempt's start-to-close timeout (30 s) frees the lost attempt; the new worker
    # delivers it.
    info = await eventually(
        job_state(job_queue, job.id), lambda i: i.state is JobState.COMPLETED, timeout=60
    )
    assert info.attempts_made == 2
    assert len(receiver.requests(path)) == 2


async def test_sigterm_lets_the_running_job_finish(
    session_env, job_queue: JobQueue, receiver: WebhookReceiver, workers, tmp_path
):
    # The only worker of the queue: nobody else could complete the job after it stops.
    worker = await spawn(workers, session_env, tmp_path)
    path = f"/draining-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse(delay_s=1.5)])
    job = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
    await receiver.wait_for_requests(path, 1, timeout=15)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    stopped_at = asyncio.get_running_loop().time()
    assert await worker.wait_exit(timeout=30) == 0
    grace = float(session_env["WORKER_SHUTDOWN_GRACE_SECONDS"])
    assert asyncio.get_running_loop().time() - stopped_at < grace
    log = worker.output()
    assert "worker.stopping" in log and "worker.drained" in log and "worker.stopped" in log
    # The delivery finished inside the grace period and the job completed before the
    # process exited: no other worker was running.
    assert receiver.requests(path)[0].signature_valid
    info = await job_queue.get_job(job.id)
    assert info.state is JobState.COMPLETED
    assert info.attempts_made == 1
    assert len(receiver.requests(path)) == 1
    desc = await job_queue.client.get_workflow_handle(job.id).describe()
    assert desc.status is not None and desc.status.name == "COMPLETED"
    # No secrets in the worker's log.
    assert receiver.secret not in log and "whsec_" not in log.replace("whsec_[redacted]", "")
    assert_one_log_format(log)


def assert_one_log_format(log: str) -> None:
    """Every line is ours: no colour codes, one timestamp format (ISO-8601, UTC)."""
    assert "\x1b[" not in log
    for line in log.splitlines():
        if line and line[0].isdigit():
            assert ISO_UTC.match(line), line


async def test_expected_failures_log_one_line_without_traceback(
    session_env, job_queue: JobQueue, receiver: WebhookReceiver, workers, tmp_path
):
    worker = await spawn(workers, session_env, tmp_path)
    gone, busy = f"/gone-{uuid.uuid4().hex[:6]}", f"/busy-{uuid.uuid4().hex[:6]}"
    receiver.script(gone, [ScriptedResponse(status=410)])
    receiver.script(busy, [ScriptedResponse(status=503)])
    rejected = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, gone))
    retried = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, busy))
    await eventually(job_state(job_queue, rejected.id), lambda i: i.state is JobState.FAILED)
    await eventually(job_state(job_queue, retried.id), lambda i: i.state is JobState.COMPLETED)
    assert len(receiver.requests(gone)) == 1
    log = worker.output()
    assert "Traceback" not in log and "Completing activity as failed" not in log
    retrying = [line for line in log.splitlines() if "job.retrying" in line]
    assert len(retrying) == 1 and "DeliveryFailed" in retrying[0] and "HTTP 503" in retrying[0]
    [failed] = [line for line in log.splitlines() if "job.failed" in line]
    assert "DeliveryRejected" in failed and "HTTP 410" in failed
    assert_one_log_format(log)


async def test_sigterm_past_the_grace_leaves_the_job_to_another_worker(
    session_env, job_queue: JobQueue, receiver: WebhookReceiver, workers, tmp_path
):
    env = {**session_env, "WORKER_SHUTDOWN_GRACE_SECONDS": "1", "WEBHOOK_TIMEOUT_SECONDS": "8"}
    worker = await spawn(workers, env, tmp_path)
    path = f"/stuck-{uuid.uuid4().hex[:6]}"
    receiver.script(path, [ScriptedResponse(delay_s=6)])
    job = await job_queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
    await receiver.wait_for_requests(path, 1, timeout=15)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    assert await worker.wait_exit(timeout=30) == 0
    log = worker.output()
    # The job that could not finish is named in the log, and is retried elsewhere.
    assert "worker.jobs_unfinished" in log and job.id in log
    await spawn(workers, session_env, tmp_path)
    info = await eventually(job_state(job_queue, job.id), lambda i: i.state is JobState.COMPLETED)
    assert info.attempts_made == 2


async def test_redis_outage_jobs_complete_and_stats_recover(
    session_env, receiver: WebhookReceiver, workers, tmp_path
):
    redis = RedisServer(tmp_path)
    redis.start()
    env = {
        **session_env,
        "REDIS_URL": redis.url,
        "REDIS_KEY_PREFIX": f"bjout-{uuid.uuid4().hex[:8]}:",
    }
    queue = await make_queue(settings_from(env))
    try:
        await spawn(workers, env, tmp_path)
        path = f"/outage-{uuid.uuid4().hex[:6]}"
        before = await queue.get_queue_stats("webhooks")
        first = [
            await queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
            for _ in range(3)
        ]
        for job in first:
            await eventually(job_state(queue, job.id), lambda i: i.state is JobState.COMPLETED)

        redis.stop()
        during = [
            await queue.add_job("webhooks", "webhook_delivery", data(receiver, path))
            for _ in range(3)
        ]
        await receiver.wait_for_requests(path, 6, timeout=30)
        for job in during:
            # Answered from Temporal while Redis is down.
            await eventually(job_state(queue, job.id), lambda i: i.state is JobState.COMPLETED)
        stats = await queue.get_queue_stats("webhooks")
        assert set(stats) >= {"waiting", "active", "completed", "failed", "delayed", "paused"}

        redis.start()  # same port, empty: it lost everything
        recovered = await eventually(
            lambda: queue.get_queue_stats("webhooks"),
            lambda s: s["completed"] >= before["completed"] + 6 and s["available"],
            timeout=40,
        )
        assert recovered["active"] == 0 and recovered["waiting"] == 0
    finally:
        await queue.close()
        redis.stop()
