"""Large list inputs of jobs, stored when the job is added and read back in slices.

A job whose data has a list that can be any length (LEAD_ENRICHMENT's 100,000 leads) names it
in ``JobData.stored_lists``; the client writes the items here, one row each with its position,
and the job carries only their count, so neither its input nor its history grows with the
list. Activities read ``slice(job_id, field, start, stop)`` by position (a primary-key range,
no OFFSET). Rows are purged by the worker's housekeeping once no job can need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import JobInput, JobInputItem

# Rows per INSERT statement: large enough to be quick, small enough for every driver.
INSERT_CHUNK = 1000


class InputOfAnotherUser(ValueError):
    """The job id already holds another user's inputs."""


class JobInputStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def put(
        self,
        job_id: str,
        field: str,
        user_id: str,
        items: Sequence[dict[str, Any]],
        *,
        needed_for: timedelta,
    ) -> int:
        """Store ``items`` as the job's ``field`` (replacing earlier ones of the same user);
        their count. Raises InputOfAnotherUser when another user's inputs hold the job id."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            held = await session.get(JobInput, (job_id, field), with_for_update=True)
            if held is not None and held.user_id != user_id:
                raise InputOfAnotherUser(job_id)
            await session.execute(
                delete(JobInputItem).where(
                    JobInputItem.job_id == job_id, JobInputItem.field == field
                )
            )
            await session.execute(
                delete(JobInput).where(JobInput.job_id == job_id, JobInput.field == field)
            )
            session.add(
                JobInput(
                    job_id=job_id,
                    field=field,
                    user_id=user_id,
                    count=len(items),
                    created_at=now,
                    needed_until=now + needed_for,
                )
            )
            for start in range(0, len(items), INSERT_CHUNK):
                chunk = items[start : start + INSERT_CHUNK]
                await session.execute(
                    insert(JobInputItem),
                    [
                        {"job_id": job_id, "field": field, "position": start + n, "item": item}
                        for n, item in enumerate(chunk)
                    ],
                )
        return len(items)

    async def slice(
        self, job_id: str, field: str, start: int, stop: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """The items at positions ``start <= position < stop``, in order."""
        async with self._sessionmaker() as session:
            rows = await session.execute(
                select(JobInputItem.position, JobInputItem.item)
                .where(
                    JobInputItem.job_id == job_id,
                    JobInputItem.field == field,
                    JobInputItem.position >= start,
                    JobInputItem.position < stop,
                )
                .order_by(JobInputItem.position)
            )
            return [(position, item) for position, item in rows.all()]

    async def owner(self, job_id: str, field: str) -> str | None:
        async with self._sessionmaker() as session:
            row = await session.get(JobInput, (job_id, field))
            return row.user_id if row is not None else None

    async def remove(self, job_id: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(delete(JobInputItem).where(JobInputItem.job_id == job_id))
            await session.execute(delete(JobInput).where(JobInput.job_id == job_id))

    async def purge_expired(self, limit: int = 100) -> int:
        """Delete the inputs no job can need any more (up to ``limit`` jobs' worth)."""
        async with self._sessionmaker() as session, session.begin():
            expired = (
                await session.execute(
                    select(JobInput.job_id, JobInput.field)
                    .where(JobInput.needed_until < utcnow())
                    .limit(limit)
                )
            ).all()
            for job_id, field in expired:
                await session.execute(
                    delete(JobInputItem).where(
                        JobInputItem.job_id == job_id, JobInputItem.field == field
                    )
                )
                await session.execute(
                    delete(JobInput).where(JobInput.job_id == job_id, JobInput.field == field)
                )
            return len(expired)
