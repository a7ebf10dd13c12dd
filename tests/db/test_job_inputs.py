"""Stored job inputs and enrichment results, on SQLite and PostgreSQL: a list of any length
stored and read back by position ranges, replaced on a second put, removed with its job;
per-lead outcomes upserted (a redone batch overwrites its rows) and paged in lead order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.enrichment import EnrichmentStore, LeadOutcome
from db.job_inputs import JobInputStore

Sessions = async_sessionmaker[AsyncSession]
DAY = timedelta(days=1)


async def test_a_long_list_is_stored_and_sliced_by_position(
    sessionmaker: Sessions, unique_id: Callable[[str], str]
) -> None:
    inputs = JobInputStore(sessionmaker)
    job = unique_id("job")
    leads = [{"id": f"l{n}", "email": f"l{n}@example.com"} for n in range(2500)]
    assert await inputs.put(job, "leads", "u-1", leads, needed_for=DAY) == 2500
    assert await inputs.owner(job, "leads") == "u-1"
    middle = await inputs.slice(job, "leads", 999, 1002)
    assert middle == [(999, leads[999]), (1000, leads[1000]), (1001, leads[1001])]
    assert len(await inputs.slice(job, "leads", 2000, 9999)) == 500
    # A second put (the same job id added again) replaces the list.
    assert await inputs.put(job, "leads", "u-1", leads[:3], needed_for=DAY) == 3
    assert len(await inputs.slice(job, "leads", 0, 9999)) == 3
    await inputs.remove(job)
    assert await inputs.owner(job, "leads") is None
    assert await inputs.slice(job, "leads", 0, 10) == []


async def test_outcomes_are_upserted_counted_and_paged(
    sessionmaker: Sessions, unique_id: Callable[[str], str]
) -> None:
    results = EnrichmentStore(sessionmaker)
    job = unique_id("job")
    first = [
        LeadOutcome(position=0, lead_id="a", status="failed", error="timeout"),
        LeadOutcome(position=1, lead_id="b", status="enriched", result={"person_name": "B"}),
        LeadOutcome(position=2, lead_id="c", status="skipped", error="no email, phone or company"),
    ]
    await results.record(job, first)
    # The batch is redone after a retry: its rows are overwritten, not added.
    await results.record(
        job, [LeadOutcome(position=0, lead_id="a", status="enriched", result={"person_name": "A"})]
    )
    assert await results.counts(job) == {"enriched": 2, "failed": 0, "skipped": 1}
    page = await results.page(job, offset=1, limit=5)
    assert [(o.position, o.lead_id, o.status) for o in page] == [
        (1, "b", "enriched"),
        (2, "c", "skipped"),
    ]
    assert page[0].result == {"person_name": "B"}
