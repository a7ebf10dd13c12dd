"""Voice calls and campaign statistics.

A call row is keyed by the user and their call id, belongs to the one job that places it,
and follows that job's attempts: ``begin_dial``
marks the row before the create request goes out, ``placed`` records Vapi's call id, and
``finish`` writes the outcome and, in the same transaction, adds the call to its campaign's
statistics, guarded by ``counted_at``: however often ``finish`` runs, a call is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.base import utcnow
from db.models import CALL_STATUSES, VoiceCall, VoiceCampaign
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

DialState = Literal["new", "placed", "unknown", "taken"]


@dataclass(frozen=True, slots=True)
class Dial:
    """What ``begin_dial`` found: go ahead, the call is already placed, nobody knows whether
    it was, or the call id is another job's (or was made and counted already)."""

    state: DialState
    vapi_call_id: str | None = None


class CallOutcomeRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

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


@dataclass(frozen=True, slots=True)
class CallRef:
    """A call as its job knows it: the user's call id and the job that places it."""

    user_id: str
    call_id: str
    job_id: str

    @property
    def bound_to(self) -> str:
        return f"{self.user_id}/{self.call_id}"

    def owns(self) -> Any:
        return and_(
            VoiceCall.user_id == self.user_id,
            VoiceCall.call_id == self.call_id,
            VoiceCall.job_id == self.job_id,
        )


class CallStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: TokenCipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher

    async def begin_dial(
        self,
        ref: CallRef,
        *,
        campaign_id: str | None,
        assistant_id: str,
        phone_number: str,
        attempt: int,
    ) -> Dial:
        """Mark ``attempt``'s call as being placed, unless that attempt's call was placed or
        may have been (then say which: placing it again could ring the customer twice), or
        the call id is another job's."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(VoiceCall, (ref.user_id, ref.call_id), with_for_update=True)
            if row is not None and (row.job_id != ref.job_id or row.counted_at is not None):
                # Another job's call, or this job's call already made and counted (a job
                # retried by hand): a new call needs a new call id.
                return Dial("taken")
            if row is not None and row.attempt == attempt:
                if row.vapi_call_id is not None:
                    return Dial("placed", row.vapi_call_id)
                if row.status == "dialing":
                    return Dial("unknown")
            values: dict[str, Any] = {
                "job_id": ref.job_id,
                "campaign_id": campaign_id,
                "assistant_id": assistant_id,
                "phone_number_ciphertext": self._cipher.encrypt(
                    phone_number, bound_to=ref.bound_to
                ),
                "attempt": attempt,
                "vapi_call_id": None,
                "status": "dialing",
                "outcome": None,
                "ended_reason": None,
                "failure_reason": None,
                "updated_at": now,
            }
            if row is None:
                session.add(
                    VoiceCall(user_id=ref.user_id, call_id=ref.call_id, created_at=now, **values)
                )
            else:
                for key, value in values.items():
                    setattr(row, key, value)
        return Dial("new")

    async def dial_failed(self, ref: CallRef, attempt: int) -> None:
        """The create request was refused: no call exists, it may be retried."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(VoiceCall)
                .where(ref.owns(), VoiceCall.attempt == attempt, VoiceCall.vapi_call_id.is_(None))
                .values(status="queued", updated_at=utcnow())
            )

    async def attempt_failed(
        self,
        ref: CallRef,
        vapi_call_id: str | None,
        ended_reason: str | None,
        failure_reason: str | None,
    ) -> None:
        """An attempt's call failed to connect and the job tries again: keep why, count nothing."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(VoiceCall)
                .where(ref.owns(), VoiceCall.counted_at.is_(None))
                .values(
                    status="queued",
                    vapi_call_id=vapi_call_id,
                    ended_reason=ended_reason,
                    failure_reason=failure_reason,
                    updated_at=utcnow(),
                )
            )

    async def placed(self, ref: CallRef, attempt: int, vapi_call_id: str, status: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(VoiceCall)
                .where(ref.owns(), VoiceCall.attempt == attempt)
                .values(
                    vapi_call_id=vapi_call_id,
                    status=status if status in CALL_STATUSES else "queued",
                    updated_at=utcnow(),
                )
            )

    async def set_status(self, vapi_call_id: str, status: str) -> str | None:
        """Record a live status of a placed call (statuses we do not keep are ignored); the
        job id of the call, if it is known."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.scalar(
                select(VoiceCall).where(VoiceCall.vapi_call_id == vapi_call_id)
            )
            if row is None:
                return None
            if row.counted_at is None and row.status != "ended" and status in CALL_STATUSES:
                row.status = status
                row.updated_at = utcnow()
            return row.job_id

    async def phone_number(self, ref: CallRef) -> str:
        async with self._sessionmaker() as session:
            row = await session.get(VoiceCall, (ref.user_id, ref.call_id))
            if row is None:
                raise LookupError("no such call")
            return self._cipher.decrypt(row.phone_number_ciphertext, bound_to=ref.bound_to)

    async def get(self, call_id: str, *, user_id: str | None = None) -> VoiceCall | None:
        """A user's call; without ``user_id`` (operators), the first user's call of that id."""
        async with self._sessionmaker() as session:
            if user_id is not None:
                return await session.get(VoiceCall, (user_id, call_id))
            return await session.scalar(
                select(VoiceCall)
                .where(VoiceCall.call_id == call_id)
                .order_by(VoiceCall.created_at)
                .limit(1)
            )

    async def finish(self, ref: CallRef, record: CallOutcomeRecord) -> bool:
        """Write the call's outcome and count it in its campaign, atomically; False when it
        had been counted already (the record is left as it was) or is another job's."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            values = record.model_dump()
            marked = await session.execute(
                update(VoiceCall)
                .where(ref.owns(), VoiceCall.counted_at.is_(None))
                .values(**values, status="ended", counted_at=now, updated_at=now)
                .returning(VoiceCall.campaign_id)
            )
            row = marked.first()
            if row is None:
                return False
            (campaign_id,) = row
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
                    user_id=ref.user_id,
                    campaign_id=campaign_id,
                    **dict.fromkeys(_COUNTERS, 0),
                    updated_at=now,
                )
                .on_conflict_do_nothing(
                    index_elements=[VoiceCampaign.user_id, VoiceCampaign.campaign_id]
                )
            )
            table = VoiceCampaign.__table__.c
            await session.execute(
                update(VoiceCampaign)
                .where(
                    VoiceCampaign.user_id == ref.user_id, VoiceCampaign.campaign_id == campaign_id
                )
                .values(
                    {table[name]: table[name] + amount for name, amount in increments.items()}
                    | {table.updated_at: now}
                )
            )
            return True

    async def campaign_stats(
        self, campaign_id: str, *, user_id: str | None = None
    ) -> CampaignStats | None:
        """A user's campaign; without ``user_id`` (operators), the sums over every user's
        campaign of that id."""
        columns = [func.coalesce(func.sum(getattr(VoiceCampaign, name)), 0) for name in _COUNTERS]
        query = select(func.count(), *columns).where(VoiceCampaign.campaign_id == campaign_id)
        if user_id is not None:
            query = query.where(VoiceCampaign.user_id == user_id)
        async with self._sessionmaker() as session:
            found, *sums = (await session.execute(query)).one()
        if not found:
            return None
        totals = dict(zip(_COUNTERS, (int(v) for v in sums), strict=True))
        return CampaignStats(
            campaign_id=campaign_id,
            user_id=user_id or "",
            calls_made=totals["calls_made"],
            calls_successful=totals["calls_successful"],
            calls_failed=totals["calls_failed"],
            no_answer=totals["no_answer"],
            busy=totals["busy"],
            voicemail=totals["voicemail"],
            total_duration_seconds=totals["total_duration_ms"] / 1000,
            total_cost=totals["total_cost_micros"] / 1_000_000,
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
