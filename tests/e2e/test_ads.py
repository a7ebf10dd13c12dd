"""AD_ANALYSIS and AD_AUTOMATION end to end: JobQueue, real workers, the dev server,
PostgreSQL, Redis and the ads emulator (Meta and Google Ads). A CSV with hand-computed
answers and bad rows reported by line; provider totals equal to what the emulator seeded; a
dry run that changes nothing; a real run that takes each action once, under retry and in a
second job the same day, with an audit record of every action."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from client.base import JobInfo
from client.queue import JobQueue
from core.ads import Level
from core.config import Settings
from core.errors import InvalidJobData
from core.queues import QueueName, load_catalog
from core.temporal import data_converter
from emulators import ads as emulator
from emulators.endpoints import ads_settings
from emulators.server import Fault, serve
from tests.core.test_ads import CSV
from tests.support import (
    eventually,
    payloads_in,
    running_workers,
    settings_from,
    terminate_open_jobs,
)
from tracking.store import JobState

pytestmark = pytest.mark.integration

META = {"kind": "meta", "accountId": emulator.META_ACCOUNT}
GOOGLE = {"kind": "google", "customerId": "123-456-7890"}
EXPENSIVE = emulator.META_ADS[emulator.EXPENSIVE_AD]
NO_CONVERSIONS = emulator.META_ADS[emulator.NO_CONVERSIONS_AD]
PAUSE_COSTLY = {
    "id": "pause-costly",
    "action": "pause",
    "level": "ad",
    "minSpend": 50,
    "when": [{"metric": "cpa", "op": ">", "value": 100}],
}
BOOST_BEST = {
    "id": "boost-best",
    "action": "raise_budget",
    "level": "ad_set",
    "select": "best",
    "by": "roas",
    "percent": 20,
    "cap": 100,
}


@dataclass
class Ads:
    state: emulator.AdsState
    settings: Settings
    queue: JobQueue
    user: str


@pytest.fixture
async def ads(settings: Settings, session_env: dict[str, str]) -> AsyncIterator[Ads]:
    state = emulator.AdsState()
    async with serve(emulator.create_app(state)) as url:
        configured = settings_from({**session_env, **ads_settings(url)})
        # Retries a second apart, so a retried job is quick to prove.
        catalog = load_catalog({})
        catalog[QueueName.ADS] = replace(
            catalog[QueueName.ADS], initial_backoff=timedelta(seconds=1)
        )
        queue = await JobQueue.connect(configured, catalog=catalog)
        await terminate_open_jobs(settings, "ads")
        try:
            async with running_workers(configured, [QueueName.ADS]):
                yield Ads(state, configured, queue, f"user-{uuid.uuid4().hex[:6]}")
        finally:
            await queue.close()
            await terminate_open_jobs(settings, "ads")


async def run(ads: Ads, job_type: str, data: dict[str, Any]) -> JobInfo:
    job = await ads.queue.add_job("ads", job_type, {"userId": ads.user, **data})
    return await eventually(
        lambda: ads.queue.get_job(job.id),
        lambda info: info.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=60,
        interval=0.2,
    )


async def test_a_csv_is_analysed_and_its_bad_rows_reported_by_line(ads: Ads):
    file_id = await ads.queue.upload_ad_data(ads.user, CSV, format="csv", filename="nov.csv")
    info = await run(ads, "ad_analysis", {"source": {"kind": "csv", "fileId": file_id}})
    assert info.state is JobState.COMPLETED, info.failure_reason
    result = info.result
    assert [(b["line"], b["error"].split(":")[0]) for b in result["bad_rows"]] == [
        (8, "clicks"),
        (9, "ad_id"),
    ]
    totals = result["totals"]
    assert (totals["impressions"], totals["clicks"], totals["ctr"], totals["roas"]) == (
        60000,
        1050,
        1.75,
        3.1625,
    )
    assert {(o["ad_id"], o["metric"]) for o in result["outliers"]} == {
        ("a6", "ctr"),
        ("a6", "cpc"),
        ("a6", "cpa"),
        ("a6", "roas"),
    }
    report = await ads.queue.get_report(info.id, user_id=ads.user)
    assert report is not None and len(report["ads"]) == 6 and len(report["ad_sets"]) == 3
    assert await ads.queue.get_report(info.id, user_id="someone-else") is None


async def test_another_users_file_is_refused_when_the_job_is_added(ads: Ads):
    file_id = await ads.queue.upload_ad_data("owner", CSV, format="csv")
    source = {"kind": "csv", "fileId": file_id}
    with pytest.raises(InvalidJobData) as refused:
        await ads.queue.add_job("ads", "ad_analysis", {"userId": ads.user, "source": source})
    assert refused.value.problems == {"source.fileId": "no uploaded file of this id for this user"}
    stats = await ads.queue.get_queue_stats("ads")
    assert stats["waiting"] == 0 and stats["active"] == 0


async def test_meta_totals_equal_the_seeded_truth_and_the_token_stays_out_of_history(ads: Ads):
    info = await run(
        ads, "ad_analysis", {"source": META, "accessToken": emulator.DEFAULT_META_TOKEN}
    )
    assert info.state is JobState.COMPLETED, info.failure_reason
    result = info.result
    today = datetime.now(UTC).date()
    since, until = today - timedelta(days=30), today - timedelta(days=1)
    assert (result["since"], result["until"]) == (since.isoformat(), until.isoformat())
    truth = ads.state.meta_rows(emulator.META_ACCOUNT, since, until)
    assert result["rows"] == len(truth)
    assert result["totals"]["impressions"] == sum(r.impressions for r in truth)
    assert Decimal(result["totals"]["spend"]) == sum(r.spend for r in truth)
    assert (EXPENSIVE, "cpa") in {(o["ad_id"], o["metric"]) for o in result["outliers"]}
    # Pacing against the ad sets' daily budgets read from the account.
    report = await ads.queue.get_report(info.id, user_id=ads.user)
    assert report is not None
    assert all(s["daily_budget"] is not None and s["pacing"] is not None for s in report["ad_sets"])
    history = await ads.queue.client.get_workflow_handle(info.id).fetch_history()
    codec = data_converter(ads.settings).payload_codec
    assert codec is not None
    decoded = await codec.decode([p for e in history.events for p in payloads_in(e)])
    assert emulator.DEFAULT_META_TOKEN not in b"".join(p.data for p in decoded).decode(
        errors="replace"
    )


async def test_a_dry_run_lists_the_actions_and_changes_nothing(ads: Ads):
    info = await run(
        ads,
        "ad_automation",
        {
            "source": META,
            "rules": [PAUSE_COSTLY, BOOST_BEST],
            "accessToken": emulator.DEFAULT_META_TOKEN,
        },
    )
    assert info.state is JobState.COMPLETED, info.failure_reason
    planned = {(a["rule_id"], a["entity_id"]) for a in info.result["planned"]}
    assert {("pause-costly", EXPENSIVE), ("pause-costly", NO_CONVERSIONS)} <= planned
    best_set = emulator.META_AD_SETS[emulator.BEST_ROAS_AD // 2]
    assert ("boost-best", best_set) in planned
    assert info.result["dry_run"] is True
    assert ads.state.changes == []
    assert await ads.queue.list_ad_actions(ads.user) == []


async def test_a_real_run_takes_each_action_once_under_retry_and_audits_it(ads: Ads):
    data = {
        "source": META,
        "rules": [PAUSE_COSTLY, BOOST_BEST],
        "dryRun": False,
        "accessToken": emulator.DEFAULT_META_TOKEN,
    }
    # The second change fails once: the attempt fails after the first change was taken.
    ads.state.faults.add("meta.update", Fault(status=200), Fault(status=503))
    info = await run(ads, "ad_automation", data)
    assert info.state is JobState.COMPLETED, info.failure_reason
    assert info.attempts_made == 2
    applied = info.result["applied"]
    planned = info.result["planned"]
    assert len(applied) == len(planned) >= 3
    changed = [(c.level, c.id, c.field) for c in ads.state.changes]
    assert len(changed) == len(set(changed)) == len(planned)  # each change once
    best_set = emulator.META_AD_SETS[emulator.BEST_ROAS_AD // 2]
    boost = next(c for c in ads.state.changes if c.id == best_set)
    assert isinstance(boost.before, Decimal)
    raised = min(boost.before * Decimal("1.2"), Decimal(100)).quantize(Decimal("0.01"))
    assert (boost.level, boost.field, boost.after) == (Level.AD_SET, "daily_budget", raised)
    audit = await ads.queue.list_ad_actions(ads.user, job_id=info.id)
    assert {(r.rule_id, r.entity_id, r.status) for r in audit} == {
        (a["rule_id"], a["entity_id"], "done") for a in planned
    }
    pause = next(r for r in audit if r.entity_id == EXPENSIVE)
    assert (pause.user_id, pause.before["status"], pause.after["status"]) == (
        ads.user,
        "active",
        "paused",
    )
    assert pause.done_at is not None and pause.day == datetime.now(UTC).date().isoformat()
    # The same rules again today: nothing new is done.
    again = await run(ads, "ad_automation", data)
    assert again.state is JobState.COMPLETED, again.failure_reason
    assert len(ads.state.changes) == len(planned)
    skipped = {(s["entity_id"], s["reason"]) for s in again.result["skipped"]}
    assert (EXPENSIVE, "already paused") in skipped
    already = {(a["rule_id"], a["entity_id"]) for a in again.result["already_applied"]}
    assert ("boost-best", best_set) in already
    assert await ads.queue.list_ad_actions("someone-else") == []


async def test_google_ads_are_paused_and_campaign_budgets_raised(ads: Ads):
    rules = [
        {**PAUSE_COSTLY},
        {
            "id": "boost-campaign",
            "action": "raise_budget",
            "level": "campaign",
            "select": "best",
            "by": "roas",
            "percent": 10,
        },
    ]
    info = await run(
        ads,
        "ad_automation",
        {
            "source": GOOGLE,
            "rules": rules,
            "dryRun": False,
            "accessToken": emulator.DEFAULT_GOOGLE_TOKEN,
        },
    )
    assert info.state is JobState.COMPLETED, info.failure_reason
    paused = {c.id for c in ads.state.changes if c.field == "status"}
    assert emulator.GOOGLE_ADS[emulator.EXPENSIVE_AD] in paused
    (budget,) = [c for c in ads.state.changes if c.field == "daily_budget"]
    assert budget.level is Level.CAMPAIGN
    assert isinstance(budget.before, Decimal)
    assert budget.after == (budget.before * Decimal("1.1")).quantize(Decimal("0.01"))


async def test_an_expired_token_fails_the_job_at_once_with_a_reason(ads: Ads):
    info = await run(ads, "ad_analysis", {"source": META, "accessToken": emulator.EXPIRED_TOKEN})
    assert info.state is JobState.FAILED and info.attempts_made == 1
    assert info.failure_reason is not None and emulator.EXPIRED_TOKEN not in info.failure_reason


async def test_a_token_refused_mid_run_stops_the_job_and_the_next_run_takes_what_is_left(
    ads: Ads,
):
    data = {
        "source": META,
        "rules": [PAUSE_COSTLY],
        "dryRun": False,
        "accessToken": emulator.DEFAULT_META_TOKEN,
    }
    expired = Fault(status=400, body=emulator.meta_error(190, "Error validating access token"))
    # The first change goes through; the second finds the token revoked.
    ads.state.faults.add("meta.update", Fault(status=200), expired)
    first = await run(ads, "ad_automation", data)
    assert first.state is JobState.FAILED and first.attempts_made == 1
    assert len(ads.state.changes) == 1
    audit = {r.entity_id: r.status for r in await ads.queue.list_ad_actions(ads.user)}
    assert sorted(audit.values()) == ["done", "pending"]  # no "failed" blocking the day
    # The user reconnects and runs the rules again the same day: only what is left is done.
    again = await run(ads, "ad_automation", data)
    assert again.state is JobState.COMPLETED, again.failure_reason
    assert len(ads.state.changes) == len(audit)
    assert [a["entity_id"] for a in again.result["applied"]] == [
        entity for entity, status in audit.items() if status == "pending"
    ]
    assert {r.status for r in await ads.queue.list_ad_actions(ads.user)} == {"done"}
