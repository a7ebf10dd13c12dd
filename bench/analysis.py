"""Benchmark: an SEO audit of a 200-page site and an analysis of 100,000 ad rows, each against
a bare baseline measured in the same run.

``python -m bench.analysis`` (200 pages, 100,000 rows; writes BENCHMARKS.md) or ``--quick``
(60 pages, 20,000 rows; does not write unless ``--write``). One run (``bench/harness.py``:
private dev server, database and Redis prefix) serves the generated site in this process,
every page answering after a realistic server delay, and runs ``worker.py --task-queue seo``
and ``worker.py --task-queue ads`` as subprocesses.

- **Crawl**: SEO_AUDIT of the whole site at ``SEO_CRAWL_RATE_PER_SECOND=20`` with 4 pages in
  flight. Pages per second over the crawl (first to last page request the site saw) and over
  the whole job (``add_job`` to completed), the seo worker's peak RSS. The bare baseline is
  the same pages fetched straight with httpx at the same rate and concurrency (no parsing,
  no storing, no Temporal): the rate a polite crawler can reach against this site.
- **Ad rows**: AD_ANALYSIS of an uploaded CSV of N rows (1,000 ads x N/1,000 days). Rows per
  second over the job, the ads worker's peak RSS. The bare baseline is ``csv.DictReader`` over
  the same bytes summing the five counters per ad in dicts.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request, Response

from bench.harness import Body, bench_main, start_worker
from bench.measure import Child, markdown_table
from bench.run import log
from client.queue import JobQueue
from core.config import load_settings
from core.logging import exit_process
from emulators import seo_site
from emulators.server import serve
from integrations.crawler import PoliteRate
from tracking.store import JobState

START_MARK = "<!-- analysis-bench:start -->"
END_MARK = "<!-- analysis-bench:end -->"
RATE = 20.0
CONCURRENCY = 4
PAGE_DELAY_MS = 50
TARGET_PAGES_PER_S = 18.0
ADS = 1000


@dataclass
class Results:
    pages: int
    crawl_s: float
    crawl_job_s: float
    bare_crawl_s: float
    seo_rss_mb: float
    rows: int
    csv_mb: float
    ads_job_s: float
    bare_rows_s: float
    ads_rss_mb: float

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.crawl_s

    @property
    def bare_pages_per_s(self) -> float:
        return self.pages / self.bare_crawl_s


async def _finish(queue: JobQueue, job_id: str) -> None:
    while True:
        info = await queue.get_job(job_id)
        if info.state is JobState.COMPLETED:
            return
        if info.state is JobState.FAILED:
            raise RuntimeError(f"a benchmark job failed: {info.failure_reason}")
        await asyncio.sleep(0.05)


async def bare_crawl(site: str, paths: list[str]) -> float:
    """The pages fetched at the same politeness: the floor of any crawler of this site."""
    rate = PoliteRate(RATE)
    slots = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient() as http:

        async def fetch(path: str) -> None:
            async with slots:
                await rate.wait()
                (await http.get(site + path)).raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(fetch(path) for path in paths))
        return time.perf_counter() - t0


def ad_rows_csv(rows: int) -> bytes:
    days = max(1, rows // ADS)
    start = date(2026, 1, 1)
    out = io.StringIO()
    out.write("date,campaign_id,ad_set_id,ad_id,impressions,clicks,spend,conversions,revenue\n")
    for d in range(days):
        day = (start + timedelta(days=d)).isoformat()
        for ad in range(ADS):
            clicks = 10 + ad % 37
            out.write(
                f"{day},c{ad // 100},s{ad // 10},a{ad},{1000 + ad * 3 + d},{clicks},"
                f"{clicks * 0.42:.2f},{ad % 5},{(ad % 5) * 31.5:.2f}\n"
            )
    return out.getvalue().encode()


def bare_rows(content: bytes) -> float:
    t0 = time.perf_counter()
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 5)
    for row in csv.DictReader(io.StringIO(content.decode())):
        found = totals[row["ad_id"]]
        for i, name in enumerate(("impressions", "clicks", "spend", "conversions", "revenue")):
            found[i] += Decimal(row[name])
    return time.perf_counter() - t0


async def measure(
    pages: int, rows: int, env: dict[str, str], tmp: Path, children: list[Child]
) -> Results:
    state = seo_site.generated_site(pages, delay_ms=PAGE_DELAY_MS)
    app = seo_site.create_app(state)
    stamps: list[float] = []

    @app.middleware("http")
    async def stamp(request: Request, call_next: Any) -> Response:
        if request.url.path not in ("/robots.txt", "/sitemap.xml"):
            stamps.append(time.perf_counter())
        response: Response = await call_next(request)
        return response

    async with serve(app) as site:
        env = {
            **env,
            "SEO_ALLOW_PRIVATE_TARGETS": "true",
            "SEO_CRAWL_RATE_PER_SECOND": str(RATE),
            "SEO_CRAWL_CONCURRENCY": str(CONCURRENCY),
        }
        queue = await JobQueue.connect(load_settings(dict(env)))
        try:
            (tmp / "seo").mkdir()
            (tmp / "ads").mkdir()
            seo_rss, seo_sampling = await start_worker(
                "seo", env, tmp / "seo", children, queue.client
            )
            ads_rss, ads_sampling = await start_worker(
                "ads", env, tmp / "ads", children, queue.client
            )
            audit = {"userId": "bench-user", "url": site + "/", "maxDepth": 3}
            warm = await queue.add_job("seo", "seo_audit", {**audit, "maxPages": 10})
            await _finish(queue, warm.id)

            log(f"SEO audit of {pages} pages at {RATE:.0f} requests/s")
            stamps.clear()
            t0 = time.perf_counter()
            job = await queue.add_job("seo", "seo_audit", {**audit, "maxPages": pages})
            await _finish(queue, job.id)
            crawl_job = time.perf_counter() - t0
            info = await queue.get_job(job.id)
            if info.result["pages_crawled"] != pages:
                raise RuntimeError(f"crawled {info.result['pages_crawled']} of {pages} pages")
            crawl = stamps[-1] - stamps[0] + 1 / RATE  # the last request's own slot
            seo_sampling.cancel()

            log("bare crawl of the same pages")
            bare_crawl_s = await bare_crawl(site, seo_site.generated_paths(pages))

            log(f"ad analysis of {rows:,} rows")
            content = ad_rows_csv(rows)
            file_id = await queue.upload_ad_data("bench-user", content, format="csv")
            source = {"kind": "csv", "fileId": file_id}
            warm = await queue.add_job(
                "ads", "ad_analysis", {"userId": "bench-user", "source": source}
            )
            await _finish(queue, warm.id)
            t0 = time.perf_counter()
            job = await queue.add_job(
                "ads", "ad_analysis", {"userId": "bench-user", "source": source}
            )
            await _finish(queue, job.id)
            ads_job = time.perf_counter() - t0
            ads_sampling.cancel()
            bare = bare_rows(content)
            return Results(
                pages=pages,
                crawl_s=crawl,
                crawl_job_s=crawl_job,
                bare_crawl_s=bare_crawl_s,
                seo_rss_mb=seo_rss.peak_mb,
                rows=rows,
                csv_mb=len(content) / 1e6,
                ads_job_s=ads_job,
                bare_rows_s=bare,
                ads_rss_mb=ads_rss.peak_mb,
            )
        finally:
            await queue.close()


def render_markdown(r: Results, facts: dict[str, str], when: str) -> str:
    verdict = "met" if r.pages_per_s >= TARGET_PAGES_PER_S else "missed"
    rows = [
        (
            f"SEO audit of {r.pages} pages: crawl (first to last page request)",
            f"**{r.pages_per_s:.1f} pages/s** ({r.crawl_s:.1f} s)",
        ),
        (
            "the same job, add_job to completed (with its report)",
            f"{r.pages / r.crawl_job_s:.1f} pages/s ({r.crawl_job_s:.1f} s)",
        ),
        (
            "bare: the same pages straight through httpx at the same rate",
            f"{r.bare_pages_per_s:.1f} pages/s (ours: {r.pages_per_s / r.bare_pages_per_s:.2f}x)",
        ),
        ("seo worker peak RSS", f"{r.seo_rss_mb:.0f} MB"),
        (
            f"AD_ANALYSIS of {r.rows:,} rows ({r.csv_mb:.1f} MB CSV), add_job to completed",
            f"**{r.rows / r.ads_job_s:,.0f} rows/s** ({r.ads_job_s:.2f} s)",
        ),
        (
            "bare: csv.DictReader summing five counters per ad",
            f"{r.rows / r.bare_rows_s:,.0f} rows/s (ours: {r.bare_rows_s / r.ads_job_s:.2f}x its "
            "rate)",
        ),
        ("ads worker peak RSS", f"{r.ads_rss_mb:.0f} MB"),
    ]
    return f"""{START_MARK}
## SEO crawls and ad analysis

`make bench-analysis` (`python -m bench.analysis`), {when}, {facts.get("cpu", "")}: one seo
and one ads worker; the generated site (`emulators/seo_site.generated_site`) in the
benchmark's process, each page answering after {PAGE_DELAY_MS} ms; crawl rate
{RATE:.0f} requests/s, {CONCURRENCY} pages in flight.

{markdown_table(("measure", "value"), rows)}

Crawl {r.pages_per_s:.1f} pages/s against the target of {TARGET_PAGES_PER_S:.0f} at
{RATE:.0f} requests/s allowed: **{verdict}**. The crawl window runs from the first page request
to the last (robots.txt before it and the sitemap check after it share the same rate); the
job's rate adds its start, those two requests, the report (every page judged and stored) and
the completion. The ad job's time is reading the file from the
database, parsing and checking every row, the totals and ratios at three levels, outliers,
and storing the report.
{END_MARK}"""


def main(argv: list[str] | None = None) -> int:
    def body_for(pages: int, quick: bool) -> Body[Results]:
        rows = 20_000 if quick else 100_000
        return lambda env, tmp, children: measure(pages, rows, env, tmp, children)

    return bench_main(
        argv,
        prog="python -m bench.analysis",
        description=__doc__,
        name="analysis",
        title="SEO crawls and ad analysis",
        marks=(START_MARK, END_MARK),
        size_option="pages",
        sizes=(200, 60),
        body_for=body_for,
        render=render_markdown,
    )


if __name__ == "__main__":
    exit_process(main())
