"""Webhook dead letters and disabled endpoints.

A delivery that failed for good is a dead letter until it is redelivered or discarded. The
list is newest failure first, keyset-paginated by (failed_at, id). ``claim_redelivery`` marks
a dead letter with the id of the job that redelivers it in one conditional UPDATE, so two
clicks at once redeliver it once. An endpoint that answered 410 Gone is disabled for its user
until it is enabled again; deliveries read the set through a short cache.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpointDisabled
from db.session import dialect_insert, rowcount
from db.webhooks import AttemptRecord, DeliveryRecord

# How long a worker trusts what it read about an endpoint being disabled.
DISABLED_CACHE_S = 10.0


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters an operation means: these ids, or every one matching the rest."""

    ids: tuple[str, ...] | None = None
    user_id: str | None = None
    event_type: str | None = None
    older_than: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery: DeliveryRecord
    attempts: list[AttemptRecord]


def _dead() -> ColumnElement[bool]:
    return and_(
        WebhookDelivery.status == "failed",
        WebhookDelivery.redelivered_as.is_(None),
        WebhookDelivery.discarded_at.is_(None),
    )


def _matching(query: Any, which: DeadFilter) -> Any:
    query = query.where(_dead())
    if which.ids is not None:
        query = query.where(WebhookDelivery.id.in_(which.ids))
    if which.user_id is not None:
        query = query.where(WebhookDelivery.user_id == which.user_id)
    if which.event_type is not None:
        query = query.where(WebhookDelivery.event_type == which.event_type)
    if which.older_than is not None:
        query = query.where(WebhookDelivery.failed_at < which.older_than)
    return query


def encode_cursor(failed_at: datetime, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(f"{failed_at.isoformat()}|{delivery_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        when, _, delivery_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(when), delivery_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor this list gave out") from None


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class DeadLetterStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._disabled_cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def list_dead(
        self, which: DeadFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[DeadLetter], str | None]:
        """A page of dead letters, newest failure first, each with its whole attempt history;
        and the cursor of the next page (None at the end)."""
        query = _matching(select(WebhookDelivery), which)
        if cursor is not None:
            failed_at, delivery_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    WebhookDelivery.failed_at < failed_at,
                    and_(WebhookDelivery.failed_at == failed_at, WebhookDelivery.id > delivery_id),
                )
            )
        query = query.order_by(WebhookDelivery.failed_at.desc(), WebhookDelivery.id).limit(
            limit + 1
        )
        async with self._sessionmaker() as session:
            rows: list[WebhookDelivery] = list((await session.scalars(query)).all())
            page, more = rows[:limit], len(rows) > limit
            attempts = (
                await session.scalars(
                    select(WebhookDeliveryAttempt)
                    .where(WebhookDeliveryAttempt.delivery_id.in_([r.id for r in page]))
                    .order_by(WebhookDeliveryAttempt.delivery_id, WebhookDeliveryAttempt.attempt)
                )
            ).all()
        by_delivery: dict[str, list[AttemptRecord]] = {}
        for attempt in attempts:
            by_delivery.setdefault(attempt.delivery_id, []).append(
                AttemptRecord.model_validate(attempt)
            )
        letters = [
            DeadLetter(DeliveryRecord.model_validate(row), by_delivery.get(row.id, []))
            for row in page
        ]
        last = page[-1] if page and more else None
        next_cursor = (
            encode_cursor(last.failed_at, last.id) if last is not None and last.failed_at else None
        )
        return letters, next_cursor

    async def matching_ids(self, which: DeadFilter, *, limit: int = 10_000) -> list[str]:
        async with self._sessionmaker() as session:
            query = _matching(select(WebhookDelivery.id), which).order_by(WebhookDelivery.id)
            return list((await session.scalars(query.limit(limit))).all())

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        async with self._sessionmaker() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            return DeliveryRecord.model_validate(row) if row is not None else None

    async def claim_redelivery(self, delivery_id: str, job_id: str) -> bool:
        """Mark the dead letter as redelivered by ``job_id``; False if it is not dead any more
        (redelivered or discarded meanwhile)."""
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, _dead())
                .values(redelivered_as=job_id, updated_at=utcnow())
            )
            return rowcount(result) == 1

    async def release_claim(self, delivery_id: str, job_id: str) -> None:
        """Undo a claim whose job could not be added."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.redelivered_as == job_id)
                .values(redelivered_as=None)
            )

    async def discard(self, ids: list[str]) -> int:
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids), _dead())
                .values(discarded_at=utcnow(), updated_at=utcnow())
            )
            return rowcount(result)

    async def disable_endpoint(self, user_id: str, url: str, reason: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                dialect_insert(session, WebhookEndpointDisabled)
                .values(
                    user_id=user_id,
                    url_hash=url_hash(url),
                    url=url,
                    reason=reason[:500],
                    disabled_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["user_id", "url_hash"])
            )
        self._disabled_cache[(user_id, url)] = (time.monotonic(), True)

    async def enable_endpoint(self, user_id: str, url: str) -> bool:
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                delete(WebhookEndpointDisabled).where(
                    WebhookEndpointDisabled.user_id == user_id,
                    WebhookEndpointDisabled.url_hash == url_hash(url),
                )
            )
        self._disabled_cache.pop((user_id, url), None)
        return rowcount(result) > 0

    async def is_disabled(self, user_id: str, url: str) -> bool:
        """Whether the user's endpoint is disabled (read through a ``DISABLED_CACHE_S`` cache,
        so a delivery costs no query when nothing changed)."""
        key = (user_id, url)
        cached = self._disabled_cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < DISABLED_CACHE_S:
            return cached[1]
        async with self._sessionmaker() as session:
            found = await session.get(WebhookEndpointDisabled, (user_id, url_hash(url)))
        if len(self._disabled_cache) > 10_000:
            self._disabled_cache.clear()
        self._disabled_cache[key] = (now, found is not None)
        return found is not None
