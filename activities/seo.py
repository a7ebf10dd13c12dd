"""Activities of SEO_AUDIT and KEYWORD_ANALYSIS: crawl a site politely, then judge it.

``crawl_site`` walks the site breadth first, one depth level at a time, from the start URL:
same host only, robots.txt honoured, at most ``SEO_CRAWL_RATE_PER_SECOND`` requests a second
with ``SEO_CRAWL_CONCURRENCY`` pages in flight. Each fetched page's facts are stored
(``db/seo.py``) and the current level's frontier is heartbeated, so a retried attempt starts
from that frontier and never fetches a stored page again. Levels are ordered by discovery
(page order, then link order), so the same site gives the same crawl under the page bound.
The activity hands back the frontier after ``TIME_BUDGET_S`` and the workflow continues it.

``build_seo_report`` and ``build_keyword_report`` turn the stored pages into the report
(``core/seo.py``), store it and clear the pages in one go; a retry after that returns the
stored report. ``run_pagespeed`` asks PageSpeed Insights when a key is configured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.errors import to_application_error
from activities.heartbeat import auto_heartbeat, heartbeat
from core.config import Settings
from core.errors import INVALID_JOB_DATA, PERMISSION_DENIED, RESOURCE_NOT_FOUND
from core.logging import get_logger
from core.seo import (
    AuditReport,
    KeywordReport,
    PageFacts,
    SeoIssue,
    SiteFacts,
    audit,
    normalize_url,
    parse_page,
    rank_keywords,
    site_of,
)
from db.reports import ReportStore
from db.seo import CrawlPageStore
from integrations.crawler import PROVIDER, REDIRECT_STATUSES, Crawler, Fetched
from integrations.errors import ProviderError, TransientProviderError
from integrations.pagespeed import PageSpeedClient, PageSpeedResult
from tracking.progress import report_progress

log = get_logger(__name__)

# Return the frontier after this long; the workflow calls again (activity timeout: 10 min).
TIME_BUDGET_S = 480.0
# A page whose fetch fails without an answer is tried this often, these seconds apart,
# before it is recorded as unreachable (one flaky page must not fail a 500-page audit).
PAGE_TRIES_WAITS_S = (1.0, 3.0)
MAX_THROTTLE_WAIT_S = 30.0
# The issues a job's result carries; the stored report has them all.
MAX_RESULT_ISSUES = 1000
MAX_RESULT_PAGES_PER_KEYWORD = 20
PROGRESS_STEP = 10


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Frontier(_Model):
    """The level a crawl is on: its depth and every URL of it, in crawl order."""

    depth: int
    urls: list[str]
    # Links robots.txt kept the crawl from, so far.
    skipped_by_robots: int = 0


class CrawlInput(_Model):
    job_id: str
    # The key of the crawl's stored pages: the job id and its first run, so a job run
    # again (retry_job) or a reused job id never reads another run's pages.
    crawl_id: str
    user_id: str
    url: str
    max_pages: int
    max_depth: int
    keywords: list[str] = Field(default_factory=list)
    # Where a continued crawl starts (the previous call's frontier).
    resume: Frontier | None = None


class CrawlResult(_Model):
    pages: int
    complete: bool
    frontier: Frontier | None = None
    site: SiteFacts
    pagespeed_available: bool = False


class ReportInput(_Model):
    job_id: str
    crawl_id: str
    user_id: str
    url: str
    site: SiteFacts
    pagespeed: PageSpeedResult | None = None
    # Why PageSpeed Insights gave no result, when it was asked and failed.
    pagespeed_error: str | None = None


class SeoAuditResult(_Model):
    """What ``get_job(id).result`` carries; the stored report adds every page's facts."""

    url: str
    pages_crawled: int
    score: int
    issues: list[SeoIssue]
    issues_truncated: bool = False
    issue_counts: dict[str, int]
    site: SiteFacts
    pagespeed: PageSpeedResult | None = None
    pagespeed_error: str | None = None


class KeywordReportInput(_Model):
    job_id: str
    crawl_id: str
    user_id: str
    url: str
    keywords: list[str]


class KeywordAnalysisResult(_Model):
    url: str
    pages_crawled: int
    keywords: list[KeywordReport]


class PageSpeedInput(_Model):
    url: str
    strategy: str


def _resume_point(details: Any) -> Frontier | None:
    if details and isinstance(details[0], dict) and "frontier" in details[0]:
        try:
            return Frontier.model_validate(details[0]["frontier"])
        except ValueError:
            return None
    return None


class _Crawl:
    """One attempt of one crawl: what is stored, what is seen, and the fetching."""

    def __init__(
        self,
        input: CrawlInput,
        crawler: Crawler,
        store: CrawlPageStore,
        stored: list[PageFacts],
        concurrency: int,
    ) -> None:
        self.input = input
        self.crawler = crawler
        self.store = store
        self.pages: dict[str, PageFacts] = {page.url: page for page in stored}
        # URLs already put on a level (or reached through redirects from one): never again.
        self.seen: set[str] = set()
        self.skipped_by_robots = 0
        self.limit_reached: Literal["pages", "depth"] | None = None
        self.slots = asyncio.Semaphore(concurrency)
        self.in_flight = 0
        self.deadline = time.monotonic() + TIME_BUDGET_S
        self.out_of_time = False
        self.reported = 0
        self.level = Frontier(depth=0, urls=[])

    async def fetch_page(self, url: str, depth: int) -> None:
        async with self.slots:
            if time.monotonic() > self.deadline:
                self.out_of_time = True
                return
            if len(self.pages) + self.in_flight >= self.input.max_pages:
                self.limit_reached = "pages"
                return
            self.in_flight += 1
            try:
                facts = await self._facts(url, depth)
            finally:
                self.in_flight -= 1
            self.pages[url] = facts
            self.seen.update([facts.final_url, *(hop for hop, _ in facts.redirects)])
            await self.store.record(self.input.crawl_id, facts)
            heartbeat({"frontier": self.level.model_dump(), "pages": len(self.pages)})
            # Progress in steps of PROGRESS_STEP: an event per page would flood the job's log.
            percent = min(90, round(90 * len(self.pages) / self.input.max_pages))
            if percent >= self.reported + PROGRESS_STEP:
                self.reported = percent
                await report_progress(percent)

    async def _facts(self, url: str, depth: int) -> PageFacts:
        fetched = await self._fetch(url, first=depth == 0)
        if fetched is None:
            return PageFacts(
                url=url, final_url=url, depth=depth, status=0, error="no answer after retries"
            )
        if depth == 0 and (fetched.status >= 500 or fetched.status == 429):
            # Not stored: the next attempt fetches the start page again.
            raise TransientProviderError(
                PROVIDER,
                "the start URL answered a server error or a rate limit",
                status_code=fetched.status,
                retry_after=fetched.retry_after,
            )
        try:
            facts = parse_page(
                url=url,
                final_url=fetched.final_url,
                depth=depth,
                status=fetched.status,
                body=fetched.body,
                content_type=fetched.content_type,
                response_ms=fetched.response_ms,
                redirects=fetched.redirects,
                keywords=self.input.keywords,
            )
        except Exception as exc:  # one odd page must not fail a whole audit
            log.warning("seo.page_unparsed", job_id=self.input.job_id, error=type(exc).__name__)
            return PageFacts(
                url=url,
                final_url=fetched.final_url,
                depth=depth,
                status=fetched.status,
                error="the page could not be parsed",
            )
        return facts.model_copy(update={"error": fetched.stopped})

    async def _fetch(self, url: str, *, first: bool) -> Fetched | None:
        """The page's answer; a throttled one (429, 503) or none is tried again, waiting
        what Retry-After asks (up to MAX_THROTTLE_WAIT_S), before it is recorded as is."""
        for wait in (*PAGE_TRIES_WAITS_S, None):
            try:
                fetched = await self.crawler.fetch(url)
            except TransientProviderError:
                if wait is None:
                    if first:
                        raise  # the site is not answering at all: retry the attempt later
                    return None
                await asyncio.sleep(wait)
                continue
            if not fetched.throttled or wait is None:
                return fetched
            await asyncio.sleep(min(max(wait, fetched.retry_after or 0), MAX_THROTTLE_WAIT_S))
        return None

    def next_level(self, level: Frontier) -> Frontier:
        """The URLs first linked from this level's pages, in page then link order."""
        found: list[str] = []
        for url in level.urls:
            page = self.pages.get(url)
            if page is None:
                continue
            for link in page.links:
                if link in self.seen:
                    continue
                self.seen.add(link)
                if not self.crawler.allows(link):
                    self.skipped_by_robots += 1
                    continue
                found.append(link)
        return Frontier(depth=level.depth + 1, urls=found, skipped_by_robots=self.skipped_by_robots)


class SeoActivities:
    def __init__(
        self,
        http: httpx.AsyncClient,
        pages: CrawlPageStore,
        reports: ReportStore,
        pagespeed: PageSpeedClient,
        settings: Settings,
    ) -> None:
        self._http = http
        self._pages = pages
        self._reports = reports
        self._pagespeed = pagespeed
        self._settings = settings

    @activity.defn(name="crawl_site")
    @auto_heartbeat
    async def crawl_site(self, input: CrawlInput) -> CrawlResult:
        start = normalize_url(input.url)
        if start is None:
            raise ApplicationError(
                f"{input.url!r} is not an http(s) URL", type=RESOURCE_NOT_FOUND, non_retryable=True
            )
        crawler = Crawler(
            self._http,
            rate_per_second=self._settings.seo_crawl_rate_per_second,
            allow_private=self._settings.seo_allow_private_targets,
            timeout_s=self._settings.seo_crawl_timeout_seconds,
        )
        try:
            await crawler.pin(start)
            robots = await crawler.robots(start)
        except ProviderError as exc:
            raise to_application_error(exc) from exc
        if not crawler.allows(start):
            raise ApplicationError(
                "robots.txt disallows crawling the start URL",
                type=PERMISSION_DENIED,
                non_retryable=True,
            )
        crawl = _Crawl(
            input,
            crawler,
            self._pages,
            await self._pages.pages(input.crawl_id),
            self._settings.seo_crawl_concurrency,
        )
        level = _resume_point(activity.info().heartbeat_details) or input.resume
        if level is None:
            level = Frontier(depth=0, urls=[start])
        # Pages stored up to this level were queued already; pages stored beyond it (fetched
        # after the last heartbeat that reached the server) are queued again when linked,
        # and read back instead of fetched, so the links they hold are followed.
        for page in crawl.pages.values():
            if page.depth <= level.depth:
                crawl.seen.update([page.url, page.final_url, *(hop for hop, _ in page.redirects)])
        crawl.seen.update(level.urls)
        crawl.skipped_by_robots = level.skipped_by_robots
        if crawl.pages:
            log.info(
                "crawl resumed", job_id=input.job_id, pages=len(crawl.pages), depth=level.depth
            )
        try:
            while level.urls:
                crawl.level = level
                heartbeat({"frontier": level.model_dump(), "pages": len(crawl.pages)})
                async with asyncio.TaskGroup() as pages:
                    for url in level.urls:
                        if url not in crawl.pages:
                            pages.create_task(crawl.fetch_page(url, level.depth))
                if crawl.out_of_time or crawl.limit_reached:
                    break
                following = crawl.next_level(level)
                if level.depth >= input.max_depth:
                    if following.urls:
                        crawl.limit_reached = "depth"
                    break
                # A level holds no more URLs than pages may still be fetched.
                room = input.max_pages - len(crawl.pages)
                if len(following.urls) > room:
                    following = following.model_copy(update={"urls": following.urls[:room]})
                    crawl.limit_reached = "pages"
                level = following
        except* ProviderError as group:
            raise to_application_error(group.exceptions[0]) from group.exceptions[0]  # type: ignore[arg-type]
        complete = not crawl.out_of_time
        first = crawl.pages.get(start)
        if first is None:
            raise ApplicationError(
                "the start URL was not fetched", type=RESOURCE_NOT_FOUND, non_retryable=True
            )
        if 400 <= first.status < 500:
            raise ApplicationError(
                f"the start URL answered {first.status}",
                type=RESOURCE_NOT_FOUND,
                non_retryable=True,
            )
        if first.error is not None and first.status in REDIRECT_STATUSES:
            # http -> https or a -> www.a: the site to audit is the one it leads to.
            raise ApplicationError(
                f"url: the start URL {first.error}; audit that URL instead",
                type=INVALID_JOB_DATA,
                non_retryable=True,
            )
        sitemap = bool(robots.sitemaps)
        if complete and not sitemap:
            try:
                sitemap = await crawler.exists(site_of(start) + "/sitemap.xml")
            except TransientProviderError:
                sitemap = False
        return CrawlResult(
            pages=len(crawl.pages),
            complete=complete,
            frontier=None if complete else level,
            site=SiteFacts(
                root=site_of(start) + "/",
                robots_txt=robots.found,
                sitemap=sitemap,
                skipped_by_robots=crawl.skipped_by_robots,
                limit_reached=crawl.limit_reached,
            ),
            pagespeed_available=self._pagespeed.configured,
        )

    @activity.defn(name="build_seo_report")
    async def build_seo_report(self, input: ReportInput) -> SeoAuditResult:
        stored = await self._reports.get(input.job_id, user_id=input.user_id)
        pages = await self._pages.pages(input.crawl_id)
        if not pages and stored is not None:
            report = AuditReport.model_validate(stored["audit"])
        else:
            report = audit(input.url, _crawl_order(pages), input.site)
            document = {
                "audit": report.model_dump(mode="json"),
                "pagespeed": input.pagespeed.model_dump(mode="json") if input.pagespeed else None,
                "pagespeed_error": input.pagespeed_error,
            }
            await self._reports.save(
                input.job_id, user_id=input.user_id, kind="seo_audit", report=document
            )
            await self._pages.clear(input.crawl_id)
        await report_progress(100)
        return SeoAuditResult(
            url=report.url,
            pages_crawled=report.pages_crawled,
            score=report.score,
            issues=report.issues[:MAX_RESULT_ISSUES],
            issues_truncated=len(report.issues) > MAX_RESULT_ISSUES,
            issue_counts=report.issue_counts,
            site=report.site,
            pagespeed=input.pagespeed,
            pagespeed_error=input.pagespeed_error,
        )

    @activity.defn(name="build_keyword_report")
    async def build_keyword_report(self, input: KeywordReportInput) -> KeywordAnalysisResult:
        stored = await self._reports.get(input.job_id, user_id=input.user_id)
        pages = await self._pages.pages(input.crawl_id)
        if not pages and stored is not None:
            return _trimmed(KeywordAnalysisResult.model_validate(stored))
        result = KeywordAnalysisResult(
            url=input.url,
            pages_crawled=len(pages),
            keywords=rank_keywords(input.keywords, _crawl_order(pages)),
        )
        await self._reports.save(
            input.job_id,
            user_id=input.user_id,
            kind="keyword_analysis",
            report=result.model_dump(mode="json"),
        )
        await self._pages.clear(input.crawl_id)
        await report_progress(100)
        return _trimmed(result)

    @activity.defn(name="run_pagespeed")
    @auto_heartbeat
    async def run_pagespeed(self, input: PageSpeedInput) -> PageSpeedResult:
        try:
            return await self._pagespeed.run(input.url, strategy=input.strategy)
        except ProviderError as exc:
            raise to_application_error(exc) from exc


def _trimmed(result: KeywordAnalysisResult) -> KeywordAnalysisResult:
    """The result a job carries: each keyword's best pages only (the report has them all)."""
    keywords = [
        k.model_copy(update={"pages": k.pages[:MAX_RESULT_PAGES_PER_KEYWORD]})
        for k in result.keywords
    ]
    return result.model_copy(update={"keywords": keywords})


def _crawl_order(pages: list[PageFacts]) -> list[PageFacts]:
    return sorted(pages, key=lambda page: page.depth)


def build_seo_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings = deps.settings
    acts = SeoActivities(
        deps.http,
        CrawlPageStore(deps.sessions),
        ReportStore(deps.sessions),
        PageSpeedClient(deps.http, settings.pagespeed_api_base_url, settings.pagespeed_api_key),
        settings,
    )
    return [acts.crawl_site, acts.build_seo_report, acts.build_keyword_report, acts.run_pagespeed]
