"""Job-id deduplication keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.dedup import JobKeyStore
from db.models import JobDedupKey

HOUR = timedelta(hours=1)


@pytest.fixture
def keys(sessionmaker: async_sessionmaker[AsyncSession]) -> JobKeyStore:
    return JobKeyStore(sessionmaker)


async def _existing_ids(sessionmaker: async_sessionmaker[AsyncSession], ids: list[str]) -> set[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(JobDedupKey.job_id).where(JobDedupKey.job_id.in_(ids)))
        return set(rows)


@pytest.mark.asyncio
async def test_claim_then_duplicate(keys: JobKeyStore, unique_id: Callable[[str], str]) -> None:
    job_id = unique_id("job")
    first = await keys.claim(job_id, "email", "email_sync", "user-1", HOUR)
    assert first.claimed
    assert first.queue is None

    second = await keys.claim(job_id, "webhooks", "webhook_delivery", "user-2", HOUR)
    assert not second.claimed
    assert (second.queue, second.job_type) == ("email", "email_sync")
    assert second.created_at is not None and second.expires_at is not None
    assert second.created_at.utcoffset() == timedelta(0)
    assert second.expires_at - second.created_at == HOUR


@pytest.mark.asyncio
async def test_expired_key_is_replaced(keys: JobKeyStore, unique_id: Callable[[str], str]) -> None:
    job_id = unique_id("job")
    # A zero window expires at once: the next claim takes the key over.
    assert (await keys.claim(job_id, "old", "email_sync", None, timedelta(0))).claimed
    assert (await keys.claim(job_id, "new", "seo_audit", "user-9", HOUR)).claimed

    again = await keys.claim(job_id, "third", "seo_audit", None, HOUR)
    assert not again.claimed
    assert (again.queue, again.job_type) == ("new", "seo_audit")


@pytest.mark.asyncio
async def test_release_frees_the_id(keys: JobKeyStore, unique_id: Callable[[str], str]) -> None:
    job_id = unique_id("job")
    assert (await keys.claim(job_id, "q", "t", None, HOUR)).claimed
    await keys.release(job_id)
    assert (await keys.claim(job_id, "q2", "t", None, HOUR)).claimed
    await keys.release(unique_id("never-claimed"))  # releasing nothing is fine


@pytest.mark.asyncio
async def test_concurrent_claims_have_one_winner(
    keys: JobKeyStore, unique_id: Callable[[str], str]
) -> None:
    job_id = unique_id("job")
    results = await asyncio.gather(
        *(keys.claim(job_id, f"q{i}", "email_sync", None, HOUR) for i in range(20))
    )
    winners = [i for i, result in enumerate(results) if result.claimed]
    assert len(winners) == 1
    assert {r.queue for r in results if not r.claimed} == {f"q{winners[0]}"}


@pytest.mark.asyncio
async def test_concurrent_takeovers_of_an_expired_key_have_one_winner(
    keys: JobKeyStore, unique_id: Callable[[str], str]
) -> None:
    job_id = unique_id("job")
    assert (await keys.claim(job_id, "old", "email_sync", None, timedelta(0))).claimed
    results = await asyncio.gather(
        *(keys.claim(job_id, f"q{i}", "email_sync", None, HOUR) for i in range(20))
    )
    assert sum(result.claimed for result in results) == 1


@pytest.mark.asyncio
async def test_purge_expired(
    keys: JobKeyStore,
    sessionmaker: async_sessionmaker[AsyncSession],
    unique_id: Callable[[str], str],
) -> None:
    expired = [unique_id("expired") for _ in range(3)]
    live = unique_id("live")
    for job_id in expired:
        assert (await keys.claim(job_id, "q", "t", None, timedelta(0))).claimed
    assert (await keys.claim(live, "q", "t", None, HOUR)).claimed

    assert await keys.purge_expired(limit=1) == 1
    # Other tests share the PostgreSQL database, so there may be more expired keys than ours.
    assert await keys.purge_expired() >= 2
    assert await _existing_ids(sessionmaker, [*expired, live]) == {live}
    assert await keys.purge_expired() == 0
