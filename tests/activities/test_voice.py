"""The voice activities in an ActivityEnvironment, against the Vapi emulator and real stores on
SQLite: a call placed once whatever is retried, the number read by owner and never sent
anywhere else, slots taken and given back, failures typed, outcomes counted once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.bookkeeping
from activities.voice import (
    CheckCallInput,
    FinishCallInput,
    HangUpInput,
    PlaceCallInput,
    VoiceActivities,
)
from core.crypto import TokenCipher
from core.errors import (
    CALL_PLACEMENT_UNKNOWN,
    INVALID_CONFIGURATION,
    RATE_LIMITED,
    REQUEST_REJECTED,
    RESOURCE_NOT_FOUND,
)
from db.migrate import upgrade_database
from db.secrets import SecretStore
from db.session import create_engine, create_sessionmaker
from db.slots import SlotPool
from db.voice import CallStore
from emulators import vapi as emulator
from emulators.server import Fault, serve
from integrations.vapi import VapiClient

KEY = b"k" * 32
NUMBER = "+14155550123"


class PlacedButUnrecorded(CallStore):
    """The call store while the database goes away right after the call was placed."""

    async def placed(self, *args: object, **kwargs: object) -> None:
        raise OperationalError("UPDATE ...", {}, ConnectionRefusedError("database away"))


@dataclass
class Setup:
    vapi: emulator.VapiState
    client: VapiClient
    calls: CallStore
    secrets: SecretStore
    slots: SlotPool
    sessions: async_sessionmaker[AsyncSession]

    def acts(self, calls: CallStore | None = None, **config: Any) -> VoiceActivities:
        return VoiceActivities(
            self.client,
            calls or self.calls,
            self.secrets,
            self.slots,
            phone_number_id=config.get("phone_number_id", emulator.DEFAULT_PHONE_NUMBER_ID),
            default_assistant_id=config.get("assistant_id", emulator.DEFAULT_ASSISTANT_ID),
        )

    async def input(
        self, call_id: str = "call-1", user: str = "u-1", attempt: int = 1
    ) -> PlaceCallInput:
        secret_id = await self.secrets.put(user, NUMBER, needed_for=timedelta(days=1))
        return PlaceCallInput(
            job_id=f"job-{call_id}",
            call_id=call_id,
            user_id=user,
            campaign_id="camp-1",
            assistant_id=None,
            phone_number_id=secret_id,
            attempt=attempt,
            metadata={"campaignId": "camp-1"},
        )


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setattr(activities.bookkeeping, "RETRY_DELAYS_S", (0.0, 0.0))
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    cipher = TokenCipher(KEY)
    state = emulator.VapiState()
    async with serve(emulator.create_app(state)) as base, httpx.AsyncClient() as http:
        yield Setup(
            state,
            VapiClient(http, base_url=base, api_key=emulator.DEFAULT_API_KEY, timeout_s=2),
            CallStore(sessions, cipher),
            SecretStore(sessions, cipher, KEY),
            SlotPool(sessions, "voice-calls", limit=2, lease=timedelta(minutes=15)),
            sessions,
        )
    await engine.dispose()


def finish_input(placed: PlaceCallInput, **fields: Any) -> FinishCallInput:
    return FinishCallInput(
        job_id=placed.job_id,
        call_id=placed.call_id,
        user_id=placed.user_id,
        **{"vapi_call_id": None, **fields},
    )


async def run_until_ended(setup: Setup, check: CheckCallInput) -> None:
    for _ in range(200):
        snapshot = await ActivityEnvironment().run(setup.acts().check_call, check)
        if snapshot.ended:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the call never ended")


async def test_a_call_is_placed_with_the_stored_number(setup: Setup):
    input = await setup.input()
    placed = await ActivityEnvironment().run(setup.acts().place_call, input)
    assert placed.placed and placed.vapi_call_id
    call = setup.vapi.calls[placed.vapi_call_id]
    assert call.body["customer"]["number"] == NUMBER
    assert call.body["assistantId"] == emulator.DEFAULT_ASSISTANT_ID
    assert call.body["assistantOverrides"]["metadata"] == {
        "campaignId": "camp-1",
        "jobId": "job-call-1",
        "callId": "call-1",
    }
    # NUMBER never leaves in anything the activity returns (it goes to workflow history).
    assert NUMBER not in placed.model_dump_json()
    row = await setup.calls.get("call-1", user_id="u-1")
    assert row is not None and row.vapi_call_id == placed.vapi_call_id


async def test_a_retried_placement_returns_the_same_call(setup: Setup):
    input = await setup.input()
    first = await ActivityEnvironment().run(setup.acts().place_call, input)
    again = await ActivityEnvironment().run(setup.acts().place_call, input)
    assert again.vapi_call_id == first.vapi_call_id and setup.vapi.create_requests == 1


async def test_an_unrecorded_placement_is_never_dialled_again(setup: Setup):
    input = await setup.input()
    # The call is placed, then the database is away: the attempt still succeeds...
    placed = await ActivityEnvironment().run(
        setup.acts(PlacedButUnrecorded(setup.sessions, TokenCipher(KEY))).place_call,
        input,
    )
    assert placed.placed and placed.vapi_call_id
    # ...and had the worker died there instead, the next attempt would not dial again.
    with pytest.raises(ApplicationError) as unknown:
        await ActivityEnvironment().run(setup.acts().place_call, input)
    assert unknown.value.type == CALL_PLACEMENT_UNKNOWN and unknown.value.non_retryable
    assert setup.vapi.create_requests == 1


async def test_a_refused_request_may_be_retried(setup: Setup):
    setup.vapi.faults.add("call.create", Fault(status=429, headers={"Retry-After": "3"}))
    input = await setup.input()
    with pytest.raises(ApplicationError) as limited:
        await ActivityEnvironment().run(setup.acts().place_call, input)
    assert limited.value.type == RATE_LIMITED and not limited.value.non_retryable
    assert limited.value.next_retry_delay == timedelta(seconds=3)
    placed = await ActivityEnvironment().run(setup.acts().place_call, input)
    assert placed.placed and setup.vapi.create_requests == 2


async def test_a_timed_out_request_is_not_repeated(setup: Setup):
    setup.vapi.faults.add("call.create", Fault(status=201, delay_s=3))
    input = await setup.input()
    with pytest.raises(ApplicationError) as slow:
        await ActivityEnvironment().run(setup.acts().place_call, input)
    assert slow.value.type == CALL_PLACEMENT_UNKNOWN and "timed out" in str(slow.value)
    with pytest.raises(ApplicationError) as unknown:
        await ActivityEnvironment().run(setup.acts().place_call, input)
    assert unknown.value.type == CALL_PLACEMENT_UNKNOWN


async def test_no_free_slot_places_nothing_until_one_is_given_back(setup: Setup):
    first, second = await setup.input("call-a"), await setup.input("call-b")
    third = await setup.input("call-c")
    for input in (first, second):
        assert (await ActivityEnvironment().run(setup.acts().place_call, input)).placed
    waiting = await ActivityEnvironment().run(setup.acts().place_call, third)
    assert not waiting.placed and setup.vapi.create_requests == 2
    finished = await ActivityEnvironment().run(
        setup.acts().finish_call,
        finish_input(first, final=True, outcome="completed"),
    )
    assert finished.wake == [third.job_id]  # the job in line is woken
    assert (await ActivityEnvironment().run(setup.acts().place_call, third)).placed
    # Once placed it has left the line.
    again = await ActivityEnvironment().run(
        setup.acts().finish_call,
        finish_input(second, final=True, outcome="completed"),
    )
    assert again.wake == []


async def test_configuration_and_ownership_are_permanent(setup: Setup):
    input = await setup.input()
    for acts, expected in (
        (setup.acts(assistant_id=""), "VAPI_ASSISTANT_ID"),
        (setup.acts(phone_number_id=""), "VAPI_PHONE_NUMBER_ID"),
    ):
        with pytest.raises(ApplicationError) as missing:
            await ActivityEnvironment().run(acts.place_call, input)
        assert missing.value.type == INVALID_CONFIGURATION and expected in str(missing.value)
    # Another user's stored number is not found for this user.
    stolen = input.model_copy(update={"user_id": "u-2"})
    with pytest.raises(ApplicationError) as not_theirs:
        await ActivityEnvironment().run(setup.acts().place_call, stolen)
    assert not_theirs.value.type == RESOURCE_NOT_FOUND
    # Another job with the same call id is refused; another user's call id is theirs.
    await ActivityEnvironment().run(setup.acts().place_call, input)
    other = input.model_copy(update={"job_id": "job-other", "attempt": 2})
    with pytest.raises(ApplicationError) as taken:
        await ActivityEnvironment().run(setup.acts().place_call, other)
    assert taken.value.type == REQUEST_REJECTED
    assert setup.vapi.create_requests == 1
    theirs = await setup.input(user="u-2")
    assert (await ActivityEnvironment().run(setup.acts().place_call, theirs)).placed


async def test_a_gateway_error_is_not_taken_for_a_refusal(setup: Setup):
    # A 502 may come from a gateway after Vapi created the call: never dial again.
    setup.vapi.faults.add("call.create", Fault(status=502))
    input = await setup.input()
    with pytest.raises(ApplicationError) as unclear:
        await ActivityEnvironment().run(setup.acts().place_call, input)
    assert unclear.value.type == CALL_PLACEMENT_UNKNOWN and unclear.value.non_retryable
    # A 503 is a refusal: the retry dials.
    setup.vapi.faults.add("call.create", Fault(status=503))
    fresh = await setup.input("call-2")
    with pytest.raises(ApplicationError) as busy:
        await ActivityEnvironment().run(setup.acts().place_call, fresh)
    assert not busy.value.non_retryable
    assert (await ActivityEnvironment().run(setup.acts().place_call, fresh)).placed


async def test_checks_follow_the_call_and_classify_its_end(setup: Setup):
    setup.vapi.scripts[NUMBER] = emulator.BUSY
    placed = await ActivityEnvironment().run(setup.acts().place_call, await setup.input())
    assert placed.vapi_call_id
    check = CheckCallInput(job_id="job-call-1", call_id="call-1", vapi_call_id=placed.vapi_call_id)
    await run_until_ended(setup, check)
    snapshot = await ActivityEnvironment().run(setup.acts().check_call, check)
    assert (snapshot.outcome, snapshot.ended_reason, snapshot.retryable) == (
        "busy",
        "customer-busy",
        False,
    )
    row = await setup.calls.get("call-1")
    assert row is not None and row.status == "ended"


async def test_end_call_hangs_up_a_live_call(setup: Setup):
    setup.vapi.scripts[NUMBER] = emulator.NEVER_ENDS
    placed = await ActivityEnvironment().run(setup.acts().place_call, await setup.input())
    assert placed.vapi_call_id
    await asyncio.sleep(0.15)
    check = CheckCallInput(job_id="job-call-1", call_id="call-1", vapi_call_id=placed.vapi_call_id)
    snapshot = await ActivityEnvironment().run(setup.acts().end_call, check)
    assert snapshot.ended and snapshot.ended_reason == "manually-canceled"


async def test_finish_counts_once_and_a_failed_attempt_not_at_all(setup: Setup):
    input = await setup.input()
    placed = await ActivityEnvironment().run(setup.acts().place_call, input)
    retry = finish_input(
        input,
        vapi_call_id=placed.vapi_call_id,
        final=False,
        outcome="failed",
        ended_reason="twilio-failed-to-connect-call",
        failure_reason="call failed: twilio-failed-to-connect-call",
    )
    assert (await ActivityEnvironment().run(setup.acts().finish_call, retry)).counted is False
    assert await setup.calls.campaign_stats("camp-1") is None
    assert await setup.slots.in_use() == 0
    final = retry.model_copy(
        update={"final": True, "outcome": "completed", "cost": 0.123456, "duration_ms": 4200}
    )
    assert (await ActivityEnvironment().run(setup.acts().finish_call, final)).counted is True
    assert (await ActivityEnvironment().run(setup.acts().finish_call, final)).counted is False
    stats = await setup.calls.campaign_stats("camp-1")
    assert stats is not None
    assert (stats.calls_made, stats.calls_successful, stats.calls_failed) == (1, 1, 0)
    assert (stats.total_cost, stats.total_duration_seconds) == (0.123456, 4.2)


async def test_hang_up_finds_the_call_by_its_id_when_the_job_did_not_learn_it(setup: Setup):
    setup.vapi.scripts[NUMBER] = emulator.NEVER_ENDS
    input = await setup.input()
    placed = await ActivityEnvironment().run(setup.acts().place_call, input)
    assert placed.vapi_call_id
    await asyncio.sleep(0.15)
    hang = HangUpInput(job_id=input.job_id, call_id="call-1", user_id="u-1", vapi_call_id=None)
    other_job = hang.model_copy(update={"job_id": "job-other"})
    assert await ActivityEnvironment().run(setup.acts().hang_up, other_job) is False
    assert await ActivityEnvironment().run(setup.acts().hang_up, hang) is True
    assert setup.vapi.calls[placed.vapi_call_id].status == "ended"
    assert await ActivityEnvironment().run(setup.acts().hang_up, hang) is False  # ended already
