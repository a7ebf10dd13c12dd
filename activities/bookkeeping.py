"""Bookkeeping after an external side effect: it must never make the side effect happen again.

An activity that has POSTed a webhook (or placed a call, or created a draft) and then fails
to write the outcome to our database must not fail its attempt: Temporal would run it again,
and the side effect with it. ``record_after`` retries the write in place for a few seconds,
shielded from cancellation; if the database stays away it reports False, and the activity
hands the record on (in its result, its failure details or its heartbeat) for the workflow
to write with a database step (``workflows.policies.db_step``), which only retries the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from core.logging import get_logger

log = get_logger(__name__)

# Seconds between the in-place tries; the first try is immediate.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)


async def record_after(write: Callable[[], Awaitable[None]], *, what: str, job_id: str) -> bool:
    """Run ``write``; True once it succeeded, False (logged) if every try failed."""

    async def attempt() -> bool:
        last: BaseException | None = None
        for delay in (0.0, *RETRY_DELAYS_S):
            if delay:
                await asyncio.sleep(delay)
            try:
                await write()
            except (SQLAlchemyError, OSError) as exc:
                last = exc
                continue
            return True
        log.error(
            "bookkeeping.deferred",
            what=what,
            job_id=job_id,
            error=f"{type(last).__name__}: {last}"[:300],
        )
        return False

    # A cancel (job cancelled, worker stopping) must not lose the record of what happened.
    return await asyncio.shield(attempt())
