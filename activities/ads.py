"""Activities of AD_ANALYSIS and AD_AUTOMATION: read ad performance rows from an uploaded
file or a provider, compute the report, and take the actions the user's rules ask for.

``analyse_ads`` reads the rows, computes the report (``core/ads.py``), stores it and returns
its summary. ``plan_ad_actions`` computes the same report and the actions the rules ask for
against the entities' current state; its result (in the workflow's history) is the plan a
dry run returns and a real run takes. ``apply_ad_actions`` takes it: each action is recorded
``pending`` before the provider is asked and ``done`` after, under one key per user, rule,
entity and day (``db/ads.py``), so a retry, or another job the same day, never takes an
action twice; a pending action found again is taken with its recorded values, which are
absolute (a status, a budget amount), so taking it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.errors import to_application_error
from activities.heartbeat import auto_heartbeat
from core.ads import (
    AdReport,
    AdRow,
    BadRow,
    EntityMetrics,
    EntityState,
    Level,
    Outlier,
    PlannedAction,
    Rule,
    SkippedAction,
    analyse,
    plan,
    read_file,
)
from core.config import Settings
from core.crypto import TokenCipher, token_key
from core.errors import (
    AUTHENTICATION_FAILED,
    INVALID_CONFIGURATION,
    INVALID_JOB_DATA,
    REAUTH_REQUIRED,
    RESOURCE_NOT_FOUND,
)
from core.jobs import AdFileSource, AdSource, MetaAdsSource
from core.logging import get_logger
from db.ads import ActionRecord, AdActionStore, AdFileStore, action_key
from db.base import utcnow
from db.reports import ReportStore
from db.secrets import SecretNotFound, SecretStore
from integrations.ads import AdsAdapter, build_ads_adapters
from integrations.errors import PermanentProviderError, ProviderError
from tracking.progress import report_progress

log = get_logger(__name__)

# Provider errors about the account or our access to it, not about one ad.
ACCOUNT_WIDE_ERRORS = frozenset({REAUTH_REQUIRED, AUTHENTICATION_FAILED, INVALID_CONFIGURATION})
# The bad rows and outliers a job's result lists; the stored report has them all.
MAX_RESULT_ITEMS = 100


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class AdSourceInput(_Model):
    job_id: str
    user_id: str
    source: AdSource
    since: date | None = None
    until: date | None = None
    access_token_id: str | None = None


class AdAnalysisResult(_Model):
    """What ``get_job(id).result`` carries; the stored report has every ad set and ad."""

    since: date | None
    until: date | None
    days: int
    rows: int
    bad_row_count: int
    bad_rows: list[BadRow]
    totals: EntityMetrics
    campaigns: list[EntityMetrics]
    ad_set_count: int
    ad_count: int
    outliers: list[Outlier]


class PlanInput(AdSourceInput):
    rules: list[Rule]
    # The day the actions belong to (one action per rule, entity and day).
    day: date


class AdPlan(_Model):
    provider: str
    account_id: str
    day: date
    actions: list[PlannedAction]
    skipped: list[SkippedAction]
    # Rule and entity pairs already acted on that day (by this job or another).
    already_applied: list[SkippedAction] = Field(default_factory=list)


class ApplyInput(_Model):
    job_id: str
    user_id: str
    source: AdSource
    access_token_id: str | None = None
    plan: AdPlan


class AdAutomationResult(_Model):
    dry_run: bool
    day: date
    planned: list[PlannedAction]
    skipped: list[SkippedAction]
    already_applied: list[SkippedAction]
    applied: list[ActionRecord] = Field(default_factory=list)
    failed: list[ActionRecord] = Field(default_factory=list)


def _permanent(message: str, kind: str = INVALID_JOB_DATA) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def account_of(source: AdSource) -> str:
    if isinstance(source, AdFileSource):
        return source.file_id
    if isinstance(source, MetaAdsSource):
        return source.account_id
    return source.customer_id


class AdActivities:
    def __init__(
        self,
        files: AdFileStore,
        actions: AdActionStore,
        reports: ReportStore,
        secrets: SecretStore,
        adapters: dict[str, AdsAdapter],
    ) -> None:
        self._files = files
        self._actions = actions
        self._reports = reports
        self._secrets = secrets
        self._adapters = adapters

    async def _token(self, input: AdSourceInput | ApplyInput) -> str:
        if input.access_token_id is None:
            raise _permanent(f"accessToken: required for a {input.source.kind} source")
        try:
            return await self._secrets.get(input.access_token_id, user_id=input.user_id)
        except SecretNotFound:
            raise _permanent(
                "the job's access token is no longer stored", RESOURCE_NOT_FOUND
            ) from None

    async def _read(
        self, input: AdSourceInput
    ) -> tuple[list[AdRow], list[BadRow], dict[str, Any], list[EntityState]]:
        """The rows of the source, its bad rows, the daily budgets and (from a provider)
        the current state of every entity."""
        source = input.source
        if isinstance(source, AdFileSource):
            stored = await self._files.get(source.file_id, user_id=input.user_id)
            if stored is None:
                raise _permanent(
                    f"source.fileId: no file {source.file_id!r} of this user", RESOURCE_NOT_FOUND
                )
            try:
                found = read_file(stored.content, source.kind)
            except ValueError as exc:
                raise _permanent(f"source.fileId: {exc}") from None
            return found.rows, found.bad_rows, dict(found.budgets), []
        adapter = self._adapters[source.kind]
        token = await self._token(input)
        since, until = input.since, input.until
        assert since is not None and until is not None  # the workflow fixes the range
        try:
            rows = [
                row async for row in adapter.rows(account_of(source), since, until, token=token)
            ]
            entities = await adapter.entities(account_of(source), token=token)
        except ProviderError as exc:
            raise to_application_error(exc) from exc
        budgets = {
            f"{e.level}:{e.id}": e.daily_budget for e in entities if e.daily_budget is not None
        }
        return rows, [], budgets, entities

    def _report(self, input: AdSourceInput, rows: list[AdRow], budgets: dict[str, Any]) -> AdReport:
        return analyse(rows, since=input.since, until=input.until, budgets=budgets)

    @activity.defn(name="analyse_ads")
    @auto_heartbeat
    async def analyse_ads(self, input: AdSourceInput) -> AdAnalysisResult:
        rows, bad_rows, budgets, _ = await self._read(input)
        await report_progress(50)
        report = self._report(input, rows, budgets)
        document = {
            **report.model_dump(mode="json"),
            "bad_rows": [b.model_dump() for b in bad_rows],
        }
        await self._reports.save(
            input.job_id, user_id=input.user_id, kind="ad_analysis", report=document
        )
        await report_progress(100)
        return AdAnalysisResult(
            since=report.since,
            until=report.until,
            days=report.days,
            rows=report.rows,
            bad_row_count=len(bad_rows),
            bad_rows=bad_rows[:MAX_RESULT_ITEMS],
            totals=report.totals,
            campaigns=report.campaigns[:MAX_RESULT_ITEMS],
            ad_set_count=len(report.ad_sets),
            ad_count=len(report.ads),
            outliers=report.outliers[:MAX_RESULT_ITEMS],
        )

    @activity.defn(name="plan_ad_actions")
    @auto_heartbeat
    async def plan_ad_actions(self, input: PlanInput) -> AdPlan:
        rows, _, budgets, entities = await self._read(input)
        report = self._report(input, rows, budgets)
        if entities:
            states = {f"{e.level}:{e.id}": e for e in entities}
        else:  # a file: what it says, for a dry run
            states = {
                f"{m.level}:{m.id}": EntityState(
                    level=m.level, id=m.id, name=m.name, daily_budget=m.daily_budget
                )
                for m in (*report.campaigns, *report.ad_sets, *report.ads)
            }
        actions, skipped = plan(input.rules, report, states)
        day = input.day.isoformat()
        done = await self._actions.done_keys(input.user_id, day)
        already = [
            a
            for a in actions
            if action_key(input.user_id, a.rule_id, a.level, a.entity_id, day) in done
        ]
        return AdPlan(
            provider=input.source.kind,
            account_id=account_of(input.source),
            day=input.day,
            actions=[a for a in actions if a not in already],
            skipped=skipped,
            already_applied=[
                SkippedAction(
                    rule_id=a.rule_id, entity_id=a.entity_id, reason=f"already applied on {day}"
                )
                for a in already
            ],
        )

    @activity.defn(name="apply_ad_actions")
    @auto_heartbeat
    async def apply_ad_actions(self, input: ApplyInput) -> AdAutomationResult:
        plan_ = input.plan
        adapter = self._adapters[plan_.provider]
        token = await self._token(input)
        applied: list[ActionRecord] = []
        failed: list[ActionRecord] = []
        already: list[SkippedAction] = list(plan_.already_applied)
        for i, planned in enumerate(plan_.actions):
            record, _ = await self._actions.claim(
                planned,
                job_id=input.job_id,
                user_id=input.user_id,
                provider=plan_.provider,
                account_id=plan_.account_id,
                day=plan_.day.isoformat(),
            )
            if record.status == "done" and record.job_id != input.job_id:
                already.append(
                    SkippedAction(
                        rule_id=planned.rule_id,
                        entity_id=planned.entity_id,
                        reason=f"already applied on {plan_.day}",
                    )
                )
                continue
            if record.status == "failed" and record.job_id != input.job_id:
                # Another job failed to take it: this one tries again.
                record = await self._actions.retake(record.id, job_id=input.job_id)
            if record.status != "pending":
                (applied if record.status == "done" else failed).append(record)
                continue
            try:
                await _take(adapter, plan_.account_id, record, token)
            except PermanentProviderError as exc:
                if exc.error_type in ACCOUNT_WIDE_ERRORS:
                    # Every other action would fail alike: stop, and leave this one pending
                    # for the next run (after the user reconnects the account).
                    raise to_application_error(exc) from exc
                await self._actions.finish(record.id, error=str(exc))
                failed.append(record.model_copy(update={"status": "failed", "error": str(exc)}))
                continue
            except ProviderError as exc:
                # Left pending: the retry takes it again with the same absolute values.
                raise to_application_error(exc) from exc
            await self._actions.finish(record.id)
            log.info(
                "ads.action_taken",
                job_id=input.job_id,
                rule_id=record.rule_id,
                action=record.action,
                level=record.level,
                entity_id=record.entity_id,
            )
            applied.append(record.model_copy(update={"status": "done", "done_at": utcnow()}))
            await report_progress(round(100 * (i + 1) / len(plan_.actions)))
        result = AdAutomationResult(
            dry_run=False,
            day=plan_.day,
            planned=plan_.actions,
            skipped=plan_.skipped,
            already_applied=already,
            applied=applied,
            failed=failed,
        )
        await self._reports.save(
            input.job_id,
            user_id=input.user_id,
            kind="ad_automation",
            report=result.model_dump(mode="json"),
        )
        return result


async def _take(adapter: AdsAdapter, account_id: str, record: ActionRecord, token: str) -> None:
    level = Level(record.level)
    if record.action == "pause":
        await adapter.pause(account_id, level, record.entity_id, token=token)
        return
    await adapter.set_daily_budget(
        account_id, level, record.entity_id, Decimal(record.after["daily_budget"]), token=token
    )


def build_ad_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings: Settings = deps.settings
    at_rest = token_key(settings)
    acts = AdActivities(
        AdFileStore(deps.sessions),
        AdActionStore(deps.sessions),
        ReportStore(deps.sessions),
        SecretStore(deps.sessions, TokenCipher(at_rest), at_rest),
        build_ads_adapters(settings, deps.http),
    )
    return [acts.analyse_ads, acts.plan_ad_actions, acts.apply_ad_actions]
