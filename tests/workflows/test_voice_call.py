"""The voice call workflow with its activities replaced, on the time-skipping server: every
outcome, the server-message signal and the polling path, the 10-minute timeout, a failed
connection tried again after the queue's 5 s backoff, waits for a call slot, a cancel that
hangs up, and every ending written once by finish_call."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows.voice_call
from activities.voice import (
    CallSnapshot,
    CheckCallInput,
    FinishCallInput,
    FinishCallResult,
    HangUpInput,
    PlaceCallInput,
    PlaceCallResult,
)
from core.errors import CALL_FAILED, INVALID_CONFIGURATION
from core.jobs import JobType, VoiceCallJobData
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import run_options
from core.signals import CALL_UPDATE, SLOT_FREED, CallUpdate
from tests.support import eventually
from tests.workflows.conftest import record_history
from worker import workflow_runner
from workflows.voice_call import (
    CALL_TIMEOUT,
    POLL_INTERVAL,
    SLOT_RECHECKS,
    VoiceCallInput,
    VoiceCallWorkflow,
)

pytestmark = pytest.mark.workflow


def ended(
    reason: str, outcome: str, *, retryable: bool = False, vapi_id: str = "v-1"
) -> CallSnapshot:
    return CallSnapshot(
        vapi_call_id=vapi_id,
        status="ended",
        ended=True,
        ended_reason=reason,
        outcome=outcome,
        retryable=retryable,
        transcript="AI: hello" if outcome == "completed" else None,
        recording_url="https://rec/1.wav" if outcome == "completed" else None,
        cost=0.05,
        duration_ms=42_000 if outcome == "completed" else None,
    )


def live(status: str = "in-progress", vapi_id: str = "v-1") -> CallSnapshot:
    return CallSnapshot(vapi_call_id=vapi_id, status=status, ended=False)


@dataclass
class FakeVoice:
    """Scripted answers: ``checks[n]`` for attempt n+1 (the last one repeats), slot refusals,
    and errors for place_call; every call kept with its workflow-clock start time."""

    checks: list[list[CallSnapshot]]
    no_slot: int = 0
    place_error: BaseException | None = None
    wake: list[str] = field(default_factory=list)
    # When set, place_call waits for it (a slow dial the job is cancelled during).
    hold_place: asyncio.Event | None = None
    calls: list[tuple[str, Any, datetime]] = field(default_factory=list)
    heartbeat_timeouts: set[timedelta | None] = field(default_factory=set)

    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _called(self, name: str, input: Any) -> None:
        info = activity.info()
        self.calls.append((name, input, info.current_attempt_scheduled_time))
        self.heartbeat_timeouts.add(info.heartbeat_timeout)
        self.changed.set()

    async def seen(self, name: str, times: int = 1, timeout: float = 5.0) -> None:
        """Return once ``name`` was called ``times`` times (fail after ``timeout``)."""
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                if len(self.inputs(name)) >= times:
                    return
                await self.changed.wait()

    def inputs(self, name: str) -> list[Any]:
        return [input for called, input, _ in self.calls if called == name]

    def times(self, name: str) -> list[datetime]:
        return [when for called, _, when in self.calls if called == name]

    @activity.defn(name="place_call")
    async def place(self, input: PlaceCallInput) -> PlaceCallResult:
        self._called("place_call", input)
        if self.hold_place is not None:
            await self.hold_place.wait()
        if self.place_error is not None:
            raise self.place_error
        if self.no_slot:
            self.no_slot -= 1
            return PlaceCallResult(placed=False)
        return PlaceCallResult(placed=True, vapi_call_id=f"v-{input.attempt}", status="queued")

    @activity.defn(name="check_call")
    async def check(self, input: CheckCallInput) -> CallSnapshot:
        self._called("check_call", input)
        attempt = int(input.vapi_call_id.removeprefix("v-"))
        script = self.checks[attempt - 1]
        answer = script.pop(0) if len(script) > 1 else script[0]
        return answer.model_copy(update={"vapi_call_id": input.vapi_call_id})

    @activity.defn(name="end_call")
    async def end(self, input: CheckCallInput) -> CallSnapshot:
        self._called("end_call", input)
        return ended("manually-canceled", "failed", vapi_id=input.vapi_call_id)

    @activity.defn(name="hang_up")
    async def hang_up(self, input: HangUpInput) -> bool:
        self._called("hang_up", input)
        return True

    @activity.defn(name="finish_call")
    async def finish(self, input: FinishCallInput) -> FinishCallResult:
        self._called("finish_call", input)
        return FinishCallResult(counted=input.final, wake=self.wake)


def voice_job(queue: str, **data: Any) -> VoiceCallInput:
    run = run_options(DEFAULT_CATALOG[QueueName.VOICE], JobType.VOICE_CALL)
    return VoiceCallInput(
        data=VoiceCallJobData.model_validate(
            {
                "userId": "u-1",
                "callId": "call-1",
                "phoneNumberId": "sec_1",
                "metadata": {"campaignId": "camp-1"},
                **data,
            }
        ),
        run=run.model_copy(update={"queue": queue}),
    )


@dataclass
class Running:
    handle: WorkflowHandle[Any, Any]
    worker: Worker


async def start(
    env: WorkflowEnvironment, fake: FakeVoice, *, sandboxed: bool = True, **data: Any
) -> Running:
    queue = f"voice-test-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[VoiceCallWorkflow],
        activities=[fake.place, fake.check, fake.end, fake.hang_up, fake.finish],
        # The sandbox imports the workflow module afresh; a patched constant needs none.
        workflow_runner=workflow_runner() if sandboxed else UnsandboxedWorkflowRunner(),
    )
    handle = await env.client.start_workflow(
        VoiceCallWorkflow.run,
        voice_job(queue, **data),
        id=f"voice_call-{uuid.uuid4().hex}",
        task_queue=queue,
    )
    return Running(handle, worker)


async def run_call(
    env: WorkflowEnvironment, fake: FakeVoice, history: str | None = None, **data: Any
) -> Any:
    running = await start(env, fake, **data)
    async with running.worker:
        try:
            return await running.handle.result()
        finally:
            if history is not None:
                await record_history(running.handle, history)
            # No voice activity heartbeats, so none is scheduled with a heartbeat timeout.
            assert fake.heartbeat_timeouts <= {None}


def gaps(times: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]


async def test_a_completed_call_is_followed_by_polling_and_recorded(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[live("ringing"), live(), ended("customer-ended-call", "completed")]])
    result = await run_call(time_env, fake, history="voice_call_polled_to_completed")
    assert (result.outcome, result.ended_reason, result.attempts) == (
        "completed",
        "customer-ended-call",
        1,
    )
    assert (result.duration_seconds, result.transcript, result.recording_url, result.cost) == (
        42.0,
        "AI: hello",
        "https://rec/1.wav",
        0.05,
    )
    [place] = fake.inputs("place_call")
    assert (place.call_id, place.campaign_id, place.phone_number_id) == (
        "call-1",
        "camp-1",
        "sec_1",
    )
    assert len(fake.inputs("check_call")) == 3
    for gap in gaps(fake.times("check_call")):
        assert POLL_INTERVAL.total_seconds() <= gap < POLL_INTERVAL.total_seconds() + 1
    [finish] = fake.inputs("finish_call")
    assert finish.final and finish.outcome == "completed" and finish.failure_reason is None
    assert fake.inputs("end_call") == []


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("customer-did-not-answer", "no_answer"),
        ("customer-busy", "busy"),
        ("voicemail", "voicemail"),
    ],
)
async def test_business_outcomes_complete_the_job_without_retry(
    time_env: WorkflowEnvironment, reason: str, outcome: str
):
    fake = FakeVoice(checks=[[ended(reason, outcome)]])
    result = await run_call(time_env, fake)
    assert (result.outcome, result.ended_reason) == (outcome, reason)
    assert len(fake.inputs("place_call")) == 1
    [finish] = fake.inputs("finish_call")
    assert finish.final and finish.outcome == outcome


async def test_a_failed_connection_is_tried_again_after_the_backoff(time_env: WorkflowEnvironment):
    fake = FakeVoice(
        checks=[
            [ended("twilio-failed-to-connect-call", "failed", retryable=True)],
            [ended("customer-ended-call", "completed")],
        ]
    )
    result = await run_call(time_env, fake, history="voice_call_retried_after_connect_failure")
    assert (result.outcome, result.attempts, result.vapi_call_id) == ("completed", 2, "v-2")
    first, second = fake.inputs("place_call")
    assert (first.attempt, second.attempt) == (1, 2)
    retry, final = fake.inputs("finish_call")
    assert not retry.final and retry.ended_reason == "twilio-failed-to-connect-call"
    assert final.final and final.outcome == "completed"
    # FR-031: 5 s before the second attempt (after its ending was recorded).
    finished_first = fake.times("finish_call")[0]
    waited = (fake.times("place_call")[1] - finished_first).total_seconds()
    assert 5 <= waited < 6


async def test_two_failed_connections_fail_the_job_and_count_it_failed(
    time_env: WorkflowEnvironment,
):
    failing = ended("sip-outbound-call-failed-to-connect", "failed", retryable=True)
    fake = FakeVoice(checks=[[failing], [failing]])
    with pytest.raises(WorkflowFailureError) as failure:
        await run_call(time_env, fake)
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == CALL_FAILED
    assert "sip-outbound-call-failed-to-connect" in failure.value.cause.message
    assert len(fake.inputs("place_call")) == 2
    retry, final = fake.inputs("finish_call")
    assert (retry.final, final.final, final.outcome) == (False, True, "failed")
    assert final.failure_reason == "call failed: sip-outbound-call-failed-to-connect"


async def test_a_permanent_call_failure_is_not_retried(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[ended("assistant-not-found", "failed")]])
    with pytest.raises(WorkflowFailureError):
        await run_call(time_env, fake)
    assert len(fake.inputs("place_call")) == 1
    [final] = fake.inputs("finish_call")
    assert final.final and final.outcome == "failed"


async def test_a_call_still_running_after_ten_minutes_is_ended(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[live()]])
    result = await run_call(time_env, fake, history="voice_call_timeout")
    assert result.outcome == "timeout" and result.ended_reason == "manually-canceled"
    [end] = fake.inputs("end_call")
    assert end.vapi_call_id == "v-1"
    placed_at = fake.times("place_call")[0]
    ended_at = fake.times("end_call")[0]
    assert CALL_TIMEOUT <= ended_at - placed_at < CALL_TIMEOUT + timedelta(seconds=2)
    checks = len(fake.inputs("check_call"))
    # The polls, then up to three looks for the final cost and times after hanging up.
    assert CALL_TIMEOUT / POLL_INTERVAL - 1 <= checks <= CALL_TIMEOUT / POLL_INTERVAL + 4
    [finish] = fake.inputs("finish_call")
    assert finish.final and finish.outcome == "timeout"


async def test_a_server_message_makes_the_workflow_look_at_once(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[live(), live(), ended("customer-ended-call", "completed")]])
    running = await start(time_env, fake)
    async with running.worker:
        # The clock does not skip until the result is awaited: the first poll is 10 s away.
        await fake.seen("place_call")
        await asyncio.sleep(0.3)
        assert fake.inputs("check_call") == []
        await running.handle.signal(CALL_UPDATE, CallUpdate(vapi_call_id="v-1", status="ended"))
        await fake.seen("check_call")
        [first_check] = fake.times("check_call")
        assert (first_check - fake.times("place_call")[0]).total_seconds() < 5
        # A message about some other call changes nothing.
        await running.handle.signal(CALL_UPDATE, CallUpdate(vapi_call_id="v-9", status="ended"))
        result = await running.handle.result()
    assert result.outcome == "completed"


async def test_a_job_in_line_re_checks_for_a_slot(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[ended("customer-ended-call", "completed")]], no_slot=2)
    result = await run_call(time_env, fake)
    assert result.outcome == "completed"
    waits = [w.total_seconds() for w in SLOT_RECHECKS[:2]]
    for gap, wait in zip(gaps(fake.times("place_call")), waits, strict=True):
        assert wait <= gap < wait + 1


async def test_a_freed_slot_wakes_the_job_in_line(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[ended("customer-ended-call", "completed")]], no_slot=1)
    running = await start(time_env, fake)
    async with running.worker:
        await fake.seen("place_call")
        await running.handle.signal(SLOT_FREED)
        result = await running.handle.result()
    assert result.outcome == "completed"
    [gap] = gaps(fake.times("place_call"))
    assert gap < 5


async def test_the_job_that_gives_a_slot_back_wakes_those_in_line(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[live()]], no_slot=10)
    waiting = await start(time_env, fake)
    async with waiting.worker:
        # A second job on the same worker finishes and names the first as next in line.
        finisher_fake = FakeVoice(
            checks=[[ended("customer-busy", "busy")]], wake=[waiting.handle.id]
        )
        finisher = await start(time_env, finisher_fake)
        async with finisher.worker:
            await finisher.handle.result()
        await fake.seen("place_call", times=2)
        await waiting.handle.terminate()
    first, second = fake.times("place_call")[:2]
    assert (second - first).total_seconds() < SLOT_RECHECKS[0].total_seconds()


async def test_a_placement_that_fails_for_good_is_recorded_and_fails_the_job(
    time_env: WorkflowEnvironment,
):
    fake = FakeVoice(
        checks=[[live()]],
        place_error=ApplicationError(
            "no assistant", type=INVALID_CONFIGURATION, non_retryable=True
        ),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await run_call(time_env, fake)
    assert isinstance(failure.value.cause, ActivityError)
    [final] = fake.inputs("finish_call")
    assert final.final and final.outcome == "failed" and final.failure_reason == "no assistant"
    assert final.vapi_call_id is None


async def test_a_cancelled_job_hangs_up_and_frees_its_slot(time_env: WorkflowEnvironment):
    fake = FakeVoice(checks=[[live()]])
    running = await start(time_env, fake)
    async with running.worker:
        # Cancelled while it waits between polls, no activity in flight. (A cancel racing an
        # activity's completion is test_a_cancel_during_a_dial_still_hangs_up; done with an
        # activity that ends at once, the time-skipping server answers ACTIVITY_UNKNOWN to
        # the cancel request and the workflow task never completes.)
        await eventually(
            lambda: running.handle.query("call_status"), lambda status: status == "in-progress"
        )
        await running.handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await running.handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    [hang] = fake.inputs("hang_up")
    assert hang.call_id == "call-1" and hang.vapi_call_id == "v-1"
    [final] = fake.inputs("finish_call")
    assert final.final and final.failure_reason == "cancelled"


async def test_a_cancel_during_a_dial_still_hangs_up(time_env: WorkflowEnvironment):
    # place_call does not heartbeat, so it finishes despite the cancel; the job must not
    # carry on as if nothing happened.
    fake = FakeVoice(checks=[[live()]], hold_place=asyncio.Event())
    running = await start(time_env, fake)
    async with running.worker:
        await fake.seen("place_call")
        await running.handle.cancel()
        await asyncio.sleep(0.3)
        assert fake.hold_place is not None
        fake.hold_place.set()
        with pytest.raises(WorkflowFailureError) as failure:
            await running.handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert fake.inputs("check_call") == []
    [hang] = fake.inputs("hang_up")
    assert hang.vapi_call_id == "v-1"
    [final] = fake.inputs("finish_call")
    assert final.failure_reason == "cancelled"


async def test_a_long_wait_in_line_continues_as_new(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(workflows.voice_call, "ASKS_PER_RUN", 2)
    fake = FakeVoice(checks=[[ended("customer-ended-call", "completed")]], no_slot=3)
    running = await start(time_env, fake, sandboxed=False)
    async with running.worker:
        result = await running.handle.result()
    assert result.outcome == "completed" and result.attempts == 1
    assert [p.attempt for p in fake.inputs("place_call")] == [1, 1, 1, 1]
    first = time_env.client.get_workflow_handle(
        running.handle.id, run_id=running.handle.first_execution_run_id
    )
    events = (await first.fetch_history()).events
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
