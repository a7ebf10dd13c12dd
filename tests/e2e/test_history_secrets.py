"""No secret of any job in any workflow history: every payload of every event (inputs,
results, failures and their details, heartbeats, memos, search attributes) decoded with the
project's converter, then searched for every secret the jobs used."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from temporalio.api.common.v1 import Payload

from client.queue import JobQueue
from core.queues import QueueName
from core.temporal import data_converter
from db.models import EmailMessage
from db.session import create_engine
from emulators.server import Fault
from emulators.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.e2e.conftest import API_KEY, Providers
from tests.support import eventually, payloads_in, running_workers
from tracking.store import JobState

pytestmark = pytest.mark.integration


async def finished(queue: JobQueue, job_id: str) -> JobState:
    info = await eventually(
        lambda: queue.get_job(job_id),
        lambda i: i.state in (JobState.COMPLETED, JobState.FAILED),
        timeout=60,
    )
    return info.state


async def test_no_secret_in_any_decoded_history(
    providers: Providers, job_queue: JobQueue, receiver: WebhookReceiver
):
    settings = providers.settings
    codec = data_converter(settings).payload_codec
    assert codec is not None
    user = f"user-{uuid.uuid4().hex[:6]}"
    job_ids: list[str] = []

    # Webhooks: delivered, retried after a 503, rejected with a 410.
    def hook(path: str) -> dict[str, object]:
        return {
            "userId": user,
            "url": receiver.url(path),
            "eventType": "lead.created",
            "payload": {"lead": "L-1"},
            "secret": receiver.secret,
        }

    receiver.script("/retried", [ScriptedResponse(status=503)])
    receiver.script("/gone", [ScriptedResponse(status=410)])
    async with running_workers(settings, [QueueName.WEBHOOKS, QueueName.EMAIL]):
        for path in ("/ok", "/retried", "/gone"):
            job = await job_queue.add_job("webhooks", "webhook_delivery", hook(path))
            job_ids.append(job.id)

        # Mailboxes: an expired Gmail token (refreshed by the job) and an Outlook one, both
        # with important mail, synced with auto-drafts; and a draft asked for by hand.
        g_box = await providers.mailbox(
            job_queue, messages=1200, important_every=400, expires_in=-timedelta(days=1)
        )
        o_box = await providers.mailbox(job_queue, "outlook", messages=20, important_every=10)
        gmail, outlook = g_box.account_id, o_box.account_id
        # Slow pages (three of them), so the running sync's heartbeat can be read while its
        # activity is pending.
        providers.google.faults.add("messages.list", *[Fault(status=200, delay_s=1.0)] * 3)
        for box in (g_box, o_box):
            job = await job_queue.add_job(
                "email",
                "email_sync",
                {"userId": box.user, "accountId": box.account_id, "emailProvider": box.provider},
            )
            job_ids.append(job.id)
        manual = await job_queue.add_job(
            "email",
            "email_draft",
            {
                "userId": user,
                "threadId": "t-1",
                "context": "Can we meet?",
                "accountId": outlook,
                "replyToMessageId": "missing-message",
            },
        )
        job_ids.append(manual.id)

        heartbeats: list[Payload] = []

        async def sync_heartbeat() -> int:
            desc = await job_queue.client.get_workflow_handle(job_ids[3]).describe()
            for pending in desc.raw_description.pending_activities:
                heartbeats.extend(pending.heartbeat_details.payloads)
            return len(heartbeats)

        await eventually(sync_heartbeat, lambda n: n > 0, timeout=30, interval=0.05)
        for job_id in job_ids:
            await finished(job_queue, job_id)
        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                drafts = list(
                    (
                        await conn.execute(
                            sa.select(EmailMessage.draft_job_id).where(
                                EmailMessage.account_id.in_([gmail, outlook]),
                                EmailMessage.draft_job_id.is_not(None),
                            )
                        )
                    ).scalars()
                )
        finally:
            await engine.dispose()
        assert len(drafts) == 5  # 3 Gmail, 2 Outlook
        for draft in drafts:
            assert draft is not None
            await finished(job_queue, draft)
            job_ids.append(draft)

    assert job_queue.accounts is not None
    secrets = {
        receiver.secret,
        receiver.secret.removeprefix("whsec_"),
        base64.b64decode(receiver.secret.removeprefix("whsec_")).hex(),
        g_box.access,
        g_box.refresh,
        o_box.access,
        o_box.refresh,
        API_KEY,
        settings.payload_encryption_key or "",
    }
    for account in (gmail, outlook):
        current = await job_queue.accounts.get(account)  # the refreshed ones too
        secrets |= {current.access_token, current.refresh_token}
    secrets.discard("")
    # The expired Gmail token was refreshed: its new token is among those searched for.
    assert (await job_queue.accounts.get(gmail)).access_token != g_box.access

    payloads: list[Payload] = list(heartbeats)
    events = 0
    for job_id in job_ids:
        history = await job_queue.client.get_workflow_handle(job_id).fetch_history()
        for event in history.events:
            events += 1
            payloads.extend(payloads_in(event))
    decoded = await codec.decode(payloads)
    assert events > 50 and len(decoded) > 40
    for payload in decoded:
        text = payload.data.decode("utf-8", errors="replace") + repr(dict(payload.metadata))
        for secret in secrets:
            assert secret not in text, f"a secret is in a history payload: {text[:200]}"
    # The check can see what it looks for: the webhook payload itself is in history.
    assert any(b'"L-1"' in p.data for p in decoded)
