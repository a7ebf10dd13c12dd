"""Delivery log of outbound webhooks: one row per message, one row per attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Executable, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import (
    ATTEMPT_OUTCOMES,
    AttemptOutcome,
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryAttempt,
)
from db.session import dialect_insert, rowcount

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
    secret_id: str | None = None


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
    secret_id: str | None = None
    redelivered_as: str | None = None
    discarded_at: datetime | None = None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class NewAttempt(BaseModel):
    """One delivery attempt: when, how long, what the receiver answered, what came of it."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    outcome: AttemptOutcome


class AttemptRecord(NewAttempt):
    delivery_id: str


@dataclass(frozen=True)
class _Statements:
    """The hot-path statements of record_attempt, with bound parameters."""

    upsert_delivery: Executable
    update_delivery: Executable
    upsert_attempt: Executable

    @classmethod
    def build(cls, session: AsyncSession) -> _Statements:
        # Plain tables, not the ORM classes: executing against the classes goes through the
        # ORM's bulk-persistence layer, which costs more than the statements themselves.
        delivery_table = cast(Table, WebhookDelivery.__table__)
        attempt_table = cast(Table, WebhookDeliveryAttempt.__table__)
        delivery, attempt = delivery_table.c, attempt_table.c
        summary: dict[str, Any] = {
            "attempts": bindparam("attempt"),
            "last_status_code": bindparam("status_code"),
            "last_error": bindparam("error"),
            "status": bindparam("status"),
            "updated_at": bindparam("now"),
        }
        new_delivery = dialect_insert(session, delivery_table).values(
            id=bindparam("delivery_id"),
            user_id=bindparam("user_id"),
            url=bindparam("url"),
            event_type=bindparam("event_type"),
            payload=bindparam("payload", type_=delivery.payload.type),
            secret_id=bindparam("secret_id"),
            created_at=bindparam("now"),
            delivered_at=bindparam("delivered_at"),
            failed_at=bindparam("failed_at"),
            **summary,
        )
        excluded = new_delivery.excluded
        upsert_delivery = new_delivery.on_conflict_do_update(
            index_elements=[delivery.id],
            set_={
                **{name: excluded[name] for name in summary},
                "delivered_at": func.coalesce(excluded.delivered_at, delivery.delivered_at),
                "failed_at": func.coalesce(excluded.failed_at, delivery.failed_at),
                "secret_id": func.coalesce(delivery.secret_id, excluded.secret_id),
            },
            where=delivery.attempts <= excluded.attempts,
        )
        update_delivery = (
            update(WebhookDelivery)
            .where(
                delivery.id == bindparam("delivery_id"), delivery.attempts <= bindparam("attempt")
            )
            .values(
                **summary,
                delivered_at=func.coalesce(bindparam("delivered_at"), delivery.delivered_at),
                failed_at=func.coalesce(bindparam("failed_at"), delivery.failed_at),
            )
        )
        new_attempt = dialect_insert(session, attempt_table).values(
            delivery_id=bindparam("delivery_id"),
            attempt=bindparam("attempt"),
            started_at=bindparam("started_at"),
            duration_ms=bindparam("duration_ms"),
            status_code=bindparam("status_code"),
            error=bindparam("error"),
            outcome=bindparam("outcome"),
        )
        upsert_attempt = new_attempt.on_conflict_do_update(
            index_elements=[attempt.delivery_id, attempt.attempt],
            set_={
                name: new_attempt.excluded[name]
                for name in ("started_at", "duration_ms", "status_code", "error", "outcome")
            },
        )
        return cls(upsert_delivery, update_delivery, upsert_attempt)


class WebhookDeliveryStore:
    """Reads and writes the delivery log; every write is idempotent on its ids."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._built: dict[str, _Statements] = {}

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
        params: dict[str, Any] = {
            "delivery_id": delivery_id,
            "attempt": attempt,
            "started_at": started_at,
            "duration_ms": duration_ms,
            "status_code": status_code,
            "error": error,
            "outcome": outcome,
            "status": _STATUS_AFTER[outcome],
            "now": now,
            "delivered_at": now if outcome == "delivered" else None,
            "failed_at": now if outcome == "failed" else None,
        }
        async with self._sessionmaker() as session, session.begin():
            statements = self._statements(session)
            # The delivery first: it locks the delivery row (PostgreSQL) or takes SQLite's
            # write lock up front, so concurrent recorders queue instead of deadlocking.
            if delivery is not None:
                await session.execute(
                    statements.upsert_delivery, {**params, **delivery.model_dump()}
                )
            else:
                touched = await session.execute(statements.update_delivery, params)
                if rowcount(touched) == 0:
                    exists = await session.scalar(
                        select(WebhookDelivery.id).where(WebhookDelivery.id == delivery_id)
                    )
                    if exists is None:
                        raise DeliveryNotFound(delivery_id)
            await session.execute(statements.upsert_attempt, params)

    async def record_attempts(
        self, delivery_id: str, attempts: Sequence[NewAttempt], delivery: NewDelivery
    ) -> None:
        """record_attempt for each of ``attempts``, creating the delivery row if needed."""
        for a in attempts:
            await self.record_attempt(
                delivery_id,
                a.attempt,
                a.started_at,
                a.duration_ms,
                a.status_code,
                a.error,
                a.outcome,
                delivery=delivery,
            )

    def _statements(self, session: AsyncSession) -> _Statements:
        # Built once per backend and executed with parameters: building these statements
        # per call (the excluded-alias and column coercions) cost more CPU than the database.
        name = session.get_bind().dialect.name
        built = self._built.get(name)
        if built is None:
            built = self._built[name] = _Statements.build(session)
        return built

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
