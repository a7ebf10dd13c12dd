"""Stored reports of the analysis jobs (SEO audit, keyword analysis, ad analysis and ad
automation), one per job, readable by the job's user only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import AnalysisReport
from db.session import dialect_insert


class ReportStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def save(self, job_id: str, *, user_id: str, kind: str, report: dict[str, Any]) -> None:
        """Store (or replace, when a retry computes it again) the report of a job."""
        async with self._sessionmaker() as session, session.begin():
            insert = dialect_insert(session, AnalysisReport).values(
                job_id=job_id, user_id=user_id, kind=kind, report=report, created_at=utcnow()
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["job_id"],
                    # A job id reused (after its dedup window) belongs to the new job, and so
                    # does the report: never one user's report under another's name.
                    set_={
                        "report": insert.excluded.report,
                        "kind": insert.excluded.kind,
                        "user_id": insert.excluded.user_id,
                        "created_at": insert.excluded.created_at,
                    },
                )
            )

    async def get(self, job_id: str, *, user_id: str) -> dict[str, Any] | None:
        """The report of ``job_id`` if it belongs to ``user_id`` (else None, as if absent)."""
        async with self._sessionmaker() as session:
            row = await session.scalar(
                select(AnalysisReport.report).where(
                    AnalysisReport.job_id == job_id, AnalysisReport.user_id == user_id
                )
            )
        return dict(row) if row is not None else None

    async def purge_before(self, before: datetime, batch: int) -> int:
        async with self._sessionmaker() as session, session.begin():
            ids = list(
                (
                    await session.scalars(
                        select(AnalysisReport.job_id)
                        .where(AnalysisReport.created_at < before)
                        .limit(batch)
                    )
                ).all()
            )
            if ids:
                await session.execute(delete(AnalysisReport).where(AnalysisReport.job_id.in_(ids)))
            return len(ids)
