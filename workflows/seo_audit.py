"""SEO_AUDIT: crawl a site and report its SEO issues with a score (docs/seo.md).

``crawl_site`` fetches the pages (continued from its frontier when it hands one back after
its time budget), ``run_pagespeed`` adds PageSpeed Insights when the worker has a key (a
PageSpeed failure is noted in the report, not a failure of the audit), and
``build_seo_report`` judges the stored pages, stores the report and returns its summary.
Three activities for a typical audit, whatever the number of pages.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.seo import (
        CrawlInput,
        CrawlResult,
        PageSpeedInput,
        ReportInput,
        SeoActivities,
        SeoAuditResult,
    )
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import JobType, SeoAuditJobData
    from core.runs import JobRun, RunOptions


def new_crawl(
    user_id: str, url: str, max_pages: int, max_depth: int, keywords: Sequence[str] = ()
) -> CrawlInput:
    """The crawl of this run of the job (its pages are stored under the run's crawl id)."""
    info = workflow.info()
    return CrawlInput(
        job_id=info.workflow_id,
        crawl_id=f"{info.workflow_id}/{info.first_execution_run_id}",
        user_id=user_id,
        url=url,
        max_pages=max_pages,
        max_depth=max_depth,
        keywords=list(keywords),
    )


async def crawl_whole_site(run: RunOptions, crawl: CrawlInput) -> CrawlResult:
    """``crawl_site`` until the crawl is complete: each call continues from the frontier
    the previous one handed back after its time budget."""
    while True:
        done = await workflow.execute_activity_method(
            SeoActivities.crawl_site, crawl, **policies.long_step(run)
        )
        if done.complete:
            return done
        crawl = crawl.model_copy(update={"resume": done.frontier})


@workflow.defn(name=WORKFLOW_NAMES[JobType.SEO_AUDIT])
class SeoAuditWorkflow:
    @workflow.run
    async def run(self, job: JobRun[SeoAuditJobData]) -> SeoAuditResult:
        data = job.data
        crawl_input = new_crawl(data.user_id, str(data.url), data.max_pages, data.max_depth)
        crawl = await crawl_whole_site(job.run, crawl_input)
        pagespeed = pagespeed_error = None
        if crawl.pagespeed_available:
            try:
                pagespeed = await workflow.execute_activity_method(
                    SeoActivities.run_pagespeed,
                    PageSpeedInput(url=str(data.url), strategy=data.strategy),
                    **policies.slow_call(job.run),
                )
            except ActivityError as failed:
                # PageSpeed is an extra: the audit of the crawl is reported without it.
                pagespeed_error = str(failed.cause or failed)
        return await workflow.execute_activity_method(
            SeoActivities.build_seo_report,
            ReportInput(
                job_id=crawl_input.job_id,
                crawl_id=crawl_input.crawl_id,
                user_id=data.user_id,
                url=str(data.url),
                site=crawl.site,
                pagespeed=pagespeed,
                pagespeed_error=pagespeed_error,
            ),
            **policies.db_step(job.run),
        )
