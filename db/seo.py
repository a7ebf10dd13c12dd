"""The pages a running SEO crawl has fetched, keyed by (job, requested URL).

A retried crawl reads them back instead of fetching them again; once the job's report is
stored they are deleted (``clear``), and housekeeping removes those of abandoned jobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.seo import PageFacts
from db.base import utcnow
from db.models import SeoCrawlPage
from db.session import dialect_insert, rowcount


class CrawlPageStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def record(self, job_id: str, page: PageFacts) -> None:
        async with self._sessionmaker() as session, session.begin():
            insert = dialect_insert(session, SeoCrawlPage).values(
                job_id=job_id,
                url=page.url,
                depth=page.depth,
                facts=page.model_dump(mode="json"),
                created_at=utcnow(),
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["job_id", "url"], set_={"facts": insert.excluded.facts}
                )
            )

    async def pages(self, job_id: str) -> list[PageFacts]:
        """The job's pages in the order they were fetched."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(SeoCrawlPage.facts)
                .where(SeoCrawlPage.job_id == job_id)
                .order_by(SeoCrawlPage.created_at, SeoCrawlPage.url)
            )
            return [PageFacts.model_validate(facts) for facts in rows]

    async def clear(self, job_id: str) -> int:
        async with self._sessionmaker() as session, session.begin():
            return rowcount(
                await session.execute(delete(SeoCrawlPage).where(SeoCrawlPage.job_id == job_id))
            )

    async def purge_before(self, before: datetime, batch: int) -> int:
        """Delete the pages of up to ``batch`` crawls started before ``before`` (abandoned:
        a finished crawl has none left); how many pages."""
        async with self._sessionmaker() as session, session.begin():
            crawls = (
                select(SeoCrawlPage.job_id)
                .where(SeoCrawlPage.created_at < before)
                .distinct()
                .limit(batch)
                .scalar_subquery()
            )
            return rowcount(
                await session.execute(delete(SeoCrawlPage).where(SeoCrawlPage.job_id.in_(crawls)))
            )
