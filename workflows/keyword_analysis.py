"""KEYWORD_ANALYSIS: crawl a site and say, for each keyword, where it appears on each page,
its density, and the page that ranks best for it on the site (docs/seo.md).

The crawl is SEO_AUDIT's (``crawl_site``, counting the keywords as it parses each page);
``build_keyword_report`` ranks the pages, stores the report and returns it.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies
from workflows.seo_audit import crawl_whole_site, new_crawl

with workflow.unsafe.imports_passed_through():
    from activities.seo import KeywordAnalysisResult, KeywordReportInput, SeoActivities
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import JobType, KeywordAnalysisJobData
    from core.runs import JobRun


@workflow.defn(name=WORKFLOW_NAMES[JobType.KEYWORD_ANALYSIS])
class KeywordAnalysisWorkflow:
    @workflow.run
    async def run(self, job: JobRun[KeywordAnalysisJobData]) -> KeywordAnalysisResult:
        data = job.data
        crawl_input = new_crawl(
            data.user_id, str(data.url), data.max_pages, data.max_depth, data.keywords
        )
        await crawl_whole_site(job.run, crawl_input)
        return await workflow.execute_activity_method(
            SeoActivities.build_keyword_report,
            KeywordReportInput(
                job_id=crawl_input.job_id,
                crawl_id=crawl_input.crawl_id,
                user_id=data.user_id,
                url=str(data.url),
                keywords=data.keywords,
            ),
            **policies.db_step(job.run),
        )
