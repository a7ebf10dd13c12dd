"""Activities of VOICE_CALL: place a call through Vapi, check it, end it, record its outcome.

The phone number never travels in workflow history: the job carries the id it is stored
under (``db/secrets.py``) and ``place_call`` reads it. Placing a call is the side effect that
must not repeat: the call row is marked ``dialing`` before the request goes out, so an
attempt that finds a mark with no Vapi id (a worker that died mid-request) stops with
``CallPlacementUnknown`` instead of ringing the customer a second time. At most
``VOICE_MAX_CALLS_IN_FLIGHT`` calls are in flight across all workers: ``place_call`` takes a
database slot first and answers ``placed=False`` while none is free.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.bookkeeping import record_after
from activities.errors import to_application_error
from activities.slots import reclaim_abandoned_slots
from core.crypto import TokenCipher, token_key
from core.errors import (
    CALL_PLACEMENT_UNKNOWN,
    INVALID_CONFIGURATION,
    REQUEST_REJECTED,
    RESOURCE_NOT_FOUND,
)
from core.logging import get_logger
from db.secrets import SecretNotFound, SecretStore
from db.slots import SlotPool
from db.voice import CallOutcomeRecord, CallRef, CallStore
from integrations.errors import ProviderError, request_was_refused
from integrations.vapi import VapiCall, VapiClient, outcome_of

log = get_logger(__name__)

CALL_SLOTS = "voice-calls"
# A slot outlives the longest call (10 minutes) with room for its last checks; a job that
# was terminated mid-call frees its slot when the lease runs out.
CALL_SLOT_LEASE = timedelta(minutes=15)
# Waiters woken per slot given back: one may have ended since it last asked.
WAKE_WAITERS = 2


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PlaceCallInput(_Model):
    job_id: str
    call_id: str
    user_id: str
    campaign_id: str | None
    assistant_id: str | None
    phone_number_id: str
    attempt: int
    metadata: dict[str, Any] = Field(default_factory=dict)


class PlaceCallResult(_Model):
    # False: every call slot is taken; the job waits in line to be woken, or asks again.
    placed: bool
    vapi_call_id: str | None = None
    status: str | None = None


class CheckCallInput(_Model):
    job_id: str
    call_id: str
    vapi_call_id: str


class CallSnapshot(_Model):
    """A call as Vapi reported it, with the job outcome of its ending once it ended."""

    vapi_call_id: str
    status: str
    ended: bool
    ended_reason: str | None = None
    outcome: str | None = None
    retryable: bool = False
    transcript: str | None = None
    recording_url: str | None = None
    cost: float | None = None
    duration_ms: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class HangUpInput(_Model):
    job_id: str
    call_id: str
    user_id: str
    # None when the job was cancelled before it learnt the id: the call row may know it.
    vapi_call_id: str | None


class FinishCallInput(_Model):
    job_id: str
    call_id: str
    user_id: str
    vapi_call_id: str | None
    # False: this attempt's call failed and the job tries again; nothing is counted.
    final: bool
    outcome: str
    ended_reason: str | None = None
    transcript: str | None = None
    recording_url: str | None = None
    cost: float | None = None
    duration_ms: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None


class FinishCallResult(_Model):
    # This call's ending was added to its campaign now (False: it had been, or is retried).
    counted: bool
    # Jobs waiting for a call slot, to wake now that this one is free.
    wake: list[str] = Field(default_factory=list)


def snapshot_of(call: VapiCall) -> CallSnapshot:
    ending = outcome_of(call.ended_reason) if call.ended else None
    return CallSnapshot(
        vapi_call_id=call.id,
        status=call.status,
        ended=call.ended,
        ended_reason=call.ended_reason,
        outcome=ending.outcome if ending else None,
        retryable=ending.retryable if ending else False,
        transcript=call.transcript,
        recording_url=call.recording_url,
        cost=call.cost,
        duration_ms=call.duration_ms,
        started_at=call.started_at,
        ended_at=call.ended_at,
    )


def _permanent(message: str, error_type: str) -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


class VoiceActivities:
    def __init__(
        self,
        vapi: VapiClient,
        calls: CallStore,
        secrets: SecretStore,
        slots: SlotPool,
        *,
        phone_number_id: str,
        default_assistant_id: str,
    ) -> None:
        self._vapi = vapi
        self._calls = calls
        self._secrets = secrets
        self._slots = slots
        self._phone_number_id = phone_number_id
        self._default_assistant_id = default_assistant_id

    @activity.defn(name="place_call")
    async def place_call(self, input: PlaceCallInput) -> PlaceCallResult:
        assistant_id = input.assistant_id or self._default_assistant_id
        if not assistant_id:
            raise _permanent(
                "no assistant: give assistantId or set VAPI_ASSISTANT_ID", INVALID_CONFIGURATION
            )
        if not self._phone_number_id:
            raise _permanent("VAPI_PHONE_NUMBER_ID is not set", INVALID_CONFIGURATION)
        try:
            self._vapi.check_configured()
        except ProviderError as exc:
            raise to_application_error(exc) from None
        try:
            phone_number = await self._secrets.get(input.phone_number_id, user_id=input.user_id)
        except SecretNotFound:
            raise _permanent("the call's phone number is not stored", RESOURCE_NOT_FOUND) from None
        # Slots are held by job: a retried attempt renews its own, never takes a second one.
        if not await self._slots.acquire(input.job_id, wait=True):
            if not await reclaim_abandoned_slots(self._slots) or not await self._slots.acquire(
                input.job_id, wait=True
            ):
                return PlaceCallResult(placed=False)
        ref = CallRef(input.user_id, input.call_id, input.job_id)
        dial = await self._calls.begin_dial(
            ref,
            campaign_id=input.campaign_id,
            assistant_id=assistant_id,
            phone_number=phone_number,
            attempt=input.attempt,
        )
        if dial.state == "taken":
            raise _permanent(
                "the call id is another job's, or its call was made already; "
                "a new call needs a new call id",
                REQUEST_REJECTED,
            )
        if dial.state == "placed":
            return PlaceCallResult(placed=True, vapi_call_id=dial.vapi_call_id)
        if dial.state == "unknown":
            raise _permanent(
                "an earlier try to place this call got no answer; it may have been placed, "
                "so it is not placed again (look the call up in Vapi)",
                CALL_PLACEMENT_UNKNOWN,
            )
        try:
            call = await self._vapi.create_call(
                assistant_id=assistant_id,
                phone_number_id=self._phone_number_id,
                customer_number=phone_number,
                metadata={**input.metadata, "jobId": input.job_id, "callId": input.call_id},
            )
        except ProviderError as exc:
            if request_was_refused(exc):
                # No call exists: clear the mark so a retry may dial.
                await record_after(
                    lambda: self._calls.dial_failed(ref, input.attempt),
                    what="call dial failure",
                    job_id=input.job_id,
                )
                raise to_application_error(exc) from None
            # A 5xx or a timeout: the call may exist. The mark stays, so a retry stops with
            # CallPlacementUnknown instead of ringing the customer twice.
            raise _permanent(
                f"placing the call got no clear answer ({exc}); it may have been placed",
                CALL_PLACEMENT_UNKNOWN,
            ) from None
        log.info("voice.call_placed", job_id=input.job_id, vapi_call_id=call.id)
        # The call is placed: from here a failed write is handed on, never retried by
        # failing the attempt (that would place a second call).
        await record_after(
            lambda: self._calls.placed(ref, input.attempt, call.id, call.status),
            what="placed call",
            job_id=input.job_id,
        )
        return PlaceCallResult(placed=True, vapi_call_id=call.id, status=call.status)

    @activity.defn(name="check_call")
    async def check_call(self, input: CheckCallInput) -> CallSnapshot:
        try:
            call = await self._vapi.get_call(input.vapi_call_id)
        except ProviderError as exc:
            raise to_application_error(exc) from None
        try:
            await self._calls.set_status(call.id, call.status)
            # A live call keeps its slot: the lease is renewed with every look at it.
            if not call.ended:
                await self._slots.acquire(input.job_id)
        except SQLAlchemyError as exc:
            # The live status is a convenience; the outcome is written by finish_call.
            log.warning("voice.status_not_recorded", error=type(exc).__name__)
        return snapshot_of(call)

    @activity.defn(name="end_call")
    async def end_call(self, input: CheckCallInput) -> CallSnapshot:
        """End a call that runs too long; the call as it stands afterwards."""
        try:
            call = await self._vapi.get_call(input.vapi_call_id)
            await self._vapi.end_call(call)
            return snapshot_of(await self._vapi.get_call(input.vapi_call_id))
        except ProviderError as exc:
            raise to_application_error(exc) from None

    @activity.defn(name="hang_up")
    async def hang_up(self, input: HangUpInput) -> bool:
        """End the job's call if it is live (a cancelled job); True when one was ended."""
        vapi_call_id = input.vapi_call_id
        if vapi_call_id is None:
            row = await self._calls.get(input.call_id, user_id=input.user_id)
            if row is None or row.job_id != input.job_id or row.counted_at is not None:
                return False
            vapi_call_id = row.vapi_call_id
        if vapi_call_id is None:
            return False
        try:
            call = await self._vapi.get_call(vapi_call_id)
            if call.ended:
                return False
            await self._vapi.end_call(call)
        except ProviderError as exc:
            raise to_application_error(exc) from None
        return True

    @activity.defn(name="finish_call")
    async def finish_call(self, input: FinishCallInput) -> FinishCallResult:
        """Record the attempt's ending and give back the call slot; a final ending is counted
        in the campaign once."""
        counted = False
        ref = CallRef(input.user_id, input.call_id, input.job_id)
        if input.final:
            counted = await self._calls.finish(
                ref,
                CallOutcomeRecord(
                    vapi_call_id=input.vapi_call_id,
                    outcome=input.outcome,
                    ended_reason=input.ended_reason,
                    transcript=input.transcript,
                    recording_url=input.recording_url,
                    cost_micros=round(input.cost * 1_000_000) if input.cost is not None else None,
                    duration_ms=input.duration_ms,
                    started_at=input.started_at,
                    ended_at=input.ended_at,
                    failure_reason=input.failure_reason,
                ),
            )
        else:
            await self._calls.attempt_failed(
                ref,
                input.vapi_call_id,
                input.ended_reason,
                input.failure_reason,
            )
        wake = await self._slots.release(input.job_id, wake=WAKE_WAITERS)
        return FinishCallResult(counted=counted, wake=wake)


def build_voice_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings = deps.settings
    at_rest = token_key(settings)
    cipher = TokenCipher(at_rest)
    voice = VoiceActivities(
        VapiClient(
            deps.http,
            base_url=settings.vapi_api_base_url,
            api_key=settings.vapi_api_key,
            timeout_s=settings.vapi_timeout_seconds,
        ),
        CallStore(deps.sessions, cipher),
        SecretStore(deps.sessions, cipher, at_rest),
        SlotPool(
            deps.sessions,
            CALL_SLOTS,
            limit=settings.voice_max_calls_in_flight,
            lease=CALL_SLOT_LEASE,
        ),
        phone_number_id=settings.vapi_phone_number_id,
        default_assistant_id=settings.vapi_assistant_id,
    )
    return [voice.place_call, voice.check_call, voice.end_call, voice.hang_up, voice.finish_call]
