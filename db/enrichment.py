"""Per-lead outcomes of LEAD_ENRICHMENT jobs, keyed by the lead's position in the job.

Writes are upserts on (job, position), so a batch redone after a retry overwrites its own
rows instead of adding to them, and the counts stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import EnrichmentResult
from db.session import dialect_insert


class LeadOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: int
    lead_id: str
    status: str  # enriched, failed or skipped
    result: dict[str, Any] | None = None
    error: str | None = None


class EnrichmentStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def record(self, job_id: str, outcomes: Sequence[LeadOutcome]) -> None:
        if not outcomes:
            return
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            insert = dialect_insert(session, EnrichmentResult).values(
                [{"job_id": job_id, **o.model_dump(), "updated_at": now} for o in outcomes]
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[EnrichmentResult.job_id, EnrichmentResult.position],
                    set_={
                        "lead_id": insert.excluded.lead_id,
                        "status": insert.excluded.status,
                        "result": insert.excluded.result,
                        "error": insert.excluded.error,
                        "updated_at": insert.excluded.updated_at,
                    },
                )
            )

    async def clear(self, job_id: str) -> None:
        """Forget the job's outcomes (a job starting from its first lead, or removed)."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(delete(EnrichmentResult).where(EnrichmentResult.job_id == job_id))

    async def counts(self, job_id: str) -> dict[str, int]:
        async with self._sessionmaker() as session:
            rows = await session.execute(
                select(EnrichmentResult.status, func.count())
                .where(EnrichmentResult.job_id == job_id)
                .group_by(EnrichmentResult.status)
            )
            found = {status: int(count) for status, count in rows.all()}
        return {status: found.get(status, 0) for status in ("enriched", "failed", "skipped")}

    async def page(self, job_id: str, *, offset: int, limit: int) -> list[LeadOutcome]:
        """Outcomes in lead order from position ``offset`` (a key range, not an OFFSET scan)."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(EnrichmentResult)
                .where(EnrichmentResult.job_id == job_id, EnrichmentResult.position >= offset)
                .order_by(EnrichmentResult.position)
                .limit(limit)
            )
            return [
                LeadOutcome(
                    position=row.position,
                    lead_id=row.lead_id,
                    status=row.status,
                    result=row.result,
                    error=row.error,
                )
                for row in rows.all()
            ]
