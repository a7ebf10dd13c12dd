"""Queue statistics: waiting, active, completed, failed and delayed counts, and paused.

Served from the Redis adapter (O(1) reads, no scans); when Redis cannot answer, from
Temporal visibility (slower and coarser), never an exception to the caller.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from temporalio.service import RPCError

from client.base import QueueBase
from core import temporal
from core.errors import InvalidArguments
from core.logging import get_logger
from core.queues import QueueName

log = get_logger("jobs.client")


class Stats(QueueBase):
    async def get_queue_stats(self, queue_name: str) -> dict[str, Any]:
        queue = self._queue(queue_name)
        return (await self._stats([queue.value]))[queue.value]

    async def get_all_queue_stats(self) -> dict[str, dict[str, Any]]:
        return await self._stats([q.value for q in QueueName])

    async def get_queue_history(
        self, queue_name: str, minutes: int = 24 * 60
    ) -> list[dict[str, int]]:
        """The queue's last ``minutes`` (at most 24 hours) minute by minute, oldest first:
        ``{"minute" (epoch ms), "completed", "failed", "waiting"}`` (US-009)."""
        queue = self._queue(queue_name)
        if not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            raise InvalidArguments("get_queue_history", {"minutes": "must be 1 to 1440"})
        if self.tracker is None:
            return []
        return await self.tracker.history(queue.value, minutes)

    async def _stats(self, queues: list[str]) -> dict[str, dict[str, Any]]:
        if self.tracker is not None and self.tracker.reachable:
            try:
                return await self.tracker.stats(queues)
            except (RedisError, OSError) as exc:
                self.tracker.mark_down(exc, "stats")
        answers = await asyncio.gather(*(self._stats_from_temporal(q) for q in queues))
        return dict(zip(queues, answers, strict=True))

    async def _stats_from_temporal(self, queue: str) -> dict[str, Any]:
        """Counts from Temporal visibility when Redis cannot answer (slower, coarser)."""
        spec = self.catalog[QueueName(queue)]
        since_done = datetime.now(UTC) - spec.keep_completed_for
        since_failed = datetime.now(UTC) - spec.keep_failed_for
        base = f'TaskQueue="{queue}"'
        try:
            running, completed, failed, rate = await asyncio.wait_for(
                asyncio.gather(
                    self.client.count_workflows(f'{base} AND ExecutionStatus="Running"'),
                    self.client.count_workflows(
                        f'{base} AND ExecutionStatus="Completed" '
                        f'AND CloseTime > "{since_done.isoformat()}"'
                    ),
                    self.client.count_workflows(
                        f'{base} AND ExecutionStatus IN ("Failed","Canceled","Terminated",'
                        f'"TimedOut") AND CloseTime > "{since_failed.isoformat()}"'
                    ),
                    temporal.get_queue_rate(self.client, self.settings.temporal_namespace, queue),
                ),
                timeout=5,
            )
        except (RPCError, TimeoutError, OSError) as exc:
            log.warning("stats.unavailable", queue=queue, error=type(exc).__name__)
            return {
                "waiting": 0,
                "active": 0,
                "completed": 0,
                "failed": 0,
                "delayed": 0,
                "paused": False,
                "available": False,
            }
        return {
            # Visibility cannot tell waiting from active jobs without a describe per job.
            "waiting": running.count,
            "active": 0,
            "completed": min(completed.count, spec.keep_completed_count),
            "failed": failed.count,
            "delayed": 0,
            "paused": rate.paused,
            "available": True,
        }
