"""The AD_ANALYSIS and AD_AUTOMATION workflows with their activities replaced: the date range
is fixed in the workflow (the job's own, all of a file, or the days before the job started
for a provider), a dry run plans and changes nothing, a real run takes exactly the plan
recorded in history, and every heartbeating preset goes to an activity that heartbeats."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ads import (
    AdActivities,
    AdAnalysisResult,
    AdAutomationResult,
    AdPlan,
    AdSourceInput,
    ApplyInput,
    PlanInput,
)
from activities.heartbeat import heartbeats
from core.ads import EntityMetrics, Level, PlannedAction
from core.jobs import AdAnalysisJobData, AdAutomationJobData, JobType
from core.queues import DEFAULT_CATALOG, QueueName
from core.runs import JobRun, run_options
from tests.workflows.conftest import record_history
from worker import workflow_runner
from workflows.ad_analysis import AdAnalysisWorkflow
from workflows.ad_automation import AdAutomationWorkflow

pytestmark = pytest.mark.workflow

REAL = {
    "analyse_ads": AdActivities.analyse_ads,
    "plan_ad_actions": AdActivities.plan_ad_actions,
    "apply_ad_actions": AdActivities.apply_ad_actions,
}
TOTALS = EntityMetrics(
    level=Level.CAMPAIGN,
    id="all",
    campaign_id="",
    impressions=10,
    clicks=1,
    spend=Decimal(2),
    conversions=Decimal(0),
    revenue=Decimal(0),
    ctr=10.0,
    cpc=2.0,
    cpa=None,
    roas=0.0,
)
PAUSE = PlannedAction(
    rule_id="r1",
    action="pause",
    level=Level.AD,
    entity_id="a6",
    before={"status": "active", "daily_budget": None},
    after={"status": "paused", "daily_budget": None},
    reason="cpa inf > 50",
)


@dataclass
class FakeAds:
    actions: list[PlannedAction] = field(default_factory=lambda: [PAUSE])
    analysed: list[AdSourceInput] = field(default_factory=list)
    planned: list[PlanInput] = field(default_factory=list)
    applied: list[ApplyInput] = field(default_factory=list)
    heartbeat_timeouts: dict[str, timedelta | None] = field(default_factory=dict)

    @activity.defn(name="analyse_ads")
    async def analyse(self, input: AdSourceInput) -> AdAnalysisResult:
        self.heartbeat_timeouts["analyse_ads"] = activity.info().heartbeat_timeout
        self.analysed.append(input)
        return AdAnalysisResult(
            since=input.since,
            until=input.until,
            days=0,
            rows=1,
            bad_row_count=0,
            bad_rows=[],
            totals=TOTALS,
            campaigns=[],
            ad_set_count=1,
            ad_count=1,
            outliers=[],
        )

    @activity.defn(name="plan_ad_actions")
    async def plan(self, input: PlanInput) -> AdPlan:
        self.heartbeat_timeouts["plan_ad_actions"] = activity.info().heartbeat_timeout
        self.planned.append(input)
        return AdPlan(
            provider=input.source.kind,
            account_id="act_1001",
            day=input.day,
            actions=self.actions,
            skipped=[],
        )

    @activity.defn(name="apply_ad_actions")
    async def apply(self, input: ApplyInput) -> AdAutomationResult:
        self.heartbeat_timeouts["apply_ad_actions"] = activity.info().heartbeat_timeout
        self.applied.append(input)
        return AdAutomationResult(
            dry_run=False,
            day=input.plan.day,
            planned=input.plan.actions,
            skipped=[],
            already_applied=[],
        )

    def check_presets(self) -> None:
        assert self.heartbeat_timeouts, "no activity ran"
        for name, timeout in self.heartbeat_timeouts.items():
            if timeout is not None:
                assert heartbeats(REAL[name]), name


async def run_job(
    env: WorkflowEnvironment, fake: FakeAds, workflow: Any, data: Any, history: str | None = None
) -> Any:
    queue = f"ads-test-{uuid.uuid4().hex[:8]}"
    job_type = JobType.AD_ANALYSIS if workflow is AdAnalysisWorkflow else JobType.AD_AUTOMATION
    run = run_options(DEFAULT_CATALOG[QueueName.ADS], job_type).model_copy(update={"queue": queue})
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[workflow],
        activities=[fake.analyse, fake.plan, fake.apply],
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
        started = (await handle.describe()).start_time
        return handle, result, started.date()


META = {"kind": "meta", "accountId": "act_1001"}
RULES = [{"id": "r1", "action": "pause", "when": [{"metric": "cpa", "op": ">", "value": 50}]}]


async def test_a_file_is_read_whole_unless_the_job_gives_a_range(time_env: WorkflowEnvironment):
    fake = FakeAds()
    file = {"userId": "u-1", "source": {"kind": "csv", "fileId": "adf_1"}}
    await run_job(
        time_env,
        fake,
        AdAnalysisWorkflow,
        AdAnalysisJobData.model_validate(file),
        history="ad_analysis_file",
    )
    ranged = {**file, "dateRange": {"since": "2026-11-01", "until": "2026-11-30"}}
    await run_job(time_env, fake, AdAnalysisWorkflow, AdAnalysisJobData.model_validate(ranged))
    assert [(a.since, a.until) for a in fake.analysed] == [
        (None, None),
        (date(2026, 11, 1), date(2026, 11, 30)),
    ]
    fake.check_presets()


async def test_a_provider_is_read_for_the_30_days_before_the_job(time_env: WorkflowEnvironment):
    fake = FakeAds()
    data = AdAnalysisJobData.model_validate(
        {"userId": "u-1", "source": META, "accessTokenId": "sec_1"}
    )
    _, _, started = await run_job(time_env, fake, AdAnalysisWorkflow, data)
    (input,) = fake.analysed
    yesterday = started - timedelta(days=1)
    assert (input.since, input.until) == (yesterday - timedelta(days=29), yesterday)
    assert input.access_token_id == "sec_1"


async def test_a_dry_run_plans_and_takes_nothing(time_env: WorkflowEnvironment):
    fake = FakeAds()
    data = AdAutomationJobData.model_validate(
        {"userId": "u-1", "source": META, "accessTokenId": "sec_1", "rules": RULES}
    )
    _, result, started = await run_job(
        time_env, fake, AdAutomationWorkflow, data, history="ad_automation_dry_run"
    )
    assert fake.applied == []
    assert (result.dry_run, result.planned, result.day) == (True, [PAUSE], started)
    (plan,) = fake.planned
    assert plan.day == started and plan.until == started - timedelta(days=1)
    assert plan.since == started - timedelta(days=7)
    fake.check_presets()


async def test_a_real_run_takes_the_recorded_plan(time_env: WorkflowEnvironment):
    fake = FakeAds()
    data = AdAutomationJobData.model_validate(
        {"userId": "u-1", "source": META, "accessTokenId": "sec_1", "rules": RULES, "dryRun": False}
    )
    handle, result, started = await run_job(
        time_env, fake, AdAutomationWorkflow, data, history="ad_automation_real_run"
    )
    (applied,) = fake.applied
    assert applied.plan.actions == [PAUSE] and applied.plan.day == started
    assert (applied.job_id, applied.access_token_id) == (handle.id, "sec_1")
    assert result.dry_run is False
    fake.check_presets()


async def test_a_real_run_with_nothing_to_do_asks_nothing(time_env: WorkflowEnvironment):
    fake = FakeAds(actions=[])
    data = AdAutomationJobData.model_validate(
        {"userId": "u-1", "source": META, "accessTokenId": "sec_1", "rules": RULES, "dryRun": False}
    )
    _, result, _ = await run_job(time_env, fake, AdAutomationWorkflow, data)
    assert fake.applied == [] and result.planned == [] and result.dry_run is False
