"""Workflow side of a concurrency limit held in the database (``db.slots.SlotPool``): a job's
place in line for a slot.

The job asks for a slot in an activity; while none is free it waits here until the job that
gives one back wakes it (the ``slot_freed`` signal, handed to ``woken``) or a re-check timer
fires, the waits growing along ``rechecks`` (the last repeats). After ``asks_per_run`` asks
the job continues as new, so a long wait never grows one history without bound; the slot
pool keeps its place in line by job id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow


def raise_if_cancelled() -> None:
    """A cancel that arrived while an activity ran is taken up here: the SDK hands the
    activity's result back when it finished anyway, and the cancel would otherwise be lost."""
    if workflow.cancellation_reason() is not None:
        raise asyncio.CancelledError()


class SlotLine:
    def __init__(self, rechecks: Sequence[timedelta], asks_per_run: int) -> None:
        self._rechecks = tuple(rechecks)
        self._asks_per_run = asks_per_run
        self._asks = 0
        self._freed = False

    def woken(self) -> None:
        """From the job's ``slot_freed`` signal handler."""
        self._freed = True

    def asking(self) -> None:
        """Before each ask: a wake-up that came earlier is used up by it."""
        self._freed = False

    async def wait(self, continued_input: Callable[[], Any]) -> None:
        """Wait to ask again; continue as new with ``continued_input()`` once the run asked
        ``asks_per_run`` times."""
        if self._asks >= self._asks_per_run:
            workflow.continue_as_new(continued_input())
        recheck = self._rechecks[min(self._asks, len(self._rechecks) - 1)]
        self._asks += 1
        try:
            await workflow.wait_condition(lambda: self._freed, timeout=recheck)
        except TimeoutError:
            pass
