"""Voice calls: a call's record and its campaign's statistics (US-004, FR-056)."""

from __future__ import annotations

from typing import Any

from client.base import QueueBase
from db.voice import CallStore, CampaignStats

# The fields of a call a producer may read (never the phone number).
_CALL_FIELDS = (
    "call_id",
    "user_id",
    "job_id",
    "campaign_id",
    "assistant_id",
    "attempt",
    "vapi_call_id",
    "status",
    "outcome",
    "ended_reason",
    "transcript",
    "recording_url",
    "failure_reason",
    "created_at",
    "started_at",
    "ended_at",
)


class Calls(QueueBase):
    def _calls(self) -> CallStore:
        if self.calls is None:
            raise RuntimeError("this JobQueue has no database for voice calls")
        return self.calls

    async def get_campaign_stats(
        self, campaign_id: str, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """The campaign's call counts, total duration (seconds) and total cost (USD); all
        zero for a campaign with no finished call yet. Campaigns are the user's: with
        ``user_id``, only that user's calls count; without (operators), every user's do."""
        stats = await self._calls().campaign_stats(campaign_id, user_id=user_id)
        if stats is None:
            stats = CampaignStats.empty(campaign_id, user_id or "")
        return stats.model_dump(exclude={"user_id"})

    async def get_call(self, call_id: str, *, user_id: str | None = None) -> dict[str, Any] | None:
        """A call's status, outcome, transcript, recording URL, cost and times, or None."""
        row = await self._calls().get(call_id, user_id=user_id)
        if row is None:
            return None
        call = {name: getattr(row, name) for name in _CALL_FIELDS}
        call["cost"] = row.cost_micros / 1_000_000 if row.cost_micros is not None else None
        call["duration_seconds"] = row.duration_ms / 1000 if row.duration_ms is not None else None
        return call
