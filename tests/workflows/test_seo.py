"""The SEO_AUDIT and KEYWORD_ANALYSIS workflows with their activities replaced: a crawl
handed back after its time budget is continued from its frontier, PageSpeed runs only when
the worker has a key, a permanent crawl failure ends the job with no report, a transient one
is retried on the seo queue's schedule, and every heartbeating preset goes to an activity
that heartbeats."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.heartbeat import heartbeats
from activities.seo import (
    CrawlInput,
    CrawlResult,
    Frontier,
    KeywordAnalysisResult,
    KeywordReportInput,
    PageSpeedInput,
    ReportInput,
    SeoActivities,
    SeoAuditResult,
)
from core.errors import PERMISSION_DENIED, PROVIDER_UNAVAILABLE
from core.jobs import JobType, KeywordAnalysisJobData, SeoAuditJobData
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import JobRun, run_options
from core.seo import SiteFacts
from integrations.pagespeed import PageSpeedResult
from tests.workflows.conftest import assert_waits, record_history
from worker import workflow_runner
from workflows.keyword_analysis import KeywordAnalysisWorkflow
from workflows.seo_audit import SeoAuditWorkflow

pytestmark = pytest.mark.workflow

SITE = SiteFacts(root="http://site.test/", robots_txt=True, sitemap=True)
REAL = {
    "crawl_site": SeoActivities.crawl_site,
    "build_seo_report": SeoActivities.build_seo_report,
    "build_keyword_report": SeoActivities.build_keyword_report,
    "run_pagespeed": SeoActivities.run_pagespeed,
}


@dataclass
class FakeSeo:
    """``crawl_calls`` calls finish a crawl (the earlier ones hand back a frontier); the first
    ``failures`` attempts of the crawl fail with ``error``."""

    crawl_calls: int = 1
    pagespeed: bool = False
    failures: int = 0
    error: ApplicationError | None = None
    crawls: list[CrawlInput] = field(default_factory=list)
    attempts: list[datetime] = field(default_factory=list)
    reports: list[ReportInput | KeywordReportInput] = field(default_factory=list)
    pagespeed_runs: list[PageSpeedInput] = field(default_factory=list)
    heartbeat_timeouts: dict[str, timedelta | None] = field(default_factory=dict)

    def _called(self, name: str) -> None:
        self.heartbeat_timeouts[name] = activity.info().heartbeat_timeout

    @activity.defn(name="crawl_site")
    async def crawl(self, input: CrawlInput) -> CrawlResult:
        self._called("crawl_site")
        self.attempts.append(activity.info().started_time)
        if self.error is not None and len(self.attempts) <= self.failures:
            raise self.error
        self.crawls.append(input)
        done = len(self.crawls) >= self.crawl_calls
        frontier = None if done else Frontier(depth=len(self.crawls), urls=[f"u{len(self.crawls)}"])
        return CrawlResult(
            pages=10 * len(self.crawls),
            complete=done,
            frontier=frontier,
            site=SITE,
            pagespeed_available=self.pagespeed,
        )

    @activity.defn(name="run_pagespeed")
    async def run_pagespeed(self, input: PageSpeedInput) -> PageSpeedResult:
        self._called("run_pagespeed")
        self.pagespeed_runs.append(input)
        return PageSpeedResult(
            final_url=input.url, strategy=input.strategy, scores={"performance": 91}
        )

    @activity.defn(name="build_seo_report")
    async def report(self, input: ReportInput) -> SeoAuditResult:
        self._called("build_seo_report")
        self.reports.append(input)
        return SeoAuditResult(
            url=input.url,
            pages_crawled=20,
            score=88,
            issues=[],
            issue_counts={},
            site=input.site,
            pagespeed=input.pagespeed,
        )

    @activity.defn(name="build_keyword_report")
    async def keyword_report(self, input: KeywordReportInput) -> KeywordAnalysisResult:
        self._called("build_keyword_report")
        self.reports.append(input)
        return KeywordAnalysisResult(url=input.url, pages_crawled=20, keywords=[])

    def activities(self) -> list[Any]:
        return [self.crawl, self.run_pagespeed, self.report, self.keyword_report]

    def check_presets(self) -> None:
        assert self.heartbeat_timeouts, "no activity ran"
        for name, timeout in self.heartbeat_timeouts.items():
            if timeout is not None:
                assert heartbeats(REAL[name]), name


async def run_job(
    env: WorkflowEnvironment, fake: FakeSeo, workflow: Any, data: Any, history: str | None = None
) -> Any:
    queue = f"seo-test-{uuid.uuid4().hex[:8]}"
    job_type = JobType.SEO_AUDIT if workflow is SeoAuditWorkflow else JobType.KEYWORD_ANALYSIS
    run = run_options(DEFAULT_CATALOG[QueueName.SEO], job_type).model_copy(update={"queue": queue})
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[workflow],
        activities=fake.activities(),
        workflow_runner=workflow_runner(),
    ):
        handle = await env.client.start_workflow(
            workflow.run,
            JobRun[type(data)](data=data, run=run),  # type: ignore[misc, operator]
            id=f"{job_type.value}-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        result = await handle.result()
        if history is not None:
            await record_history(handle, history)
        return handle, result


def audit_data(**extra: Any) -> SeoAuditJobData:
    return SeoAuditJobData.model_validate({"userId": "u-1", "url": "http://site.test/", **extra})


async def test_a_crawl_handed_back_is_continued_from_its_frontier(time_env: WorkflowEnvironment):
    fake = FakeSeo(crawl_calls=3)
    handle, result = await run_job(
        time_env,
        fake,
        SeoAuditWorkflow,
        audit_data(maxPages=200, maxDepth=2),
        history="seo_audit_continued_crawl",
    )
    assert [c.resume for c in fake.crawls] == [
        None,
        Frontier(depth=1, urls=["u1"]),
        Frontier(depth=2, urls=["u2"]),
    ]
    first = fake.crawls[0]
    # The stored pages belong to this run of the job (a job run again crawls afresh).
    assert {c.crawl_id for c in fake.crawls} == {f"{handle.id}/{handle.result_run_id}"}
    assert (first.job_id, first.user_id, first.max_pages, first.max_depth, first.keywords) == (
        handle.id,
        "u-1",
        200,
        2,
        [],
    )
    (report,) = fake.reports
    assert isinstance(report, ReportInput) and report.site == SITE and report.pagespeed is None
    assert fake.pagespeed_runs == []  # no key on the worker
    assert (result.score, result.pages_crawled) == (88, 20)
    fake.check_presets()


async def test_pagespeed_runs_when_the_worker_has_a_key(time_env: WorkflowEnvironment):
    fake = FakeSeo(pagespeed=True)
    _, result = await run_job(time_env, fake, SeoAuditWorkflow, audit_data(strategy="desktop"))
    assert fake.pagespeed_runs == [PageSpeedInput(url="http://site.test/", strategy="desktop")]
    assert result.pagespeed is not None and result.pagespeed.scores == {"performance": 91}
    fake.check_presets()


async def test_a_permanent_crawl_failure_ends_the_job_without_a_report(
    time_env: WorkflowEnvironment,
):
    error = ApplicationError(
        "robots.txt disallows crawling the start URL", type=PERMISSION_DENIED, non_retryable=True
    )
    fake = FakeSeo(failures=1, error=error)
    with pytest.raises(WorkflowFailureError) as failure:
        await run_job(time_env, fake, SeoAuditWorkflow, audit_data())
    cause = failure.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == PERMISSION_DENIED
    assert len(fake.attempts) == 1 and fake.reports == []


async def test_a_transient_crawl_failure_is_retried_on_the_seo_schedule(
    time_env: WorkflowEnvironment,
):
    spec = DEFAULT_CATALOG[QueueName.SEO]
    fake = FakeSeo(failures=2, error=ApplicationError("site down", type=PROVIDER_UNAVAILABLE))
    await run_job(time_env, fake, SeoAuditWorkflow, audit_data())
    first = spec.initial_backoff.total_seconds()
    assert_waits(fake.attempts, [first, first * spec.backoff_coefficient])
    assert len(fake.reports) == 1


async def test_keyword_analysis_counts_the_keywords_while_it_crawls(time_env: WorkflowEnvironment):
    fake = FakeSeo(crawl_calls=2)
    data = KeywordAnalysisJobData.model_validate(
        {
            "userId": "u-1",
            "url": "http://site.test/",
            "keywords": ["cold brew", "espresso"],
            "maxPages": 30,
        }
    )
    handle, result = await run_job(
        time_env, fake, KeywordAnalysisWorkflow, data, history="keyword_analysis_continued_crawl"
    )
    assert all(c.keywords == ["cold brew", "espresso"] and c.max_pages == 30 for c in fake.crawls)
    assert fake.reports == [
        KeywordReportInput(
            job_id=handle.id,
            crawl_id=f"{handle.id}/{handle.result_run_id}",
            user_id="u-1",
            url="http://site.test/",
            keywords=["cold brew", "espresso"],
        )
    ]
    assert result.pages_crawled == 20
    fake.check_presets()


async def test_a_pagespeed_failure_is_noted_and_the_audit_still_reported(
    time_env: WorkflowEnvironment,
):
    fake = FakeSeo(pagespeed=True)

    @activity.defn(name="run_pagespeed")
    async def failing(input: PageSpeedInput) -> PageSpeedResult:
        raise ApplicationError(
            "Lighthouse returned an error", type="RequestRejected", non_retryable=True
        )

    fake.run_pagespeed = failing  # type: ignore[method-assign]
    _, result = await run_job(time_env, fake, SeoAuditWorkflow, audit_data())
    (report,) = fake.reports
    assert isinstance(report, ReportInput) and report.pagespeed is None
    assert report.pagespeed_error is not None and "Lighthouse" in report.pagespeed_error
    assert result.score == 88
