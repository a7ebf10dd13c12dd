"""AD_AUTOMATION: apply the user's rules to their ad data (docs/ads.md).

``plan_ad_actions`` reads the data and the entities' current state and says what each rule
would do; a dry run (the default) returns that plan and changes nothing. A real run hands
the plan, as recorded in history, to ``apply_ad_actions``, which takes each action once per
rule, entity and day however often it is retried, and writes the audit trail. The day is
the day the job started (UTC).
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies
from workflows.ad_analysis import date_range

with workflow.unsafe.imports_passed_through():
    from activities.ads import AdActivities, AdAutomationResult, ApplyInput, PlanInput
    from core.catalog import WORKFLOW_NAMES
    from core.jobs import AdAutomationJobData, JobType
    from core.runs import JobRun

PROVIDER_DAYS = 7


@workflow.defn(name=WORKFLOW_NAMES[JobType.AD_AUTOMATION])
class AdAutomationWorkflow:
    @workflow.run
    async def run(self, job: JobRun[AdAutomationJobData]) -> AdAutomationResult:
        data = job.data
        since, until = date_range(data.date_range, data.source.kind, PROVIDER_DAYS)
        day = workflow.now().date()
        job_id = workflow.info().workflow_id
        plan = await workflow.execute_activity_method(
            AdActivities.plan_ad_actions,
            PlanInput(
                job_id=job_id,
                user_id=data.user_id,
                source=data.source,
                since=since,
                until=until,
                access_token_id=data.access_token_id,
                rules=data.rules,
                day=day,
            ),
            **policies.long_step(job.run),
        )
        if data.dry_run or not plan.actions:
            return AdAutomationResult(
                dry_run=data.dry_run,
                day=day,
                planned=plan.actions,
                skipped=plan.skipped,
                already_applied=plan.already_applied,
            )
        return await workflow.execute_activity_method(
            AdActivities.apply_ad_actions,
            ApplyInput(
                job_id=job_id,
                user_id=data.user_id,
                source=data.source,
                access_token_id=data.access_token_id,
                plan=plan,
            ),
            **policies.long_step(job.run),
        )
