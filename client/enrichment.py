"""Lead enrichment: paging through a job's per-lead outcomes (US-005)."""

from __future__ import annotations

from typing import Any

from client.base import QueueBase
from core.errors import InvalidArguments, JobNotFound

MAX_PAGE = 1000


class Enrichment(QueueBase):
    async def get_enrichment_results(
        self,
        job_id: str,
        *,
        offset: int = 0,
        limit: int = 100,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The job's per-lead outcomes in lead order from position ``offset``: each has
        ``position``, ``lead_id``, ``status`` (enriched, failed or skipped), ``result`` (the
        person and company found) and ``error``. With ``user_id``, another user's job is not
        found (JobNotFound)."""
        problems = {}
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            problems["offset"] = "must be an integer >= 0"
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            problems["limit"] = f"must be an integer from 1 to {MAX_PAGE}"
        if problems:
            raise InvalidArguments("get_enrichment_results", problems)
        if self.inputs is None or self.enrichment is None:
            raise RuntimeError("this JobQueue has no database for lead enrichment")
        owner = await self.inputs.owner(job_id, "leads")
        if owner is None or (user_id is not None and owner != user_id):
            raise JobNotFound(job_id)
        page = await self.enrichment.page(job_id, offset=offset, limit=limit)
        return [outcome.model_dump() for outcome in page]
