"""Voice calls, campaign statistics and slot pools, on SQLite and PostgreSQL: a call is counted
once however often its ending is written, sums are exact, a placement that may have happened
is never re-dialled, and a pool never hands out more slots than it has, even to racing
workers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import TokenCipher
from db.base import utcnow
from db.models import ConcurrencySlot, ConcurrencyWaiter
from db.slots import STALE_WAITER, SlotPool
from db.voice import CallOutcomeRecord, CallRef, CallStore

Sessions = async_sessionmaker[AsyncSession]
Ids = Callable[[str], str]
CIPHER = TokenCipher(os.urandom(32))
NUMBER = "+14155550123"


def ref(call_id: str, user: str = "u-1", job: str | None = None) -> CallRef:
    return CallRef(user, call_id, job or f"job-{call_id}")


async def dial(store: CallStore, call: CallRef, *, campaign: str | None, attempt: int = 1) -> str:
    found = await store.begin_dial(
        call, campaign_id=campaign, assistant_id="asst-1", phone_number=NUMBER, attempt=attempt
    )
    return found.state


async def test_the_number_is_stored_encrypted_and_read_back(
    sessionmaker: Sessions, unique_id: Ids
) -> None:
    store = CallStore(sessionmaker, CIPHER)
    call = ref(unique_id("call"))
    assert await dial(store, call, campaign=None) == "new"
    row = await store.get(call.call_id, user_id=call.user_id)
    assert row is not None and row.status == "dialing"
    assert NUMBER not in row.phone_number_ciphertext
    assert await store.phone_number(call) == NUMBER


async def test_a_placement_is_never_repeated(sessionmaker: Sessions, unique_id: Ids) -> None:
    store = CallStore(sessionmaker, CIPHER)
    call = ref(unique_id("call"))
    assert await dial(store, call, campaign=None) == "new"
    # The same attempt again, with no Vapi id recorded: the request may have gone out.
    assert await dial(store, call, campaign=None) == "unknown"
    await store.dial_failed(call, 1)  # the request was refused: no call exists
    assert await dial(store, call, campaign=None) == "new"
    await store.placed(call, 1, unique_id("vapi"), "queued")
    again = await store.begin_dial(
        call, campaign_id=None, assistant_id="a", phone_number=NUMBER, attempt=1
    )
    assert again.state == "placed" and again.vapi_call_id is not None
    # The job's next attempt dials a new call.
    assert await dial(store, call, campaign=None, attempt=2) == "new"


async def test_a_call_id_belongs_to_one_job_and_one_user(
    sessionmaker: Sessions, unique_id: Ids
) -> None:
    store = CallStore(sessionmaker, CIPHER)
    call_id = unique_id("call")
    first = ref(call_id)
    assert await dial(store, first, campaign="c") == "new"
    # A second job with the same call id neither dials nor touches the first job's row.
    second = ref(call_id, job="job-again")
    assert await dial(store, second, campaign="c", attempt=2) == "taken"
    assert await store.finish(second, CallOutcomeRecord(outcome="failed")) is False
    # Another user's call of the same id is a call of its own.
    assert await dial(store, ref(call_id, user="u-2"), campaign="c") == "new"
    # Once counted, the call is not made again, even by its own job (a retry by hand).
    assert await store.finish(first, CallOutcomeRecord(outcome="busy")) is True
    assert await dial(store, first, campaign="c", attempt=3) == "taken"
    mine = await store.campaign_stats("c", user_id="u-1")
    assert mine is not None and (mine.calls_made, mine.busy) == (1, 1)
    assert await store.campaign_stats("c", user_id="u-2") is None


async def test_a_call_is_counted_once_with_exact_sums(
    sessionmaker: Sessions, unique_id: Ids
) -> None:
    store = CallStore(sessionmaker, CIPHER)
    campaign = unique_id("campaign")
    endings = [
        ("completed", 61_250, 123_457),
        ("completed", 30_000, 100_000),
        ("no_answer", None, None),
        ("busy", None, 0),
        ("voicemail", 12_000, 10_001),
        ("failed", None, None),
        ("timeout", 600_000, 999_999),
    ]
    for n, (outcome, duration_ms, cost_micros) in enumerate(endings):
        call = ref(unique_id(f"call{n}"))
        await dial(store, call, campaign=campaign)
        record = CallOutcomeRecord(
            outcome=outcome, duration_ms=duration_ms, cost_micros=cost_micros
        )
        assert await store.finish(call, record) is True
        # A retried finish (the activity ran twice) changes nothing.
        assert await store.finish(call, record.model_copy(update={"outcome": "failed"})) is False
    stats = await store.campaign_stats(campaign)
    assert stats is not None
    assert (stats.calls_made, stats.calls_successful, stats.calls_failed) == (7, 2, 2)
    assert (stats.no_answer, stats.busy, stats.voicemail) == (1, 1, 1)
    assert stats.total_duration_seconds == 703.25
    assert stats.total_cost == 1.233457


async def test_concurrent_finishes_count_once(sessionmaker: Sessions, unique_id: Ids) -> None:
    store = CallStore(sessionmaker, CIPHER)
    campaign, call = unique_id("campaign"), ref(unique_id("call"))
    await dial(store, call, campaign=campaign)
    record = CallOutcomeRecord(outcome="completed", duration_ms=1000)
    counted = await asyncio.gather(*(store.finish(call, record) for _ in range(5)))
    assert sorted(counted) == [False, False, False, False, True]
    stats = await store.campaign_stats(campaign)
    assert stats is not None and stats.calls_made == 1


async def test_a_pool_hands_out_at_most_its_slots(sessionmaker: Sessions, unique_id: Ids) -> None:
    pool = SlotPool(sessionmaker, unique_id("pool"), limit=3, lease=timedelta(minutes=5))
    holders = [unique_id("h") for _ in range(8)]
    # Separate pools share the table and race like separate workers.
    racers = [SlotPool(sessionmaker, pool.pool, limit=3, lease=pool.lease) for _ in holders]
    got = await asyncio.gather(*(r.acquire(h) for r, h in zip(racers, holders, strict=True)))
    assert sum(got) == 3 and await pool.in_use() == 3
    winners = [h for h, ok in zip(holders, got, strict=True) if ok]
    # A holder that asks again keeps its slot (a retried activity takes no second one).
    assert await pool.acquire(winners[0]) is True and await pool.in_use() == 3
    await pool.release(winners[0])
    loser = next(h for h, ok in zip(holders, got, strict=True) if not ok)
    assert await pool.acquire(loser) is True
    assert await pool.acquire(winners[0]) is False


async def test_an_expired_lease_frees_its_slot(sessionmaker: Sessions, unique_id: Ids) -> None:
    pool = SlotPool(sessionmaker, unique_id("pool"), limit=1, lease=timedelta(minutes=5))
    assert await pool.acquire("gone") is True
    assert await pool.acquire("next") is False
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ConcurrencySlot)
            .where(ConcurrencySlot.pool == pool.pool)
            .values(held_until=utcnow() - timedelta(seconds=1))
        )
    assert await pool.acquire("next") is True


async def test_a_live_status_never_overwrites_the_ending(
    sessionmaker: Sessions, unique_id: Ids
) -> None:
    store = CallStore(sessionmaker, CIPHER)
    call, vapi_id = ref(unique_id("call")), unique_id("vapi")
    await dial(store, call, campaign=None)
    await store.placed(call, 1, vapi_id, "queued")
    assert await store.set_status(vapi_id, "ringing") == call.job_id
    assert await store.set_status(vapi_id, "scheduled") == call.job_id  # not kept, no error
    await store.finish(call, CallOutcomeRecord(vapi_call_id=vapi_id, outcome="busy"))
    await store.set_status(vapi_id, "in-progress")  # a late message
    row = await store.get(call.call_id)
    assert row is not None and (row.status, row.outcome) == ("ended", "busy")
    assert await store.set_status(unique_id("vapi"), "ringing") is None


async def test_waiters_are_woken_oldest_first_and_stale_ones_dropped(
    sessionmaker: Sessions, unique_id: Ids
) -> None:
    pool = SlotPool(sessionmaker, unique_id("pool"), limit=1, lease=timedelta(minutes=5))
    assert await pool.acquire("job-holder", wait=True) is True
    for name in ("job-first", "job-second", "job-third"):
        assert await pool.acquire(name, wait=True) is False
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ConcurrencyWaiter)
            .where(ConcurrencyWaiter.pool == pool.pool, ConcurrencyWaiter.holder == "job-first")
            .values(asked_at=utcnow() - STALE_WAITER - timedelta(seconds=1))
        )
    # "first" stopped asking (its job ended): it is dropped, the next two are woken.
    assert await pool.release("job-holder", wake=2) == ["job-second", "job-third"]
    assert await pool.acquire("job-second", wait=True) is True
    assert await pool.release("job-second", wake=2) == ["job-third"]
