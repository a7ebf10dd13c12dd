"""Agent memory as the platform's agents use it: entries (a JSON value per user, session, agent
and key, with an optional expiry) and learned patterns with their success counts.

``MemoryStore`` is the repository the rest of the platform calls. The maintenance jobs use
``MemoryCleaner`` (bounded, keyset-paginated deletes: each call scans at most ``chunk`` rows
by primary key and deletes the matching ones in one short transaction, so a table of millions
is cleaned with no long lock while other sessions read and write) and ``PatternConsolidator``
(near-duplicate patterns merged into one canonical pattern).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import AgentMemory, AgentPattern, CleanupProgress
from db.session import dialect_insert, rowcount


class MemoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: str
    session_id: str
    agent_id: str
    key: str
    value: Any
    created_at: datetime
    last_accessed_at: datetime
    expires_at: datetime | None


def _entry(row: AgentMemory) -> MemoryEntry:
    return MemoryEntry(
        user_id=row.user_id,
        session_id=row.session_id,
        agent_id=row.agent_id,
        key=row.key,
        value=row.value,
        created_at=row.created_at,
        last_accessed_at=row.last_accessed_at,
        expires_at=row.expires_at,
    )


class MemoryStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def put(
        self,
        *,
        user_id: str,
        session_id: str,
        agent_id: str,
        key: str,
        value: Any,
        ttl: timedelta | None = None,
    ) -> None:
        """Store ``value`` under the key (replacing it); ``ttl`` makes it expire."""
        now = utcnow()
        expires = now + ttl if ttl is not None else None
        async with self._sessionmaker() as session, session.begin():
            insert = dialect_insert(session, AgentMemory).values(
                user_id=user_id,
                session_id=session_id,
                agent_id=agent_id,
                key=key,
                value=value,
                created_at=now,
                last_accessed_at=now,
                expires_at=expires,
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["user_id", "session_id", "agent_id", "key"],
                    set_={"value": value, "last_accessed_at": now, "expires_at": expires},
                )
            )

    async def get(
        self, *, user_id: str, session_id: str, agent_id: str, key: str, touch: bool = True
    ) -> MemoryEntry | None:
        """The live entry (an expired one reads as absent); reading it counts as access."""
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            row = await session.scalar(
                select(AgentMemory).where(
                    AgentMemory.user_id == user_id,
                    AgentMemory.session_id == session_id,
                    AgentMemory.agent_id == agent_id,
                    AgentMemory.key == key,
                )
            )
            if row is None or (row.expires_at is not None and row.expires_at <= now):
                return None
            if touch:
                row.last_accessed_at = now
            return _entry(row)

    async def touch(self, *, user_id: str, session_id: str, agent_id: str, key: str) -> bool:
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(AgentMemory)
                .where(
                    AgentMemory.user_id == user_id,
                    AgentMemory.session_id == session_id,
                    AgentMemory.agent_id == agent_id,
                    AgentMemory.key == key,
                )
                .values(last_accessed_at=utcnow())
            )
            return rowcount(result) > 0

    async def list_by_session(self, session_id: str, *, limit: int = 100) -> list[MemoryEntry]:
        return await self._list(AgentMemory.session_id == session_id, limit)

    async def list_by_agent(self, agent_id: str, *, limit: int = 100) -> list[MemoryEntry]:
        return await self._list(AgentMemory.agent_id == agent_id, limit)

    async def _list(self, condition: Any, limit: int) -> list[MemoryEntry]:
        now = utcnow()
        live = (AgentMemory.expires_at.is_(None)) | (AgentMemory.expires_at > now)
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(AgentMemory).where(condition, live).order_by(AgentMemory.id).limit(limit)
            )
            return [_entry(row) for row in rows.all()]

    async def add_pattern(
        self, *, agent_id: str, pattern: str, session_id: str | None = None
    ) -> int:
        async with self._sessionmaker() as session, session.begin():
            row = AgentPattern(
                agent_id=agent_id,
                session_id=session_id,
                pattern=pattern,
                success_count=0,
                failure_count=0,
                usage_count=0,
                created_at=utcnow(),
            )
            session.add(row)
            await session.flush()
            return row.id

    async def record_use(self, pattern_id: int, *, success: bool) -> None:
        """Count a use of the pattern, on its canonical pattern when it was merged into one."""
        column = AgentPattern.success_count if success else AgentPattern.failure_count
        async with self._sessionmaker() as session, session.begin():
            merged_into = await session.scalar(
                select(AgentPattern.consolidated_into).where(AgentPattern.id == pattern_id)
            )
            target = merged_into if merged_into is not None else pattern_id
            await session.execute(
                update(AgentPattern)
                .where(AgentPattern.id == target)
                .values(
                    {
                        column: column + 1,
                        AgentPattern.usage_count: AgentPattern.usage_count + 1,
                        AgentPattern.last_used_at: utcnow(),
                    }
                )
            )


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a cleanup step got: the last id scanned, whether it reached the end, and what
    it deleted in how many chunks."""

    after_id: int = 0
    done: bool = False
    deleted: int = 0
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class StepKey:
    job_id: str
    run_id: str
    step: str


class MemoryCleaner:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def progress(self, key: StepKey) -> Progress:
        async with self._sessionmaker() as session:
            row = await session.get(CleanupProgress, (key.job_id, key.run_id, key.step))
            if row is None:
                return Progress()
            return Progress(row.after_id or 0, row.done, row.deleted, row.chunks)

    async def delete_expired(self, key: StepKey, *, cutoff: datetime, chunk: int) -> Progress:
        """Delete the entries that expired before ``cutoff`` among the next ``chunk`` ids."""
        return await self._chunk(key, AgentMemory, chunk, AgentMemory.expires_at < cutoff)

    async def delete_low_performers(
        self, key: StepKey, *, min_success_rate: float, min_usage_count: int, chunk: int
    ) -> Progress:
        """Delete patterns used at least ``min_usage_count`` times whose success rate
        (successes / uses) is below ``min_success_rate``, among the next ``chunk`` ids."""
        # Merged patterns are judged by their canonical one, and go with it (ON DELETE
        # CASCADE): they are not counted on their own.
        low = and_(
            AgentPattern.consolidated_into.is_(None),
            AgentPattern.usage_count >= max(min_usage_count, 1),
            AgentPattern.success_count < AgentPattern.usage_count * min_success_rate,
        )
        return await self._chunk(key, AgentPattern, chunk, low)

    async def _chunk(
        self,
        key: StepKey,
        model: type[AgentMemory] | type[AgentPattern],
        chunk: int,
        matches: Any,
    ) -> Progress:
        """One chunk and its progress, in one transaction: a chunk is counted exactly when
        its deletes are committed."""
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(
                CleanupProgress, (key.job_id, key.run_id, key.step), with_for_update=True
            )
            if row is None:
                row = CleanupProgress(
                    job_id=key.job_id,
                    run_id=key.run_id,
                    step=key.step,
                    after_id=0,
                    done=False,
                    deleted=0,
                    chunks=0,
                    updated_at=utcnow(),
                )
                session.add(row)
            if row.done:
                return Progress(row.after_id or 0, True, row.deleted, row.chunks)
            after = row.after_id or 0
            upto = await session.scalar(_nth_id(model, after, chunk))
            last = upto
            if upto is None:
                # Fewer than ``chunk`` ids remain: this is the last chunk.
                last = await session.scalar(select(func.max(model.id)).where(model.id > after))
            deleted = 0
            if last is not None:
                result = await session.execute(
                    delete(model).where(model.id > after, model.id <= last, matches)
                )
                deleted = rowcount(result)
            row.after_id = upto if upto is not None else (last or after)
            row.done = upto is None
            row.deleted += deleted
            row.chunks += 1
            row.updated_at = utcnow()
            return Progress(row.after_id or 0, row.done, row.deleted, row.chunks)


def _nth_id(model: type[AgentMemory] | type[AgentPattern], after_id: int, n: int) -> Select[Any]:
    """The ``n``-th id after ``after_id``, or no row when fewer remain (a primary-key range
    scan of at most ``n`` rows, no OFFSET over the table)."""
    ids = select(model.id).where(model.id > after_id).order_by(model.id).limit(n).subquery()
    return select(func.max(ids.c.id)).having(func.count() == n)


# -- consolidation ---------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> frozenset[str]:
    """The pattern's normalised words: lower case, letters and digits only."""
    return frozenset(_WORD.findall(text.lower()))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Token-set Jaccard: shared words over all words (1.0 for two empty patterns)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True, slots=True)
class PatternRow:
    id: int
    pattern: str
    usage_count: int


def group_near_duplicates(
    rows: Sequence[PatternRow], threshold: float
) -> list[tuple[int, list[int]]]:
    """Groups of (canonical id, merged ids), deterministically: the most used pattern (lowest
    id on a tie) takes every later one at least ``threshold`` similar to it, then the next
    unclaimed one does the same. Only groups with something to merge are returned."""
    ordered = sorted(rows, key=lambda r: (-r.usage_count, r.id))
    words = {r.id: tokens(r.pattern) for r in ordered}
    claimed: set[int] = set()
    groups: list[tuple[int, list[int]]] = []
    for i, canonical in enumerate(ordered):
        if canonical.id in claimed:
            continue
        merged = [
            other.id
            for other in ordered[i + 1 :]
            if other.id not in claimed
            and similarity(words[canonical.id], words[other.id]) >= threshold
        ]
        claimed.add(canonical.id)
        claimed.update(merged)
        if merged:
            groups.append((canonical.id, merged))
    return groups


class ConsolidationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    groups: int
    merged: int


class PatternConsolidator:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def agents(self, *, agent_id: str | None, session_id: str | None) -> list[str]:
        """The agents whose patterns are in scope, in order."""
        query = select(AgentPattern.agent_id).distinct().order_by(AgentPattern.agent_id)
        if agent_id is not None:
            query = query.where(AgentPattern.agent_id == agent_id)
        if session_id is not None:
            query = query.where(AgentPattern.session_id == session_id)
        async with self._sessionmaker() as session:
            return list((await session.scalars(query)).all())

    async def consolidate_agent(
        self, agent_id: str, *, session_id: str | None, threshold: float
    ) -> ConsolidationResult:
        """Merge one agent's near-duplicate patterns (those not merged already), each group in
        one transaction: counts summed into the canonical one, the merged ones pointing at it.
        Running it again merges nothing more."""
        query = select(AgentPattern.id, AgentPattern.pattern, AgentPattern.usage_count).where(
            AgentPattern.agent_id == agent_id, AgentPattern.consolidated_into.is_(None)
        )
        if session_id is not None:
            query = query.where(AgentPattern.session_id == session_id)
        async with self._sessionmaker() as session:
            rows = [PatternRow(*row) for row in (await session.execute(query)).all()]
        merged = groups = 0
        for canonical, others in group_near_duplicates(rows, threshold):
            # A group another run merged meanwhile merges nothing here and is not counted.
            done = await self._merge(canonical, others)
            merged += done
            groups += 1 if done else 0
        return ConsolidationResult(groups=groups, merged=merged)

    async def _merge(self, canonical: int, others: list[int]) -> int:
        async with self._sessionmaker() as session, session.begin():
            # The canonical first, locked: one that was merged or deleted meanwhile (another
            # run) takes nothing.
            row = await session.get(AgentPattern, canonical, with_for_update=True)
            if row is None or row.consolidated_into is not None:
                return 0
            # Only patterns still unmerged, and their counts as this statement changed them:
            # a concurrent run's UPDATE waits for this one and then matches nothing.
            marked = await session.execute(
                update(AgentPattern)
                .where(AgentPattern.id.in_(others), AgentPattern.consolidated_into.is_(None))
                .values(consolidated_into=canonical)
                .returning(
                    AgentPattern.success_count,
                    AgentPattern.failure_count,
                    AgentPattern.usage_count,
                    AgentPattern.last_used_at,
                )
            )
            taken = marked.all()
            if not taken:
                return 0
            row.success_count += sum(t[0] for t in taken)
            row.failure_count += sum(t[1] for t in taken)
            row.usage_count += sum(t[2] for t in taken)
            used = [t[3] for t in taken if t[3] is not None]
            if used and (row.last_used_at is None or max(used) > row.last_used_at):
                row.last_used_at = max(used)
            return len(taken)
