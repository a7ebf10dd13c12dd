"""Concurrency limits that hold across every worker process: a pool of leased slots.

A pool of ``limit`` slots lives in ``concurrency_slots``. ``acquire(holder)`` takes a free slot
in one conditional UPDATE, so two workers racing for the last slot cannot both get it (in
PostgreSQL the loser's UPDATE re-checks the row after the winner commits and matches
nothing; SQLite runs one writer at a time). A slot is free when it has no holder or its lease
ended, so a holder that vanished (a terminated job) frees its slot when the lease runs out.
Acquiring again with the same holder keeps its slot and renews the lease, so a retried
activity never takes a second one.

Holders are job ids. A holder that found no slot can wait in line; ``release`` answers the
oldest holders in line, so the caller can wake them at once instead of having them poll. A
waiter that stopped asking for ``STALE_WAITER`` (its job ended) is dropped.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import ConcurrencySlot, ConcurrencyWaiter
from db.session import dialect_insert, rowcount

# A waiter asks again at least this often while its job runs (workflows re-check on a timer
# of at most two minutes).
STALE_WAITER = timedelta(minutes=5)


class SlotPool:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        pool: str,
        *,
        limit: int,
        lease: timedelta,
    ) -> None:
        if limit < 1:
            raise ValueError("a slot pool needs at least one slot")
        self._sessionmaker = sessionmaker
        self.pool = pool
        self.limit = limit
        self.lease = lease

    async def acquire(self, holder: str, *, wait: bool = False) -> bool:
        """Take a slot for ``holder`` (or renew the one it holds); False when all are taken,
        and then, with ``wait``, ``holder`` waits in line to be woken."""
        async with self._sessionmaker() as session, session.begin():
            taken = await self._take(session, holder)
            if taken:
                await session.execute(
                    delete(ConcurrencyWaiter).where(
                        ConcurrencyWaiter.pool == self.pool, ConcurrencyWaiter.holder == holder
                    )
                )
            elif wait:
                now = utcnow()
                await session.execute(
                    dialect_insert(session, ConcurrencyWaiter)
                    .values(pool=self.pool, holder=holder, since=now, asked_at=now)
                    .on_conflict_do_update(
                        index_elements=["pool", "holder"], set_={"asked_at": now}
                    )
                )
            return taken

    async def _take(self, session: AsyncSession, holder: str) -> bool:
        now = utcnow()
        held = await session.execute(
            update(ConcurrencySlot)
            .where(
                ConcurrencySlot.pool == self.pool,
                ConcurrencySlot.slot <= self.limit,
                ConcurrencySlot.holder == holder,
            )
            .values(held_until=now + self.lease)
        )
        if rowcount(held):
            return True
        await self._ensure_slots(session)
        free = or_(ConcurrencySlot.holder.is_(None), ConcurrencySlot.held_until < now)
        for _ in range(self.limit):
            candidate = await session.scalar(
                select(ConcurrencySlot.slot)
                .where(ConcurrencySlot.pool == self.pool, ConcurrencySlot.slot <= self.limit)
                .where(free)
                .order_by(ConcurrencySlot.slot)
                .limit(1)
            )
            if candidate is None:
                return False
            # The free condition is part of the UPDATE, so a slot taken meanwhile is
            # not taken twice: the statement matches nothing and the next one is tried.
            taken = await session.execute(
                update(ConcurrencySlot)
                .where(
                    and_(ConcurrencySlot.pool == self.pool, ConcurrencySlot.slot == candidate),
                    free,
                )
                .values(holder=holder, held_until=now + self.lease)
            )
            if rowcount(taken):
                return True
        return False

    async def release(self, holder: str, *, wake: int = 0) -> list[str]:
        """Give back ``holder``'s slot (nothing happens when it holds none) and leave the line;
        the ``wake`` oldest live holders in line, to wake."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(ConcurrencySlot)
                .where(ConcurrencySlot.pool == self.pool, ConcurrencySlot.holder == holder)
                .values(holder=None, held_until=None)
            )
            mine = and_(ConcurrencyWaiter.pool == self.pool, ConcurrencyWaiter.holder == holder)
            stale = and_(
                ConcurrencyWaiter.pool == self.pool,
                ConcurrencyWaiter.asked_at < utcnow() - STALE_WAITER,
            )
            await session.execute(delete(ConcurrencyWaiter).where(or_(mine, stale)))
            if wake <= 0:
                return []
            rows = await session.scalars(
                select(ConcurrencyWaiter.holder)
                .where(ConcurrencyWaiter.pool == self.pool)
                .order_by(ConcurrencyWaiter.since, ConcurrencyWaiter.holder)
                .limit(wake)
            )
            return list(rows.all())

    async def holders(self) -> list[str]:
        """Who holds a live lease now."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(ConcurrencySlot.holder).where(
                    ConcurrencySlot.pool == self.pool,
                    ConcurrencySlot.slot <= self.limit,
                    ConcurrencySlot.holder.is_not(None),
                    ConcurrencySlot.held_until >= utcnow(),
                )
            )
            return [holder for holder in rows.all() if holder is not None]

    async def in_use(self) -> int:
        """Slots held by a live lease now."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(ConcurrencySlot.slot).where(
                    ConcurrencySlot.pool == self.pool,
                    ConcurrencySlot.slot <= self.limit,
                    ConcurrencySlot.holder.is_not(None),
                    ConcurrencySlot.held_until >= utcnow(),
                )
            )
            return len(rows.all())

    async def _ensure_slots(self, session: AsyncSession) -> None:
        await session.execute(
            dialect_insert(session, ConcurrencySlot)
            .values([{"pool": self.pool, "slot": n} for n in range(1, self.limit + 1)])
            .on_conflict_do_nothing(index_elements=["pool", "slot"])
        )
