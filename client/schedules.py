"""Operators' view of the maintenance schedules (core/schedules.py): list, pause, unpause and
trigger them by name (``memory-cleanup``) or by id (``bj-memory-cleanup``)."""

from __future__ import annotations

from typing import Any

from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from client.base import QueueBase
from core.errors import JobNotFound
from core.schedules import SCHEDULE_PREFIX, declared_schedules


class Schedules(QueueBase):
    def _schedule(self, name: str) -> ScheduleHandle:
        schedule_id = name if name.startswith(SCHEDULE_PREFIX) else SCHEDULE_PREFIX + name
        return self.client.get_schedule_handle(schedule_id)

    async def list_schedules(self) -> list[dict[str, Any]]:
        """Each schedule of the system: name, cron (as declared here), paused, the workflow it
        starts, its next run times, its recent runs and how many runs it skipped."""
        # The server keeps cron expressions as calendars; the declarations say what they were.
        crons = {d.schedule_id: d.cron for d in declared_schedules()}
        out: list[dict[str, Any]] = []
        async for entry in await self.client.list_schedules():
            if not entry.id.startswith(SCHEDULE_PREFIX):
                continue
            description = await self.client.get_schedule_handle(entry.id).describe()
            schedule, info = description.schedule, description.info
            action = schedule.action
            out.append(
                {
                    "name": entry.id.removeprefix(SCHEDULE_PREFIX),
                    "id": entry.id,
                    "cron": crons.get(entry.id),
                    "paused": schedule.state.paused,
                    "workflow": (
                        action.workflow if isinstance(action, ScheduleActionStartWorkflow) else None
                    ),
                    "next_runs": list(info.next_action_times[:3]),
                    "recent_runs": [
                        {"job_id": a.action.workflow_id, "scheduled_at": a.scheduled_at}
                        for a in info.recent_actions
                        if isinstance(a.action, ScheduleActionExecutionStartWorkflow)
                    ],
                    "skipped_overlapping": info.num_actions_skipped_overlap,
                }
            )
        return sorted(out, key=lambda s: str(s["name"]))

    async def pause_schedule(self, name: str, note: str = "paused by an operator") -> None:
        await self._call(name, lambda h: h.pause(note=note))

    async def unpause_schedule(self, name: str, note: str = "unpaused by an operator") -> None:
        await self._call(name, lambda h: h.unpause(note=note))

    async def trigger_schedule(self, name: str) -> None:
        """Run it now; a run still going makes this one skip (the overlap policy)."""
        await self._call(name, lambda h: h.trigger())

    async def _call(self, name: str, operation: Any) -> None:
        try:
            await operation(self._schedule(name))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFound(f"schedule {name}") from None
            raise
