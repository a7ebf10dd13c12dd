"""Webhook dead letters (PRD 9.2): list them with their attempts, redeliver or discard them by
id or by filter, and enable an endpoint that was disabled after a 410 Gone."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from client.base import QueueBase
from client.enqueue import Enqueue
from core.errors import InvalidArguments, JobError
from core.logging import get_logger
from db.dead_letters import DeadFilter, DeadLetterStore
from db.secrets import SecretNotFound

log = get_logger("jobs.client")

MAX_PAGE = 500


class DeadLetters(QueueBase):
    def _dead_letters(self) -> DeadLetterStore:
        if self.dead_letters is None:
            raise RuntimeError("this JobQueue has no database for webhook dead letters")
        return self.dead_letters

    async def list_dead_webhooks(
        self,
        *,
        user_id: str | None = None,
        event_type: str | None = None,
        older_than: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """``{"items": [...], "next_cursor": ...}``: failed deliveries not redelivered or
        discarded, newest failure first, each with its attempts; pass ``next_cursor`` back
        for the next page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidArguments("list_dead_webhooks", {"limit": f"must be 1..{MAX_PAGE}"})
        try:
            letters, next_cursor = await self._dead_letters().list_dead(
                DeadFilter(user_id=user_id, event_type=event_type, older_than=older_than),
                limit=limit,
                cursor=cursor,
            )
        except ValueError as exc:
            raise InvalidArguments("list_dead_webhooks", {"cursor": str(exc)}) from None
        items = [
            {
                **letter.delivery.model_dump(exclude={"secret_id", "redelivered_as"}),
                "attempt_history": [a.model_dump() for a in letter.attempts],
            }
            for letter in letters
        ]
        return {"items": items, "next_cursor": next_cursor}

    async def redeliver_webhooks(
        self,
        ids: Sequence[str] | None = None,
        *,
        user_id: str | None = None,
        event_type: str | None = None,
        older_than: datetime | None = None,
    ) -> int:
        """A new delivery job for each dead letter given by id, or matching the filter; the
        count started. A dead letter is redelivered once however often this is called (it
        stops being dead when its new job is added)."""
        store = self._dead_letters()
        which = DeadFilter(
            ids=tuple(ids) if ids is not None else None,
            user_id=user_id,
            event_type=event_type,
            older_than=older_than,
        )
        if ids is None and user_id is None and event_type is None and older_than is None:
            raise InvalidArguments(
                "redeliver_webhooks", {"ids": "give ids or a filter (all dead letters at once?)"}
            )
        started = 0
        for delivery_id in await store.matching_ids(which):
            job_id = f"{delivery_id}.redelivery"
            # Redelivering a redelivery makes ids longer: keep them within the job-id rule.
            if len(job_id) > 200:
                job_id = f"redelivery-{hashlib.sha256(job_id.encode()).hexdigest()[:32]}"
            if not await store.claim_redelivery(delivery_id, job_id):
                continue
            try:
                started += await self._redeliver(delivery_id, job_id)
            except BaseException:
                await store.release_claim(delivery_id, job_id)
                raise
        return started

    async def _redeliver(self, delivery_id: str, job_id: str) -> int:
        store = self._dead_letters()
        delivery = await store.get(delivery_id)
        if delivery is None or delivery.secret_id is None or self.secrets is None:
            await store.release_claim(delivery_id, job_id)
            log.warning("webhook.redelivery_impossible", job_id=delivery_id, reason="no secret")
            return 0
        try:
            secret = await self.secrets.get(delivery.secret_id, user_id=delivery.user_id)
        except SecretNotFound:
            await store.release_claim(delivery_id, job_id)
            log.warning("webhook.redelivery_impossible", job_id=delivery_id, reason="secret gone")
            return 0
        # A redelivery is an ordinary new job (validated, its secret stored again by id); the
        # composed JobQueue is also an Enqueue.
        enqueue = cast(Enqueue, self)
        try:
            await enqueue.add_job(
                "webhooks",
                "webhook_delivery",
                {
                    "userId": delivery.user_id,
                    "url": delivery.url,
                    "eventType": delivery.event_type,
                    "payload": delivery.payload,
                    "secret": secret,
                },
                job_id=job_id,
            )
        except JobError:
            await store.release_claim(delivery_id, job_id)
            raise
        log.info("webhook.redelivered", job_id=delivery_id, redelivery=job_id)
        return 1

    async def discard_webhooks(
        self,
        ids: Sequence[str] | None = None,
        *,
        user_id: str | None = None,
        event_type: str | None = None,
        older_than: datetime | None = None,
    ) -> int:
        """Mark dead letters as dealt with without sending them; the count discarded."""
        store = self._dead_letters()
        if ids is None and user_id is None and event_type is None and older_than is None:
            raise InvalidArguments(
                "discard_webhooks", {"ids": "give ids or a filter (all dead letters at once?)"}
            )
        which = DeadFilter(
            ids=tuple(ids) if ids is not None else None,
            user_id=user_id,
            event_type=event_type,
            older_than=older_than,
        )
        return await store.discard(await store.matching_ids(which))

    async def enable_webhook_endpoint(self, url: str, *, user_id: str) -> bool:
        """Deliver to an endpoint again after it was disabled by a 410 Gone (workers notice
        within 10 s); False when it was not disabled."""
        return await self._dead_letters().enable_endpoint(user_id, url)
