"""Activities of LEAD_ENRICHMENT: enrich a slice of a job's stored leads through Apify.

``enrich_leads`` reads the leads at positions ``[start, stop)`` (stored by the client when
the job was added, ``db/job_inputs.py``), sends them to the enrichment actor ``batch_size``
at a time, and records each lead's outcome (``db/enrichment.py``) without failing the batch
for one lead. After every batch it heartbeats its position and counts, so a retry resumes at
the next batch, and reports the job's progress. A rate limit slows it down (it waits what
``Retry-After`` asks, heartbeating) instead of failing it. It returns after ``TIME_BUDGET``
even if the slice is not done, so a slow actor never runs into the activity's timeout; the
workflow asks for the rest.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.errors import to_application_error
from activities.heartbeat import auto_heartbeat, heartbeat
from core.config import ConfigError
from core.errors import INVALID_CONFIGURATION, RATE_LIMITED, RESOURCE_NOT_FOUND
from core.logging import get_logger
from db.enrichment import EnrichmentStore, LeadOutcome
from db.job_inputs import JobInputStore
from integrations.apify import ApifyClient, FieldMapping, run_error
from integrations.errors import ProviderError, TransientProviderError
from tracking.progress import report_progress

log = get_logger(__name__)

LEADS_FIELD = "leads"
# Return after this long with the position reached; the workflow continues from there.
TIME_BUDGET_S = 600.0
# A batch hit by errors that are not rate limits is tried this often before the activity
# fails (and Temporal retries it from the heartbeated position).
BATCH_TRIES = 4
# Waits between tries of a batch after a 429 without Retry-After (seconds), then the last one.
RATE_LIMIT_WAITS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class EnrichLeadsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    user_id: str
    batch_size: int
    start: int
    stop: int
    total: int


class EnrichLeadsResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Where the next slice starts (``stop`` when this one is done).
    position: int
    enriched: int = 0
    failed: int = 0
    skipped: int = 0
    # Seconds spent waiting on rate limits.
    slowed_s: float = 0.0


def _resume(input: EnrichLeadsInput, details: Any) -> EnrichLeadsResult:
    if isinstance(details, dict) and isinstance(details.get("position"), int):
        try:
            resumed = EnrichLeadsResult.model_validate(details)
        except ValueError:
            resumed = None
        if resumed is not None and input.start <= resumed.position <= input.stop:
            return resumed
    return EnrichLeadsResult(position=input.start)


def _enrichable(lead: dict[str, Any]) -> bool:
    return any(lead.get(key) for key in ("email", "phone", "company"))


class EnrichmentActivities:
    def __init__(
        self,
        apify: ApifyClient,
        inputs: JobInputStore,
        results: EnrichmentStore,
        *,
        actor_id: str,
        mapping: FieldMapping,
    ) -> None:
        self._apify = apify
        self._inputs = inputs
        self._results = results
        self._actor_id = actor_id
        self._mapping = mapping

    @activity.defn(name="enrich_leads")
    @auto_heartbeat
    async def enrich_leads(self, input: EnrichLeadsInput) -> EnrichLeadsResult:
        if not self._actor_id:
            raise ApplicationError(
                "APIFY_ENRICHMENT_ACTOR_ID is not set",
                type=INVALID_CONFIGURATION,
                non_retryable=True,
            )
        if not self._apify.configured:
            raise ApplicationError(
                "APIFY_TOKEN is not set", type=INVALID_CONFIGURATION, non_retryable=True
            )
        if await self._inputs.owner(input.job_id, LEADS_FIELD) != input.user_id:
            raise ApplicationError(
                "the job's leads are not stored (or belong to another user)",
                type=RESOURCE_NOT_FOUND,
                non_retryable=True,
            )
        details = activity.info().heartbeat_details
        done = _resume(input, details[0] if details else None)
        if done.position == 0:
            # The job starts from its first lead (a first run, or a retry by hand): outcomes
            # of an earlier run of this job id are not this run's.
            await self._results.clear(input.job_id)
        deadline, reported = time.monotonic() + TIME_BUDGET_S, -1
        leads = await self._inputs.slice(input.job_id, LEADS_FIELD, done.position, input.stop)
        if len(leads) != input.stop - done.position:
            raise ApplicationError(
                f"the job's stored leads are incomplete: {len(leads)} of "
                f"{input.stop - done.position} at positions {done.position}..{input.stop - 1}",
                type=RESOURCE_NOT_FOUND,
                non_retryable=True,
            )
        for first in range(0, len(leads), input.batch_size):
            if time.monotonic() > deadline:
                break
            batch = leads[first : first + input.batch_size]
            try:
                outcomes, slowed = await self._enrich_batch(batch, deadline)
            except _OutOfTime as out:
                # Rate limited past the budget: the workflow asks again from this batch.
                done = done.model_copy(update={"slowed_s": done.slowed_s + out.slowed})
                break
            await self._results.record(input.job_id, outcomes)
            done = EnrichLeadsResult(
                position=batch[-1][0] + 1,
                enriched=done.enriched + sum(o.status == "enriched" for o in outcomes),
                failed=done.failed + sum(o.status == "failed" for o in outcomes),
                skipped=done.skipped + sum(o.status == "skipped" for o in outcomes),
                slowed_s=done.slowed_s + slowed,
            )
            heartbeat(done.model_dump())
            percent = min(99, done.position * 100 // max(input.total, 1))
            if percent != reported:  # at most 100 progress events per job
                await report_progress(percent)
                reported = percent
        return done

    async def _enrich_batch(
        self, batch: list[tuple[int, dict[str, Any]]], deadline: float
    ) -> tuple[list[LeadOutcome], float]:
        """Each lead's outcome, and the seconds spent waiting on rate limits."""
        skipped = [
            LeadOutcome(
                position=p,
                lead_id=str(lead["id"]),
                status="skipped",
                error="no email, phone or company",
            )
            for p, lead in batch
            if not _enrichable(lead)
        ]
        wanted = [(p, lead) for p, lead in batch if _enrichable(lead)]
        if not wanted:
            return skipped, 0.0
        pace = _Pace(deadline)
        try:
            items = await self._run_actor([lead for _, lead in wanted], pace)
        except ProviderError as exc:
            if exc.retryable or exc.status_code not in (None, 400):
                # Still failing after the retries in place (the activity is retried from
                # this batch), or bad configuration (token, actor, credit).
                raise to_application_error(exc) from None
            # The actor refused this batch's input, or its run failed: these leads failed,
            # the job goes on.
            reason = str(exc)[:300]
            failed = [
                LeadOutcome(position=p, lead_id=str(lead["id"]), status="failed", error=reason)
                for p, lead in wanted
            ]
            return skipped + failed, pace.slowed
        slowed = pace.slowed
        found = {}
        for item in items:
            enriched = self._mapping.read(item) if isinstance(item, dict) else None
            if enriched is not None:
                found[enriched.lead_id] = enriched
        outcomes = list(skipped)
        for position, lead in wanted:
            lead_id = str(lead["id"])
            enriched = found.get(lead_id)
            if enriched is None:
                outcomes.append(
                    LeadOutcome(
                        position=position,
                        lead_id=lead_id,
                        status="failed",
                        error="not in the actor's results",
                    )
                )
            elif enriched.error or not enriched.found_anything:
                outcomes.append(
                    LeadOutcome(
                        position=position,
                        lead_id=lead_id,
                        status="failed",
                        error=(enriched.error or "nothing found")[:300],
                    )
                )
            else:
                outcomes.append(
                    LeadOutcome(
                        position=position,
                        lead_id=lead_id,
                        status="enriched",
                        result=enriched.model_dump(exclude={"lead_id", "error"}, exclude_none=True),
                    )
                )
        return sorted(outcomes, key=lambda o: o.position), slowed

    async def _run_actor(self, leads: list[dict[str, Any]], pace: _Pace) -> list[Any]:
        """Start one run for the batch, wait for it and read its items. Every request is
        retried in place (a 429 for as long as the budget allows); a run once started is
        followed by its id, never started again."""
        run = await pace.call(lambda: self._apify.start_run(self._actor_id, {"leads": leads}))
        while not run.finished:
            # Each ask waits up to a minute; auto_heartbeat keeps beating meanwhile.
            run = await pace.call(functools.partial(self._apify.get_run, run.id))
        if run.status != "SUCCEEDED" or run.dataset_id is None:
            raise run_error(run)
        return await pace.call(functools.partial(self._apify.all_items, run.dataset_id))


class _OutOfTime(Exception):
    def __init__(self, slowed: float) -> None:
        self.slowed = slowed


T = TypeVar("T")


class _Pace:
    """Retries one request after rate limits (its ``Retry-After``, else a growing wait) until
    the deadline, and after other transient errors up to ``BATCH_TRIES`` times."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.slowed = 0.0
        self._limited = 0

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        tries = 0
        while True:
            try:
                return await request()
            except TransientProviderError as exc:
                if exc.error_type == RATE_LIMITED:
                    waits = RATE_LIMIT_WAITS_S
                    wait = exc.retry_after or waits[min(self._limited, len(waits) - 1)]
                    self._limited += 1
                else:
                    tries += 1
                    if tries >= BATCH_TRIES:
                        raise
                    wait = min(2.0**tries, 30.0)
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise _OutOfTime(self.slowed) from None
                wait = min(wait, left)
                if exc.error_type == RATE_LIMITED:
                    log.info("enrichment.rate_limited", wait_s=wait)
                    self.slowed += wait
                await asyncio.sleep(wait)


def build_enrichment_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings = deps.settings
    try:
        mapping = FieldMapping.from_setting(settings.apify_field_mapping)
    except ValueError as exc:
        raise ConfigError(f"APIFY_FIELD_MAPPING: {exc}") from None
    enrichment = EnrichmentActivities(
        ApifyClient(deps.http, base_url=settings.apify_api_base_url, token=settings.apify_token),
        JobInputStore(deps.sessions),
        EnrichmentStore(deps.sessions),
        actor_id=settings.apify_enrichment_actor_id,
        mapping=mapping,
    )
    return [enrichment.enrich_leads]
