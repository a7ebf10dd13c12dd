"""The bare temporalio baseline: one plain workflow, one activity making the same signed POST.

Nothing of the product is used here: default data converter (JSON, no encryption), no
interceptors, no search attributes, no priority or fairness keys, no database, no Redis. The
activity signs the body the Standard Webhooks way (HMAC-SHA256 over ``id.timestamp.body``)
and sends it with a shared httpx client, like the product's sender does.

The activity also puts ``time.time()`` at its start (ms) into an ``x-started-at`` header, so
the benchmark can read pick-up latency from the receiver's recorded requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import httpx

BARE_WORKFLOW = "bare-webhook"
BARE_ACTIVITY = "bare_deliver"


@dataclass
class BareJob:
    """The workflow's input: what a producer gives."""

    user_id: str
    url: str
    event_type: str
    secret: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class BareDelivery:
    """The activity's input: the job plus the message id and creation time."""

    msg_id: str
    created_at: str
    job: BareJob


def _sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class BareActivities:
    """Holds the worker's shared httpx client."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @activity.defn(name=BARE_ACTIVITY)
    async def deliver(self, delivery: BareDelivery) -> int:
        started_ms = int(time.time() * 1000)
        job = delivery.job
        body = json.dumps(
            {"type": job.event_type, "timestamp": delivery.created_at, "data": job.payload},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        timestamp = int(time.time())
        response = await self._http.post(
            job.url,
            content=body,
            headers={
                "content-type": "application/json",
                "webhook-id": delivery.msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": _sign(job.secret, delivery.msg_id, timestamp, body),
                "x-started-at": str(started_ms),
            },
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"HTTP {response.status_code}")
        return response.status_code


@workflow.defn(name=BARE_WORKFLOW)
class BareWebhookWorkflow:
    @workflow.run
    async def run(self, job: BareJob) -> int:
        info = workflow.info()
        return await workflow.execute_activity_method(
            BareActivities.deliver,
            BareDelivery(
                msg_id=info.workflow_id,
                created_at=info.start_time.astimezone(UTC).isoformat(),
                job=job,
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
