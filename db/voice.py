"""Voice calls and campaign statistics.

A call row is keyed by the producer's call id and follows the job's attempts: ``begin_dial``
marks the row before the create request goes out, ``placed`` records Vapi's call id, and
``finish`` writes the outcome and, in the same transaction, adds the call to its campaign's
statistics, guarded by ``counted_at``: however often ``finish`` runs, a call is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.base import utcnow
from db.models import VoiceCall, VoiceCampaign
from db.session import dialect_insert

# The campaign counter each outcome adds to, besides calls_made.
_OUTCOME_COUNTER: dict[str, str] = {
    "completed": "calls_successful",
    "failed": "calls_failed",
    "timeout": "calls_failed",
    "no_answer": "no_answer",
    "busy": "busy",
    "voicemail": "voicemail",
}

DialState = Literal["new", "placed", "unknown", "foreign"]


@dataclass(frozen=True, slots=True)
class Dial:
    """What ``begin_dial`` found: go ahead, the call is already placed, nobody knows whether
    it was, or the call id belongs to another user."""

    state: DialState
    vapi_call_id: str | None = None


class CallOutcomeRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    call_id: str
    user_id: str
    vapi_call_id: str | None = None
    outcome: str
    ended_reason: str | None = None
    transcript: str | None = None
    recording_url: str | None = None
    cost_micros: int | None = None
    duration_ms: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None


class CampaignStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    campaign_id: str
    user_id: str
    calls_made: int
    calls_successful: int
    calls_failed: int
    no_answer: int
    busy: int
    voicemail: int
    total_duration_seconds: float
    total_cost: float

    @classmethod
    def empty(cls, campaign_id: str, user_id: str = "") -> CampaignStats:
        return cls(
            campaign_id=campaign_id,
            user_id=user_id,
            calls_made=0,
            calls_successful=0,
            calls_failed=0,
            no_answer=0,
            busy=0,
            voicemail=0,
            total_duration_seconds=0.0,
            total_cost=0.0,
        )


class CallStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: TokenCipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher

    async def begin_dial(
        self,
        *,
        call_id: str,
        user_id: str,
        job_id: str,
        campaign_id: str | None,
        assistant_id: str,
        phone_number: str,
        attempt: int,
    ) -> Dial:
        """Mark ``attempt``'s call as being placed, unless that attempt's call was placed or
        may have been (then say which: placing it again could ring the customer twice)."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(VoiceCall, call_id, with_for_update=True)
            if row is not None and row.user_id != user_id:
                return Dial("foreign")
            if row is not None and row.attempt == attempt:
                if row.vapi_call_id is not None:
                    return Dial("placed", row.vapi_call_id)
                if row.status == "dialing":
                    return Dial("unknown")
            values: dict[str, Any] = {
                "user_id": user_id,
                "job_id": job_id,
                "campaign_id": campaign_id,
                "assistant_id": assistant_id,
                "phone_number_ciphertext": self._cipher.encrypt(phone_number, bound_to=call_id),
                "attempt": attempt,
                "vapi_call_id": None,
                "status": "dialing",
                "outcome": None,
                "ended_reason": None,
                "failure_reason": None,
                "updated_at": now,
            }
            if row is None:
                session.add(VoiceCall(call_id=call_id, created_at=now, **values))
            elif row.counted_at is not None:
                # A finished call (a job retried by hand) keeps its record and count.
                return Dial("placed", row.vapi_call_id) if row.vapi_call_id else Dial("unknown")
            else:
                for key, value in values.items():
                    setattr(row, key, value)
        return Dial("new")

    async def dial_failed(self, call_id: str, attempt: int) -> None:
        """The create request was answered with an error: no call exists, it may be retried."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(VoiceCall)
                .where(
                    VoiceCall.call_id == call_id,
                    VoiceCall.attempt == attempt,
                    VoiceCall.vapi_call_id.is_(None),
                )
                .values(status="queued", updated_at=utcnow())
            )

    async def attempt_failed(
        self,
        call_id: str,
        user_id: str,
        vapi_call_id: str | None,
        ended_reason: str | None,
        failure_reason: str | None,
    ) -> None:
        """An attempt's call failed to connect and the job tries again: keep why, count nothing."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(VoiceCall)
                .where(
                    VoiceCall.call_id == call_id,
                    VoiceCall.user_id == user_id,
                    VoiceCall.counted_at.is_(None),
                )
                .values(
                    status="queued",
                    vapi_call_id=vapi_call_id,
                    ended_reason=ended_reason,
                    failure_reason=failure_reason,
                    updated_at=utcnow(),
                )
            )

    async def placed(self, call_id: str, attempt: int, vapi_call_id: str, status: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(VoiceCall)
                .where(VoiceCall.call_id == call_id, VoiceCall.attempt == attempt)
                .values(vapi_call_id=vapi_call_id, status=status, updated_at=utcnow())
            )

    async def set_status(self, vapi_call_id: str, status: str) -> str | None:
        """Record a live status of a placed call; the job id of the call, if it is known."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.scalar(
                select(VoiceCall).where(VoiceCall.vapi_call_id == vapi_call_id)
            )
            if row is None:
                return None
            if row.counted_at is None and row.status != "ended":
                row.status = status
                row.updated_at = utcnow()
            return row.job_id

    async def phone_number(self, call_id: str) -> str:
        async with self._sessionmaker() as session:
            row = await session.get(VoiceCall, call_id)
            if row is None:
                raise LookupError(f"no call {call_id!r}")
            return self._cipher.decrypt(row.phone_number_ciphertext, bound_to=call_id)

    async def get(self, call_id: str) -> VoiceCall | None:
        async with self._sessionmaker() as session:
            return await session.get(VoiceCall, call_id)

    async def finish(self, record: CallOutcomeRecord) -> bool:
        """Write the call's outcome and count it in its campaign, atomically; False when it
        had been counted already (the record is left as it was)."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            values = record.model_dump(exclude={"call_id", "user_id"})
            marked = await session.execute(
                update(VoiceCall)
                .where(
                    VoiceCall.call_id == record.call_id,
                    VoiceCall.user_id == record.user_id,
                    VoiceCall.counted_at.is_(None),
                )
                .values(**values, status="ended", counted_at=now, updated_at=now)
                .returning(VoiceCall.campaign_id, VoiceCall.user_id)
            )
            row = marked.first()
            if row is None:
                return False
            campaign_id, user_id = row
            if campaign_id is None:
                return True
            counter = _OUTCOME_COUNTER[record.outcome]
            increments = {
                "calls_made": 1,
                counter: 1,
                "total_duration_ms": record.duration_ms or 0,
                "total_cost_micros": record.cost_micros or 0,
            }
            await session.execute(
                dialect_insert(session, VoiceCampaign)
                .values(
                    campaign_id=campaign_id,
                    user_id=user_id,
                    **dict.fromkeys(_COUNTERS, 0),
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[VoiceCampaign.campaign_id])
            )
            table = VoiceCampaign.__table__.c
            await session.execute(
                update(VoiceCampaign)
                .where(VoiceCampaign.campaign_id == campaign_id)
                .values(
                    {table[name]: table[name] + amount for name, amount in increments.items()}
                    | {table.updated_at: now}
                )
            )
            return True

    async def campaign_stats(self, campaign_id: str) -> CampaignStats | None:
        async with self._sessionmaker() as session:
            row = await session.get(VoiceCampaign, campaign_id)
            if row is None:
                return None
            return CampaignStats(
                campaign_id=row.campaign_id,
                user_id=row.user_id,
                calls_made=row.calls_made,
                calls_successful=row.calls_successful,
                calls_failed=row.calls_failed,
                no_answer=row.no_answer,
                busy=row.busy,
                voicemail=row.voicemail,
                total_duration_seconds=row.total_duration_ms / 1000,
                total_cost=row.total_cost_micros / 1_000_000,
            )


_COUNTERS = (
    "calls_made",
    "calls_successful",
    "calls_failed",
    "no_answer",
    "busy",
    "voicemail",
    "total_duration_ms",
    "total_cost_micros",
)
