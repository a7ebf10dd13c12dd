"""Job-id deduplication keys: a job id can be claimed once per dedup window.

Claims are race-safe on PostgreSQL and SQLite alike: the primary key decides between two
inserts, and a conditional UPDATE decides between two takeovers of an expired key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import JobDedupKey
from db.session import delete_expired, dialect_insert, rowcount

# A key can vanish between our INSERT and SELECT (released by its owner); then we try again.
_MAX_CLAIM_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """Whether the claim won; if not, what holds the id (None fields when claimed)."""

    claimed: bool
    queue: str | None = None
    job_type: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


class JobKeyStore:
    """Claims, releases and purges job-id deduplication keys."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def claim(
        self,
        job_id: str,
        queue: str,
        job_type: str,
        user_id: str | None,
        window: timedelta,
    ) -> ClaimResult:
        """Claim ``job_id`` for ``window``; an expired key is taken over, a live one is not."""
        for _ in range(_MAX_CLAIM_ROUNDS):
            now = utcnow()
            values = {
                "queue": queue,
                "job_type": job_type,
                "user_id": user_id,
                "created_at": now,
                "expires_at": now + window,
            }
            async with self._sessionmaker() as session, session.begin():
                inserted = await session.execute(
                    dialect_insert(session, JobDedupKey)
                    .values(job_id=job_id, **values)
                    .on_conflict_do_nothing(index_elements=[JobDedupKey.job_id])
                    # SQLAlchemy keeps an INSERT's rowcount only when asked to.
                    .execution_options(preserve_rowcount=True)
                )
                if rowcount(inserted) == 1:
                    return ClaimResult(claimed=True)
                # Of two concurrent takeovers the second re-checks the WHERE after the first
                # commits (PostgreSQL) or waits for the write lock (SQLite), and matches nothing.
                replaced = await session.execute(
                    update(JobDedupKey)
                    .where(JobDedupKey.job_id == job_id, JobDedupKey.expires_at <= now)
                    .values(**values)
                )
                if rowcount(replaced) == 1:
                    return ClaimResult(claimed=True)
                existing = (
                    await session.execute(select(JobDedupKey).where(JobDedupKey.job_id == job_id))
                ).scalar_one_or_none()
                if existing is not None:
                    return ClaimResult(
                        claimed=False,
                        queue=existing.queue,
                        job_type=existing.job_type,
                        created_at=existing.created_at,
                        expires_at=existing.expires_at,
                    )
        raise RuntimeError(f"could not claim or read the dedup key of job {job_id!r}")

    async def release(self, job_id: str) -> None:
        """Forget the key, e.g. because starting the job failed after the claim."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(delete(JobDedupKey).where(JobDedupKey.job_id == job_id))

    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired keys; returns how many were deleted."""
        return await delete_expired(
            self._sessionmaker, JobDedupKey.job_id, JobDedupKey.expires_at, limit=limit
        )
