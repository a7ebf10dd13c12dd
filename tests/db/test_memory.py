"""Agent memory, on SQLite and PostgreSQL: the repository (put, get, touch, lists, expiry), the
chunked cleanup (exact counts, live rows untouched, progress committed with each chunk so a
resumed step misses nothing and counts nothing twice), and consolidation (deterministic
groups, counts summed, idempotent)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.memory import (
    MemoryCleaner,
    MemoryStore,
    PatternConsolidator,
    PatternRow,
    StepKey,
    group_near_duplicates,
    similarity,
    tokens,
)
from db.models import AgentMemory, AgentPattern

Sessions = async_sessionmaker[AsyncSession]
Ids = Callable[[str], str]


async def test_the_repository_puts_gets_touches_and_lists(sessionmaker: Sessions, unique_id: Ids):
    store = MemoryStore(sessionmaker)
    user, session_id, agent = unique_id("u"), unique_id("s"), unique_id("a")
    key: dict[str, Any] = {"user_id": user, "session_id": session_id, "agent_id": agent}
    await store.put(**key, key="goal", value={"text": "book a demo"})
    await store.put(**key, key="goal", value={"text": "book two demos"})  # replaces
    await store.put(**key, key="gone", value=1, ttl=timedelta(seconds=-1))
    entry = await store.get(**key, key="goal")
    assert entry is not None and entry.value == {"text": "book two demos"}
    assert await store.get(**key, key="gone") is None  # expired reads as absent
    assert await store.touch(**key, key="goal") and not await store.touch(**key, key="nope")
    assert [e.key for e in await store.list_by_session(session_id)] == ["goal"]
    assert [e.key for e in await store.list_by_agent(agent)] == ["goal"]


async def seed(sessionmaker: Sessions, n: int, tag: str, expired_every: int) -> int:
    """``n`` entries, every ``expired_every``-th one expired; the number expired."""
    now = utcnow()
    rows = [
        {
            "user_id": tag,
            "session_id": f"{tag}-s{i % 7}",
            "agent_id": f"{tag}-a",
            "key": f"k{i}",
            "value": {"i": i},
            "created_at": now,
            "last_accessed_at": now,
            "expires_at": (now - timedelta(hours=1))
            if i % expired_every == 0
            else (now + timedelta(days=1) if i % 2 else None),
        }
        for i in range(n)
    ]
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(AgentMemory), rows)
    return len(range(0, n, expired_every))


async def remaining(sessionmaker: Sessions, tag: str) -> list[int]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(AgentMemory.value).where(AgentMemory.user_id == tag))
        return sorted(value["i"] for value in rows.all())


async def test_cleanup_deletes_exactly_the_expired_in_bounded_chunks(
    sessionmaker: Sessions, unique_id: Ids
):
    tag = unique_id("t")
    expired = await seed(sessionmaker, 2500, tag, expired_every=3)
    cleaner = MemoryCleaner(sessionmaker)
    key = StepKey(unique_id("job"), "run-1", "expired")
    progress = await cleaner.progress(key)
    steps = 0
    while not progress.done:
        progress = await cleaner.delete_expired(key, cutoff=utcnow(), chunk=1000)
        steps += 1
    # Other tests' rows share the table: at least 3 chunks for ours, exact count of ours.
    assert steps >= 3 and progress.chunks == steps
    left = await remaining(sessionmaker, tag)
    assert left == [i for i in range(2500) if i % 3 != 0]
    assert progress.deleted >= expired
    # Done is done: asking again deletes nothing and changes no count.
    again = await cleaner.delete_expired(key, cutoff=utcnow(), chunk=1000)
    assert (again.deleted, again.chunks, again.done) == (progress.deleted, progress.chunks, True)


async def test_a_resumed_step_starts_after_its_last_committed_chunk(
    sessionmaker: Sessions, unique_id: Ids
):
    tag = unique_id("t")
    await seed(sessionmaker, 1500, tag, expired_every=2)
    key = StepKey(unique_id("job"), "run-1", "expired")
    first = await MemoryCleaner(sessionmaker).delete_expired(key, cutoff=utcnow(), chunk=500)
    # A new worker (a fresh cleaner) resumes from the database, not from memory.
    resumed = MemoryCleaner(sessionmaker)
    assert (await resumed.progress(key)).after_id == first.after_id
    progress = first
    while not progress.done:
        progress = await resumed.delete_expired(key, cutoff=utcnow(), chunk=500)
    assert await remaining(sessionmaker, tag) == [i for i in range(1500) if i % 2]


async def test_low_performance_patterns_are_removed_by_rate_after_enough_uses(
    sessionmaker: Sessions, unique_id: Ids
):
    agent = unique_id("a")
    now = utcnow()
    cases = {  # (successes, uses) -> removed?
        (1, 10): True,  # 10 % after 10 uses
        (3, 10): False,  # exactly the minimum rate stays
        (0, 4): False,  # too few uses to judge
        (9, 10): False,
    }
    async with sessionmaker() as session, session.begin():
        for (successes, uses), _ in cases.items():
            session.add(
                AgentPattern(
                    agent_id=agent,
                    pattern=f"p {successes} {uses}",
                    success_count=successes,
                    failure_count=uses - successes,
                    usage_count=uses,
                    created_at=now,
                )
            )
    key = StepKey(unique_id("job"), "run-1", "low_performance")
    cleaner = MemoryCleaner(sessionmaker)
    progress = await cleaner.progress(key)
    while not progress.done:
        progress = await cleaner.delete_low_performers(
            key, min_success_rate=0.3, min_usage_count=5, chunk=1000
        )
    async with sessionmaker() as session:
        left = (
            await session.scalars(
                select(AgentPattern.pattern).where(AgentPattern.agent_id == agent)
            )
        ).all()
    assert sorted(left) == sorted(f"p {s} {u}" for (s, u), gone in cases.items() if not gone)


def test_similarity_is_token_set_jaccard_on_normalised_text():
    assert tokens("Ask for the BUDGET, then the timeline!") == frozenset(
        {"ask", "for", "the", "budget", "then", "timeline"}
    )
    assert similarity(tokens("a b c"), tokens("a b d")) == pytest.approx(0.5)
    assert similarity(tokens("Hello there"), tokens("hello, there.")) == 1.0


def test_groups_are_deterministic_and_greedy_by_usage():
    rows = [
        PatternRow(1, "ask about the budget first", 3),
        PatternRow(2, "ask about the budget first please", 10),
        PatternRow(3, "Ask about the budget, first!", 1),
        PatternRow(4, "send the pricing deck", 5),
        PatternRow(5, "send pricing deck", 2),
        PatternRow(6, "something else entirely", 7),
    ]
    assert group_near_duplicates(rows, 0.8) == [(2, [1, 3])]
    assert group_near_duplicates(rows, 0.6) == [(2, [1, 3]), (4, [5])]
    assert group_near_duplicates(list(reversed(rows)), 0.6) == [(2, [1, 3]), (4, [5])]


async def test_consolidation_sums_counts_points_merged_ones_and_is_idempotent(
    sessionmaker: Sessions, unique_id: Ids
):
    agent = unique_id("a")
    now = utcnow()
    patterns = [
        ("Ask about the budget first", 4, 1, 5),
        ("ask about the budget first!", 2, 2, 4),
        ("ASK ABOUT THE BUDGET FIRST", 1, 0, 1),
        ("send the pricing deck", 1, 1, 2),
    ]
    async with sessionmaker() as session, session.begin():
        for text, ok, bad, uses in patterns:
            session.add(
                AgentPattern(
                    agent_id=agent,
                    session_id="s-1",
                    pattern=text,
                    success_count=ok,
                    failure_count=bad,
                    usage_count=uses,
                    created_at=now,
                    last_used_at=now - timedelta(minutes=uses),
                )
            )
    consolidator = PatternConsolidator(sessionmaker)
    first = await consolidator.consolidate_agent(agent, session_id=None, threshold=0.8)
    assert (first.groups, first.merged) == (1, 2)
    again = await consolidator.consolidate_agent(agent, session_id=None, threshold=0.8)
    assert (again.groups, again.merged) == (0, 0)
    async with sessionmaker() as session:
        rows = (
            await session.scalars(
                select(AgentPattern).where(AgentPattern.agent_id == agent).order_by(AgentPattern.id)
            )
        ).all()
    canonical = rows[0]
    assert (canonical.success_count, canonical.failure_count, canonical.usage_count) == (7, 3, 10)
    assert canonical.consolidated_into is None and rows[3].consolidated_into is None
    assert rows[1].consolidated_into == rows[2].consolidated_into == canonical.id
    assert await consolidator.agents(agent_id=agent, session_id="s-1") == [agent]
    assert await consolidator.agents(agent_id=None, session_id=str(uuid.uuid4())) == []


async def test_merged_patterns_follow_their_canonical(sessionmaker: Sessions, unique_id: Ids):
    agent = unique_id("a")
    store = MemoryStore(sessionmaker)
    canonical = await store.add_pattern(agent_id=agent, pattern="offer a demo")
    merged = await store.add_pattern(agent_id=agent, pattern="offer a demo!")
    for _ in range(10):
        await store.record_use(canonical, success=False)
    consolidator = PatternConsolidator(sessionmaker)
    assert (await consolidator.consolidate_agent(agent, session_id=None, threshold=0.8)).merged == 1
    # A use of the merged pattern counts on the canonical one.
    await store.record_use(merged, success=True)
    async with sessionmaker() as session:
        row = await session.get(AgentPattern, canonical)
        assert row is not None and (row.usage_count, row.success_count) == (11, 1)
    # The low performer goes, and the pattern merged into it goes along (not counted alone).
    key = StepKey(unique_id("job"), "run-1", "low_performance")
    cleaner = MemoryCleaner(sessionmaker)
    progress = await cleaner.progress(key)
    while not progress.done:
        progress = await cleaner.delete_low_performers(
            key, min_success_rate=0.3, min_usage_count=5, chunk=1000
        )
    async with sessionmaker() as session:
        left = (
            await session.scalars(select(AgentPattern.id).where(AgentPattern.agent_id == agent))
        ).all()
    assert left == []
