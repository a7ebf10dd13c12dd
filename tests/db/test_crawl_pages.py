"""The pages of running crawls: read back in order, cleared with the report, and those of
abandoned crawls purged a batch of crawls at a time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.seo import PageFacts
from db.ads import AdFileStore
from db.base import utcnow
from db.housekeeping import purge_analysis
from db.models import SeoCrawlPage
from db.reports import ReportStore
from db.seo import CrawlPageStore


def page(url: str, depth: int = 0) -> PageFacts:
    return PageFacts(url=url, final_url=url, depth=depth, status=200)


async def test_abandoned_crawls_are_purged_and_live_ones_kept(
    sessionmaker: async_sessionmaker[AsyncSession], unique_id: Callable[[str], str]
):
    store = CrawlPageStore(sessionmaker)
    old = [unique_id("old") for _ in range(3)]
    live = unique_id("live")
    for crawl in (*old, live):
        for n in range(4):
            await store.record(crawl, page(f"http://s.test/{n}", depth=n))
    week_ago = utcnow() - timedelta(days=8)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(SeoCrawlPage).where(SeoCrawlPage.job_id.in_(old)).values(created_at=week_ago)
        )
    assert await store.purge_before(utcnow() - timedelta(days=7), 2) == 8  # two crawls' pages
    deleted = await purge_analysis(
        ReportStore(sessionmaker),
        AdFileStore(sessionmaker),
        store,
        stored_before=week_ago,
        crawled_before=utcnow() - timedelta(days=7),
    )
    assert deleted == 4
    assert [await store.pages(crawl) for crawl in old] == [[], [], []]
    assert [p.url for p in await store.pages(live)] == [f"http://s.test/{n}" for n in range(4)]
    assert await store.clear(live) == 4
