"""AD_ANALYSIS: ad performance per campaign, ad set and ad from an uploaded file or a
provider, with pacing against budget and outliers (docs/ads.md), in one activity.

The date range is fixed here, from the job's ``dateRange`` or the 30 days before the day the
job started, so every attempt reads the same rows.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.ads import AdActivities, AdAnalysisResult, AdSourceInput
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import AdAnalysisJobData, DateRange, JobType
    from core.runs import JobRun

PROVIDER_DAYS = 30


def date_range(
    data_range: DateRange | None, kind: str, days: int
) -> tuple[date | None, date | None]:
    """The days a job reads: its own range, else (for a provider) the ``days`` before today
    in UTC; a file without a range is read whole."""
    if data_range is not None:
        return data_range.since, data_range.until
    if kind in ("csv", "json"):
        return None, None
    until = workflow.now().date() - timedelta(days=1)
    return until - timedelta(days=days - 1), until


@workflow.defn(name=WORKFLOW_NAMES[JobType.AD_ANALYSIS])
class AdAnalysisWorkflow:
    @workflow.run
    async def run(self, job: JobRun[AdAnalysisJobData]) -> AdAnalysisResult:
        data = job.data
        since, until = date_range(data.date_range, data.source.kind, PROVIDER_DAYS)
        return await workflow.execute_activity_method(
            AdActivities.analyse_ads,
            AdSourceInput(
                job_id=workflow.info().workflow_id,
                user_id=data.user_id,
                source=data.source,
                since=since,
                until=until,
                access_token_id=data.access_token_id,
            ),
            **policies.long_step(job.run),
        )
