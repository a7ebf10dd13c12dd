"""Voice calls end to end: JobQueue, real workers (in-process and ``worker.py`` processes), the
dev server, PostgreSQL, Redis, the Vapi emulator and the HTTP API receiving its server
messages. Each outcome; the message path and the polling path; a failed connection retried
after 5 s; campaign statistics exact after retries and a SIGKILLed worker; never more than
three calls in flight across two worker processes; no phone number in any history."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from temporalio.api.common.v1 import Payload

from activities.voice import CALL_SLOTS
from api.vapi import PATH as VAPI_MESSAGES_PATH
from client.base import JobInfo
from client.queue import JobQueue
from core.errors import InvalidJobData
from core.queues import QueueName
from core.temporal import data_converter
from db.session import create_engine
from emulators import vapi as emulator
from tests.e2e.conftest import Voice
from tests.support import WorkerProcess, eventually, payloads_in, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration
T = TypeVar("T")


def number() -> str:
    return f"+1555{uuid.uuid4().int % 10_000_000:07d}"


def call_data(phone: str, campaign: str, user: str = "user-voice") -> dict[str, Any]:
    return {
        "userId": user,
        "callId": f"call-{uuid.uuid4().hex[:10]}",
        "phoneNumber": phone,
        "metadata": {"campaignId": campaign},
    }


async def finished(queue: JobQueue, job_id: str, timeout: float = 60) -> JobInfo:
    return await eventually(
        lambda: queue.get_job(job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=timeout,
    )


def now(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A probe for ``eventually`` that reads emulator state."""

    async def probe() -> T:
        return read()

    return probe


@pytest.fixture
async def free_slots(settings: Any) -> None:
    """The session's database is shared: no call slot left held by an earlier test's jobs."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE concurrency_slots SET holder = NULL WHERE pool = :pool"),
                {"pool": CALL_SLOTS},
            )
    finally:
        await engine.dispose()


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def spawn(started: list[WorkerProcess], voice: Voice, log_dir: Path) -> WorkerProcess:
    worker = WorkerProcess(voice.env, "voice", log_dir=log_dir)
    started.append(worker)
    worker.start()
    await worker.wait_ready()
    return worker


async def test_each_outcome_is_recorded_and_counted(voice: Voice, free_slots: None):
    campaign = f"camp-{uuid.uuid4().hex[:8]}"
    scripts = {
        number(): (emulator.Script(talk_s=0.3, cost=0.25), "completed"),
        number(): (emulator.NO_ANSWER, "no_answer"),
        number(): (emulator.BUSY, "busy"),
        number(): (emulator.VOICEMAIL, "voicemail"),
    }
    for phone, (script, _) in scripts.items():
        voice.vapi.scripts[phone] = script
    queue = await JobQueue.connect(voice.settings)
    try:
        async with running_workers(voice.settings, [QueueName.VOICE]):
            datas = {phone: call_data(phone, campaign) for phone in scripts}
            jobs = {
                phone: await queue.add_job("voice", "voice_call", data)
                for phone, data in datas.items()
            }
            infos = {p: await finished(queue, job.id) for p, job in jobs.items()}
        for phone, (script, outcome) in scripts.items():
            info = infos[phone]
            assert info.state is JobState.COMPLETED, info.failure_reason
            result = info.result
            assert result["outcome"] == outcome and result["ended_reason"] == script.ended_reason
            assert {"duration_seconds", "transcript", "recording_url", "cost"} <= result.keys()
        answered = infos[next(iter(scripts))].result
        assert answered["transcript"] == emulator.COMPLETED.transcript
        assert answered["recording_url"].endswith(".wav") and answered["cost"] == 0.25
        assert answered["duration_seconds"] >= 0.3
        stats = await queue.get_campaign_stats(campaign)
        assert {k: stats[k] for k in ("calls_made", "calls_successful", "calls_failed")} == {
            "calls_made": 4,
            "calls_successful": 1,
            "calls_failed": 0,
        }
        assert (stats["no_answer"], stats["busy"], stats["voicemail"]) == (1, 1, 1)
        assert stats["total_cost"] == pytest.approx(0.25 + 0.0425 * 2)
        # Another user sees an empty campaign; the call record never shows the number.
        other = await queue.get_campaign_stats(campaign, user_id="someone-else")
        assert other["calls_made"] == 0
        call = await queue.get_call(datas[next(iter(scripts))]["callId"])
        assert call is not None and call["outcome"] == "completed"
        assert all(phone not in str(value) for value in call.values() for phone in scripts)
        # No phone number in any payload of any history, decoded.
        codec = data_converter(voice.settings).payload_codec
        assert codec is not None
        payloads: list[Payload] = []
        for job in jobs.values():
            history = await queue.client.get_workflow_handle(job.id).fetch_history()
            for event in history.events:
                payloads.extend(payloads_in(event))
        decoded = await codec.decode(payloads)
        text = b"".join(p.data for p in decoded).decode(errors="replace")
        assert campaign in text  # the search can see job data
        for phone in scripts:
            assert phone not in text and phone.removeprefix("+") not in text
    finally:
        await queue.close()


async def test_server_messages_end_the_wait_and_polling_is_the_backstop(
    voice: Voice, free_slots: None
):
    queue = await JobQueue.connect(voice.settings)
    try:
        async with running_workers(voice.settings, [QueueName.VOICE]):
            phone = number()
            voice.vapi.scripts[phone] = emulator.Script(ring_s=0.1, talk_s=0.2)
            started = time.monotonic()
            job = await queue.add_job("voice", "voice_call", call_data(phone, "c-msg"))
            assert (await finished(queue, job.id)).state is JobState.COMPLETED
            # The end-of-call message made the job look at once, well before the 10 s poll.
            assert time.monotonic() - started < 6
            assert any(m["type"] == "end-of-call-report" for m in voice.vapi.server_messages_sent)

            # With no server messages at all, the poll still finds the end.
            voice.vapi.server_url = None
            silent = number()
            voice.vapi.scripts[silent] = emulator.Script(ring_s=0.1, talk_s=0.2)
            job = await queue.add_job("voice", "voice_call", call_data(silent, "c-poll"))
            info = await finished(queue, job.id, timeout=40)
            assert info.state is JobState.COMPLETED and info.result["outcome"] == "completed"
    finally:
        await queue.close()


async def test_a_failed_connection_is_retried_once_and_counted_once(voice: Voice, free_slots: None):
    campaign = f"camp-{uuid.uuid4().hex[:8]}"
    phone = number()
    voice.vapi.sequences[phone] = [emulator.FAILED_TO_CONNECT, emulator.COMPLETED]
    queue = await JobQueue.connect(voice.settings)
    try:
        async with running_workers(voice.settings, [QueueName.VOICE]):
            job = await queue.add_job("voice", "voice_call", call_data(phone, campaign))
            info = await finished(queue, job.id)
        assert info.state is JobState.COMPLETED and info.result["attempts"] == 2
        first, second = voice.vapi.calls_to(phone)
        assert first.ended_at is not None
        assert (second.created_at - first.ended_at).total_seconds() >= 5  # FR-031
        stats = await queue.get_campaign_stats(campaign)
        assert (stats["calls_made"], stats["calls_successful"], stats["calls_failed"]) == (1, 1, 0)

        # Both attempts failing fails the job, with the reason stored and counted as failed.
        failing = number()
        voice.vapi.scripts[failing] = emulator.FAILED_TO_CONNECT
        async with running_workers(voice.settings, [QueueName.VOICE]):
            job = await queue.add_job("voice", "voice_call", call_data(failing, campaign))
            info = await finished(queue, job.id)
        assert info.state is JobState.FAILED
        assert "twilio-failed-to-connect-call" in (info.failure_reason or "")
        assert len(voice.vapi.calls_to(failing)) == 2
        stats = await queue.get_campaign_stats(campaign)
        assert (stats["calls_made"], stats["calls_failed"]) == (2, 1)
    finally:
        await queue.close()


async def test_bad_data_starts_nothing(voice: Voice):
    queue = await JobQueue.connect(voice.settings)
    try:
        with pytest.raises(InvalidJobData) as bad:
            await queue.add_job(
                "voice",
                "voice_call",
                {"userId": "u", "callId": "c", "phoneNumber": "555-0100", "metadata": {}},
            )
        assert "phone_number" in bad.value.problems or "phoneNumber" in str(bad.value)
        with pytest.raises(InvalidJobData) as missing:
            await queue.add_job("voice", "voice_call", {"userId": "u", "callId": "c"})
        assert "phone_number" in missing.value.problems
        assert voice.vapi.create_requests == 0
    finally:
        await queue.close()


async def test_a_sigkilled_worker_mid_call_counts_the_call_once(
    voice: Voice, free_slots: None, processes: list[WorkerProcess], tmp_path: Path
):
    campaign = f"camp-{uuid.uuid4().hex[:8]}"
    phone = number()
    voice.vapi.scripts[phone] = emulator.Script(ring_s=0.2, talk_s=4.0, cost=0.5)
    doomed = await spawn(processes, voice, tmp_path)
    queue = await JobQueue.connect(voice.settings)
    try:
        job = await queue.add_job("voice", "voice_call", call_data(phone, campaign))
        await eventually(
            now(lambda: [c.status for c in voice.vapi.calls_to(phone)]),
            lambda statuses: "in-progress" in statuses,
        )
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        assert await doomed.wait_exit() == -signal.SIGKILL
        await spawn(processes, voice, tmp_path)
        info = await finished(queue, job.id)
        assert info.state is JobState.COMPLETED and info.result["outcome"] == "completed"
        assert len(voice.vapi.calls_to(phone)) == 1  # followed, never placed again
        stats = await queue.get_campaign_stats(campaign)
        assert (stats["calls_made"], stats["calls_successful"], stats["total_cost"]) == (1, 1, 0.5)
    finally:
        await queue.close()


async def test_never_more_than_three_calls_in_flight_across_two_workers(
    voice: Voice, free_slots: None, processes: list[WorkerProcess], tmp_path: Path
):
    campaign = f"camp-{uuid.uuid4().hex[:8]}"
    voice.vapi.default = emulator.Script(ring_s=0.2, talk_s=1.0)
    await asyncio.gather(spawn(processes, voice, tmp_path), spawn(processes, voice, tmp_path))
    queue = await JobQueue.connect(voice.settings)
    try:
        jobs = [
            await queue.add_job("voice", "voice_call", call_data(number(), campaign))
            for _ in range(8)
        ]
        infos = [await finished(queue, job.id, timeout=90) for job in jobs]
        assert all(info.state is JobState.COMPLETED for info in infos)
        assert voice.vapi.max_in_flight == 3  # the limit was reached and never passed
        stats = await queue.get_campaign_stats(campaign)
        assert stats["calls_made"] == 8
        assert sum(worker.output().count("voice.call_placed") for worker in processes) == 8
    finally:
        await queue.close()


async def test_a_terminated_job_gives_its_slot_back(voice: Voice, free_slots: None):
    voice.vapi.default = emulator.NEVER_ENDS
    queue = await JobQueue.connect(voice.settings)
    try:
        async with running_workers(voice.settings, [QueueName.VOICE]):
            stuck = [
                await queue.add_job("voice", "voice_call", call_data(number(), "c-stuck"))
                for _ in range(3)
            ]
            await eventually(now(voice.vapi.in_flight), lambda n: n == 3, timeout=30)
            # An operator terminates one from the CLI or the Web UI: none of its code runs.
            await queue.client.get_workflow_handle(stuck[0].id).terminate(reason="operator")
            voice.vapi.default = emulator.Script(talk_s=0.1)
            job = await queue.add_job("voice", "voice_call", call_data(number(), "c-next"))
            info = await finished(queue, job.id, timeout=30)
            assert info.state is JobState.COMPLETED
            for other in stuck[1:]:
                await queue.client.get_workflow_handle(other.id).terminate(reason="test over")
    finally:
        await queue.close()


async def test_the_message_endpoint_checks_the_secret(voice: Voice):
    url = voice.api_url + VAPI_MESSAGES_PATH
    message = {"message": {"type": "status-update", "status": "ringing", "call": {"id": "x"}}}
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, json=message)).status_code == 401
        wrong = {"X-Vapi-Secret": "not-the-secret"}
        assert (await http.post(url, json=message, headers=wrong)).status_code == 401
        right = {"X-Vapi-Secret": voice.settings.vapi_server_secret}
        started = time.monotonic()
        answer = await http.post(url, json=message, headers=right)
        assert answer.status_code == 200 and time.monotonic() - started < 1
        bearer = {"Authorization": f"Bearer {voice.settings.vapi_server_secret}"}
        assert (await http.post(url, content=b"{", headers=bearer)).status_code == 400
