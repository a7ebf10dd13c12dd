"""SEO_AUDIT and KEYWORD_ANALYSIS end to end: JobQueue, real workers, the dev server,
PostgreSQL, Redis and the seeded website (emulators/seo_site.py, whose manifest is the
truth). The audit finds every seeded fault and no other; robots.txt, the host and the page
and depth bounds hold; a worker SIGKILLed mid-crawl is replaced and the crawl resumes
without fetching again the pages it had done; keyword analysis gives the exact counts."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from client.base import JobInfo
from client.queue import JobQueue
from core.config import Settings
from core.queues import QueueName, load_catalog
from emulators import seo_site
from emulators.server import serve
from tests.support import (
    WorkerProcess,
    eventually,
    running_workers,
    settings_from,
    terminate_open_jobs,
)
from tracking.store import JobState

pytestmark = pytest.mark.integration

MANIFEST: dict[str, Any] = seo_site.load_manifest().raw
PAGE_PATHS = {page["path"] for page in MANIFEST["pages"]}
# Answers that are not pages of the crawl: the rules and the sitemap check.
NOT_PAGES = {"/robots.txt", "/sitemap.xml"}


@dataclass
class Site:
    state: seo_site.SeoSiteState
    url: str
    settings: Settings
    env: dict[str, str]

    def page_hits(self) -> dict[str, int]:
        return {path: n for path, n in self.state.hits.items() if path not in NOT_PAGES}


def crawl_env(rate: float = 50.0) -> dict[str, str]:
    return {
        "SEO_ALLOW_PRIVATE_TARGETS": "true",
        "SEO_CRAWL_RATE_PER_SECOND": str(rate),
        "SEO_CRAWL_CONCURRENCY": "4",
    }


@pytest.fixture
async def site(settings: Settings, session_env: dict[str, str]) -> AsyncIterator[Site]:
    state = seo_site.SeoSiteState()
    async with serve(seo_site.create_app(state)) as url:
        env = {**session_env, **crawl_env()}
        await terminate_open_jobs(settings, "seo")
        try:
            yield Site(state, url + "/", settings_from(env), env)
        finally:
            await terminate_open_jobs(settings, "seo")


async def finished(queue: JobQueue, job_id: str, timeout: float = 120) -> JobInfo:
    return await eventually(
        lambda: queue.get_job(job_id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=timeout,
        interval=0.2,
    )


def seeded_faults() -> set[tuple[str, str]]:
    return {(page["path"], fault) for page in MANIFEST["pages"] for fault in page["faults"]}


def found_faults(result: dict[str, Any], origin: str) -> set[tuple[str, str]]:
    return {(issue["page"].removeprefix(origin), issue["type"]) for issue in result["issues"]}


async def audit(site: Site, **data: Any) -> tuple[JobInfo, dict[str, Any]]:
    user = f"user-{uuid.uuid4().hex[:6]}"
    queue = await JobQueue.connect(site.settings)
    try:
        async with running_workers(site.settings, [QueueName.SEO]):
            job = await queue.add_job("seo", "seo_audit", {"userId": user, "url": site.url, **data})
            info = await finished(queue, job.id)
        report = await queue.get_report(job.id, user_id=user)
        assert await queue.get_report(job.id, user_id="someone-else") is None
    finally:
        await queue.close()
    assert info.state is JobState.COMPLETED, info.failure_reason
    assert report is not None
    return info, report


async def test_the_audit_finds_every_seeded_fault_and_no_other(site: Site):
    info, report = await audit(site, maxPages=500, maxDepth=4)
    result = info.result
    assert isinstance(result, dict)
    origin = site.url.rstrip("/")
    assert found_faults(result, origin) == seeded_faults()
    broken = {
        (issue["page"].removeprefix(origin), issue["detail"])
        for issue in result["issues"]
        if issue["type"] == "broken_link"
    }
    expected = {
        (page["path"], f"{origin}{link['href']} answered {link['status']}")
        for page in MANIFEST["pages"]
        for link in page["broken_links"]
    }
    assert broken == expected
    # Every public page was judged, at its depth, and nothing else answered 200 but the files.
    answered = {
        p["url"].removeprefix(origin): p["depth"]
        for p in report["audit"]["pages"]
        if p["status"] == 200
    }
    files = {f["path"] for f in MANIFEST["files"]}
    assert set(answered) - files == PAGE_PATHS
    assert all(answered[page["path"]] == page["depth"] for page in MANIFEST["pages"])
    assert result["site"] == {
        "root": site.url,
        "robots_txt": True,
        "sitemap": True,
        "skipped_by_robots": len(MANIFEST["private_pages"]),
        "limit_reached": None,
    }
    assert 0 <= result["score"] < 100 and result["pages_crawled"] == len(report["audit"]["pages"])
    # robots.txt, the host and the scheme bound the crawl; no page was fetched twice.
    hits = site.page_hits()
    assert not [path for path in hits if path.startswith("/private/")]
    assert not [h for h in site.state.host_hits if h[0].startswith("localhost")]
    assert max(hits.values()) == 1
    assert info.progress == 100


async def test_the_depth_bound_holds(site: Site):
    info, report = await audit(site, maxPages=500, maxDepth=1)
    assert isinstance(info.result, dict)
    assert info.result["site"]["limit_reached"] == "depth"
    depths = {page["depth"] for page in report["audit"]["pages"]}
    assert depths == {0, 1}
    shallow = {p["path"] for p in MANIFEST["pages"] if p["depth"] <= 1}
    origin = site.url.rstrip("/")
    crawled = {p["url"].removeprefix(origin) for p in report["audit"]["pages"]}
    assert shallow <= crawled
    assert not [p for p in crawled if p in PAGE_PATHS and p not in shallow]


async def test_the_page_bound_holds(site: Site):
    info, _ = await audit(site, maxPages=10)
    assert isinstance(info.result, dict)
    assert info.result["pages_crawled"] == 10
    assert info.result["site"]["limit_reached"] == "pages"
    # Ten pages fetched (a redirect's hops are one page's).
    fetched_pages = [
        path for path in site.page_hits() if path not in {"/old-offer", "/older-offer", "/moved"}
    ]
    assert len(fetched_pages) == 10


async def test_a_killed_worker_is_replaced_and_the_crawl_resumes_where_it_was(
    site: Site, tmp_path: Path
):
    site.state.delay_ms = 150
    env = {**site.env, **crawl_env(rate=10.0)}
    # A dead worker is noticed when its heartbeats stop: a short timeout keeps the test short.
    catalog = load_catalog({})
    catalog[QueueName.SEO] = replace(catalog[QueueName.SEO], heartbeat=timedelta(seconds=3))
    user = f"user-{uuid.uuid4().hex[:6]}"
    queue = await JobQueue.connect(site.settings, catalog=catalog)
    doomed = WorkerProcess(env, "seo", log_dir=tmp_path)
    replacement = WorkerProcess(env, "seo", log_dir=tmp_path)
    try:
        doomed.start()
        await doomed.wait_ready()
        job = await queue.add_job(
            "seo", "seo_audit", {"userId": user, "url": site.url, "maxPages": 500, "maxDepth": 4}
        )
        await eventually(lambda: _count(site), lambda n: n >= 20, timeout=60)
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        assert await doomed.wait_exit() == -signal.SIGKILL
        before = dict(site.page_hits())
        replacement.start()
        await replacement.wait_ready()
        info = await finished(queue, job.id, timeout=180)
    finally:
        doomed.stop()
        replacement.stop()
        await queue.close()
    assert info.state is JobState.COMPLETED, info.failure_reason
    assert info.attempts_made >= 2
    assert isinstance(info.result, dict)
    assert found_faults(info.result, site.url.rstrip("/")) == seeded_faults()
    # Only the pages in flight at the kill (at most SEO_CRAWL_CONCURRENCY) were fetched again.
    again = [path for path, n in site.page_hits().items() if n > 1]
    assert len(again) <= 4, again
    assert len(before) >= 20 and all(path in before for path in again)


async def _count(site: Site) -> int:
    return len(site.page_hits())


async def test_keyword_analysis_counts_exactly(site: Site):
    user = f"user-{uuid.uuid4().hex[:6]}"
    keywords = MANIFEST["keywords"]
    queue = await JobQueue.connect(site.settings)
    try:
        async with running_workers(site.settings, [QueueName.SEO]):
            job = await queue.add_job(
                "seo",
                "keyword_analysis",
                {
                    "userId": user,
                    "url": site.url,
                    "keywords": keywords,
                    "maxPages": 100,
                    "maxDepth": 4,
                },
            )
            info = await finished(queue, job.id)
    finally:
        await queue.close()
    assert info.state is JobState.COMPLETED, info.failure_reason
    result = info.result
    assert isinstance(result, dict)
    origin = site.url.rstrip("/")
    reports = {k["keyword"]: k for k in result["keywords"]}
    assert list(reports) == keywords
    for path, truth in MANIFEST["keyword_pages"].items():
        for keyword, counts in truth["counts"].items():
            found = next((p for p in reports[keyword]["pages"] if p["page"] == origin + path), None)
            hits = (
                found["hits"]
                if found
                else dict.fromkeys(("title", "h1", "h2", "h3", "body", "url"), 0)
            )
            expected = {place: counts[place] for place in ("title", "h1", "h2", "h3", "body")}
            assert {k: hits[k] for k in expected} == expected, (path, keyword)
            assert hits["url"] == counts["slug"], (path, keyword)
    assert {
        k: (r["best_page"].removeprefix(origin), r["best_score"], r["pages"][0]["density"])
        for k, r in reports.items()
    } == BEST


# Score (docs/seo.md): title 10, h1 6, h2 3, h3 2, URL 4, one per body occurrence up to 5,
# and 5 off above 5 % density. Density: occurrences in headings and body x words of the
# keyword / words of headings and body (147, 127 and 132 words on these pages).
BEST = {
    "espresso": ("/blog/2024/espresso-at-home", 10 + 6 + 3 + 4 + 4, 4.08),
    "cold brew": ("/shop/cold-brew", 10 + 6 + 3 + 4 + 4 - 5, 9.45),
    "coffee grinder": ("/shop/grinders/coffee-grinder-guide", 10 + 6 + 2 + 4 + 2 - 5, 6.06),
}


async def test_a_start_url_leading_to_another_host_fails_naming_it(site: Site):
    app = FastAPI()

    @app.get("/")
    async def home(request: Request) -> Response:
        return RedirectResponse(f"http://localhost:{request.url.port}/", status_code=301)

    async with serve(app) as url:
        queue = await JobQueue.connect(site.settings)
        try:
            async with running_workers(site.settings, [QueueName.SEO]):
                job = await queue.add_job("seo", "seo_audit", {"userId": "u-1", "url": url + "/"})
                info = await finished(queue, job.id)
        finally:
            await queue.close()
    assert info.state is JobState.FAILED and info.attempts_made == 1
    assert info.failure_reason is not None
    assert "redirects off the site to http://localhost:" in info.failure_reason
    assert "audit that URL instead" in info.failure_reason
