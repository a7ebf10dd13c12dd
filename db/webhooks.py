"""Delivery log of outbound webhooks: one row per message, one row per attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Result, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import (
    ATTEMPT_OUTCOMES,
    AttemptOutcome,
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryAttempt,
)
from db.session import dialect_insert

# Errors come pre-shortened from the sender; this only guards the column against accidents.
MAX_ERROR_CHARS = 2000


_STATUS_AFTER: dict[str, DeliveryStatus] = {
    "delivered": "delivered",
    "failed": "failed",
    "retry": "pending",
}


class NewDelivery(BaseModel):
    """What record_attempt needs to create a delivery row on its first attempt."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    url: str
    event_type: str
    payload: dict[str, Any]


class DeliveryNotFound(LookupError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"no webhook delivery with id {delivery_id!r}")


class DeliveryRecord(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    user_id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class AttemptRecord(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    delivery_id: str
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    outcome: AttemptOutcome


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


class WebhookDeliveryStore:
    """Reads and writes the delivery log; every write is idempotent on its ids."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def ensure_delivery(
        self,
        delivery_id: str,
        user_id: str,
        url: str,
        event_type: str,
        payload: dict[str, Any],
    ) -> None:
        """Insert the delivery as pending unless it exists (a retried activity calls again)."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            stmt = (
                dialect_insert(session, WebhookDelivery)
                .values(
                    id=delivery_id,
                    user_id=user_id,
                    url=url,
                    event_type=event_type,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[WebhookDelivery.id])
            )
            await session.execute(stmt)

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: int,
        started_at: datetime,
        duration_ms: float,
        status_code: int | None,
        error: str | None,
        outcome: AttemptOutcome,
        *,
        delivery: NewDelivery | None = None,
    ) -> None:
        """Upsert attempt ``attempt`` and fold it into the delivery's summary, in one
        transaction of two statements (this runs once per delivery attempt, on the hot path).

        With ``delivery`` the delivery row is created if missing; without it, it must exist
        (``ensure_delivery``) or DeliveryNotFound is raised. The delivery's status follows its
        latest attempt (retry -> pending, delivered, failed); re-recording an older attempt
        number updates only that attempt's row.
        """
        if outcome not in ATTEMPT_OUTCOMES:
            raise ValueError(f"outcome must be one of {ATTEMPT_OUTCOMES}, not {outcome!r}")
        if error is not None:
            error = error[:MAX_ERROR_CHARS]
        now = utcnow()
        summary: dict[str, Any] = {
            "attempts": attempt,
            "last_status_code": status_code,
            "last_error": error,
            "status": _STATUS_AFTER[outcome],
            "updated_at": now,
        }
        if outcome == "delivered":
            summary["delivered_at"] = now
        elif outcome == "failed":
            summary["failed_at"] = now
        async with self._sessionmaker() as session, session.begin():
            # The delivery first: it locks the delivery row (PostgreSQL) or takes SQLite's
            # write lock up front, so concurrent recorders queue instead of deadlocking.
            if delivery is not None:
                insert_delivery = dialect_insert(session, WebhookDelivery).values(
                    id=delivery_id,
                    user_id=delivery.user_id,
                    url=delivery.url,
                    event_type=delivery.event_type,
                    payload=delivery.payload,
                    created_at=now,
                    **summary,
                )
                await session.execute(
                    insert_delivery.on_conflict_do_update(
                        index_elements=[WebhookDelivery.id],
                        set_={name: insert_delivery.excluded[name] for name in summary},
                        where=WebhookDelivery.attempts <= attempt,
                    )
                )
            else:
                touched = await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts <= attempt)
                    .values(**summary)
                )
                if _rowcount(touched) == 0:
                    exists = await session.scalar(
                        select(WebhookDelivery.id).where(WebhookDelivery.id == delivery_id)
                    )
                    if exists is None:
                        raise DeliveryNotFound(delivery_id)

            insert = dialect_insert(session, WebhookDeliveryAttempt).values(
                delivery_id=delivery_id,
                attempt=attempt,
                started_at=started_at,
                duration_ms=duration_ms,
                status_code=status_code,
                error=error,
                outcome=outcome,
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[
                        WebhookDeliveryAttempt.delivery_id,
                        WebhookDeliveryAttempt.attempt,
                    ],
                    set_={
                        "started_at": insert.excluded.started_at,
                        "duration_ms": insert.excluded.duration_ms,
                        "status_code": insert.excluded.status_code,
                        "error": insert.excluded.error,
                        "outcome": insert.excluded.outcome,
                    },
                )
            )

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            return None if row is None else DeliveryRecord.model_validate(row)

    async def list_attempts(self, delivery_id: str) -> list[AttemptRecord]:
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(WebhookDeliveryAttempt)
                .where(WebhookDeliveryAttempt.delivery_id == delivery_id)
                .order_by(WebhookDeliveryAttempt.attempt)
            )
            return [AttemptRecord.model_validate(row) for row in rows]

    async def list_failed(self, user_id: str | None, limit: int) -> list[DeliveryRecord]:
        """Failed deliveries, newest failure first, of one user or of everyone."""
        query = select(WebhookDelivery).where(WebhookDelivery.status == "failed")
        if user_id is not None:
            query = query.where(WebhookDelivery.user_id == user_id)
        query = query.order_by(WebhookDelivery.failed_at.desc(), WebhookDelivery.id).limit(limit)
        async with self._sessionmaker() as session:
            rows = await session.scalars(query)
            return [DeliveryRecord.model_validate(row) for row in rows]
