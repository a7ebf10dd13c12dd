"""Uploaded ad data files and the audit trail of ad automation (``ad_actions``).

An action's row is written before the provider is asked (``pending``) and marked ``done``
after, under a key that allows one action per user, rule, entity and day: a retried job,
or another job the same day, finds the row and takes its recorded values instead of
deciding again, so a budget raise is never applied twice.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.ads import PlannedAction
from db.base import utcnow
from db.models import AdAction, AdDataFile
from db.session import dialect_insert

MAX_FILE_BYTES = 64 * 1024 * 1024


class StoredFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    filename: str
    format: str
    content: bytes


class AdFileStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def put(self, user_id: str, content: bytes, *, filename: str, file_format: str) -> str:
        file_id = "adf_" + secrets.token_urlsafe(18)
        async with self._sessionmaker() as session, session.begin():
            session.add(
                AdDataFile(
                    id=file_id,
                    user_id=user_id,
                    filename=filename[:255],
                    format=file_format,
                    content=content,
                    size_bytes=len(content),
                    created_at=utcnow(),
                )
            )
        return file_id

    async def get(self, file_id: str, *, user_id: str) -> StoredFile | None:
        """The file if it belongs to ``user_id`` (another user's file reads as absent)."""
        async with self._sessionmaker() as session:
            row = await session.get(AdDataFile, file_id)
            if row is None or row.user_id != user_id:
                return None
            return StoredFile(
                id=row.id, filename=row.filename, format=row.format, content=row.content
            )

    async def purge_before(self, before: datetime, batch: int) -> int:
        async with self._sessionmaker() as session, session.begin():
            ids = list(
                (
                    await session.scalars(
                        select(AdDataFile.id).where(AdDataFile.created_at < before).limit(batch)
                    )
                ).all()
            )
            if ids:
                await session.execute(delete(AdDataFile).where(AdDataFile.id.in_(ids)))
            return len(ids)


class ActionRecord(BaseModel):
    """One audit record: who (user and job), which rule, what changed, when."""

    model_config = ConfigDict(frozen=True)

    id: str
    job_id: str
    user_id: str
    provider: str
    account_id: str
    rule_id: str
    action: str
    level: str
    entity_id: str
    day: str
    before: dict[str, Any]
    after: dict[str, Any]
    status: str
    error: str | None
    created_at: datetime
    done_at: datetime | None


def action_key(user_id: str, rule_id: str, level: str, entity_id: str, day: str) -> str:
    text = "\x1f".join((user_id, rule_id, level, entity_id, day))
    return hashlib.sha256(text.encode()).hexdigest()[:64]


def _record(row: AdAction) -> ActionRecord:
    return ActionRecord.model_validate(row, from_attributes=True)


class AdActionStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def claim(
        self,
        planned: PlannedAction,
        *,
        job_id: str,
        user_id: str,
        provider: str,
        account_id: str,
        day: str,
    ) -> tuple[ActionRecord, bool]:
        """The action's record for ``day``, written as ``pending`` if there was none, and
        whether this call wrote it. A record found keeps its own before and after."""
        key = action_key(user_id, planned.rule_id, planned.level, planned.entity_id, day)
        async with self._sessionmaker() as session, session.begin():
            insert = dialect_insert(session, AdAction).values(
                id=key,
                job_id=job_id,
                user_id=user_id,
                provider=provider,
                account_id=account_id,
                rule_id=planned.rule_id,
                action=planned.action,
                level=planned.level.value,
                entity_id=planned.entity_id,
                day=day,
                before=planned.before,
                after=planned.after,
                status="pending",
                created_at=utcnow(),
            )
            created = await session.execute(insert.on_conflict_do_nothing().returning(AdAction.id))
            wrote = created.scalar() is not None
            row = await session.get(AdAction, key, populate_existing=True)
            assert row is not None
            return _record(row), wrote

    async def finish(self, action_id: str, *, error: str | None = None) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(AdAction)
                .where(AdAction.id == action_id)
                .values(status="failed" if error else "done", error=error, done_at=utcnow())
            )

    async def retake(self, action_id: str, *, job_id: str) -> ActionRecord:
        """A failed action made pending again by the job that tries it next."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(AdAction)
                .where(AdAction.id == action_id)
                .values(status="pending", job_id=job_id, error=None, done_at=None)
            )
            row = await session.get(AdAction, action_id, populate_existing=True)
            assert row is not None
            return _record(row)

    async def done_keys(self, user_id: str, day: str) -> set[str]:
        """The ids of the user's actions already taken on ``day``."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(AdAction.id).where(
                    AdAction.user_id == user_id, AdAction.day == day, AdAction.status == "done"
                )
            )
            return set(rows)

    async def of_user(
        self, user_id: str, *, job_id: str | None = None, limit: int = 100
    ) -> list[ActionRecord]:
        """The user's audit records, newest first (one job's when ``job_id`` is given)."""
        query = select(AdAction).where(AdAction.user_id == user_id)
        if job_id is not None:
            query = query.where(AdAction.job_id == job_id)
        async with self._sessionmaker() as session:
            rows = await session.scalars(query.order_by(AdAction.created_at.desc()).limit(limit))
            return [_record(row) for row in rows]
