"""The email activities in an ActivityEnvironment, against the Gmail emulator and real stores
on SQLite: a sync heartbeats its page and counts and resumes from them, a missing or revoked
account is a permanent failure, a cancel stops it mid-sync, auto-drafts are handed over until
recorded, and a draft is written and placed once per job."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import (
    EmailActivities,
    PlaceDraftInput,
    SyncPagesInput,
    WriteDraftInput,
)
from activities.mail_tokens import MailboxTokens
from core.crypto import TokenCipher
from core.errors import INVALID_CONFIGURATION, REAUTH_REQUIRED, RESOURCE_NOT_FOUND
from db.email import EmailAccountStore
from db.email_drafts import DraftStore
from db.email_sync import SyncStore
from db.migrate import upgrade_database
from db.session import create_engine, create_sessionmaker
from emulators import google as google_emulator
from emulators.server import Fault, serve
from integrations.drafting import Draft
from integrations.google import GmailClient, GoogleOAuth
from integrations.mailbox import GmailMailbox

KEY = os.urandom(32)


class CountingWriter:
    """Stands in for Claude: one canned reply per call, calls counted."""

    def __init__(self) -> None:
        self.calls = 0

    async def write(self, *, context: str, tone: str, sender_name: str | None = None) -> Draft:
        self.calls += 1
        return Draft(
            text=f"({tone}) thanks for: {context[:20]}",
            model="claude-test",
            input_tokens=10,
            output_tokens=20,
            stop_reason="end_turn",
            request_id=None,
        )


@dataclass
class Setup:
    google: google_emulator.GoogleState
    accounts: EmailAccountStore
    sync: SyncStore
    drafts: DraftStore
    writer: CountingWriter
    acts: EmailActivities

    async def account(self, messages: int, *, important_every: int = 0) -> tuple[str, str]:
        address = f"box-{os.urandom(4).hex()}@example.com"
        self.google.seed_mailbox(address, messages, important_every=important_every)
        access, refresh = self.google.issue_tokens(address)
        account_id = await self.accounts.connect(
            user_id="u-1",
            provider="gmail",
            email_address=address,
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        return account_id, address


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    google = google_emulator.GoogleState()
    accounts = EmailAccountStore(sessions, TokenCipher(KEY))
    writer = CountingWriter()
    async with (
        serve(google_emulator.create_app(google)) as base,
        httpx.AsyncClient(timeout=30) as http,
    ):
        mailbox = GmailMailbox(
            GoogleOAuth(
                http,
                f"{base}/token",
                google_emulator.DEFAULT_CLIENT_ID,
                google_emulator.DEFAULT_CLIENT_SECRET,
            ),
            GmailClient(http, base),
        )
        sync, drafts = SyncStore(sessions), DraftStore(sessions)
        acts = EmailActivities(
            MailboxTokens(accounts, {"gmail": mailbox}),
            accounts,
            sync,
            drafts,
            writer,  # type: ignore[arg-type]
        )
        yield Setup(google, accounts, sync, drafts, writer, acts)
    await engine.dispose()


def environment(details: list[Any] | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=details or [])
    return env


def pages_input(account_id: str, job_id: str = "email_sync-test", **changes: Any) -> SyncPagesInput:
    return SyncPagesInput(
        job_id=job_id,
        account_id=account_id,
        provider="gmail",
        cursor=None,
        full=True,
        **changes,
    )


async def test_each_stored_page_is_heartbeated_with_the_counts(setup: Setup):
    account_id, _ = await setup.account(1200)
    env = environment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    result = await env.run(setup.acts.sync_pages, pages_input(account_id))
    assert (result.fetched, result.stored, result.skipped) == (1200, 1200, 0)
    assert result.page_token is None and result.new_cursor
    # A slow run adds automatic beats that repeat the latest details; the counts still rise
    # page by page.
    assert [count for count, _ in groupby(b["fetched"] for b in beats)] == [500, 1000, 1200]
    assert beats[-1]["done"] is True and beats[0]["page_token"].startswith("start:")


async def test_a_retry_resumes_at_the_heartbeated_page_with_its_counts(setup: Setup):
    account_id, _ = await setup.account(1200)
    first = environment()
    beats: list[Any] = []
    first.on_heartbeat = lambda *details: beats.append(details[0])
    # Page two answers 429: the attempt fails after storing and heartbeating page one.
    setup.google.faults.add("messages.list", Fault(status=200), Fault(status=429))
    with pytest.raises(ApplicationError) as failure:
        await first.run(setup.acts.sync_pages, pages_input(account_id))
    assert not failure.value.non_retryable
    listed = setup.google.calls["messages.list"]
    result = await environment(details=[beats[-1]]).run(
        setup.acts.sync_pages, pages_input(account_id)
    )
    assert (result.fetched, result.stored, result.skipped) == (1200, 1200, 0)
    assert setup.google.calls["messages.list"] == listed + 2  # pages two and three only


async def test_a_page_redone_after_a_crash_counts_its_messages_as_stored(setup: Setup):
    account_id, _ = await setup.account(700)
    beats: list[Any] = []
    env = environment()
    env.on_heartbeat = lambda *details: beats.append(details[0])
    await env.run(setup.acts.sync_pages, pages_input(account_id))
    # The worker died before its last heartbeat reached the server: page two is redone.
    result = await environment(details=[beats[0]]).run(
        setup.acts.sync_pages, pages_input(account_id)
    )
    assert (result.fetched, result.stored, result.skipped) == (700, 700, 0)


async def test_a_missing_or_revoked_account_is_permanent(setup: Setup):
    with pytest.raises(ApplicationError) as missing:
        await environment().run(setup.acts.sync_pages, pages_input("acct_missing"))
    assert missing.value.type == RESOURCE_NOT_FOUND and missing.value.non_retryable
    account_id, _ = await setup.account(3)
    await setup.accounts.mark_needs_reauth(account_id)
    with pytest.raises(ApplicationError) as revoked:
        await environment().run(setup.acts.sync_pages, pages_input(account_id))
    assert revoked.value.type == REAUTH_REQUIRED and revoked.value.non_retryable


async def test_a_cancel_stops_the_sync_mid_page(setup: Setup):
    account_id, _ = await setup.account(1200)
    setup.google.faults.add("messages.list", Fault(status=200), Fault(status=200, delay_s=5))
    env = environment()
    beats: list[Any] = []
    beaten = asyncio.Event()

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        beaten.set()

    env.on_heartbeat = on_heartbeat
    running = asyncio.ensure_future(env.run(setup.acts.sync_pages, pages_input(account_id)))
    await asyncio.wait_for(beaten.wait(), 10)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert beats[-1]["fetched"] == 500  # the resume point of the attempt that follows


async def test_important_messages_are_handed_over_until_their_draft_is_recorded(setup: Setup):
    account_id, _ = await setup.account(20, important_every=10)
    first = await environment().run(setup.acts.sync_pages, pages_input(account_id))
    ids = [m.provider_message_id for m in first.important]
    assert len(ids) == 2
    # The workflow started their drafts and says so in its next call: not handed over again.
    drafted = {message_id: f"email_draft-auto-{account_id}-{message_id}" for message_id in ids}
    again = await environment().run(
        setup.acts.sync_pages, pages_input(account_id, "email_sync-next", drafted=drafted)
    )
    assert (again.stored, again.skipped, again.important) == (0, 20, [])


async def test_a_draft_is_written_once_per_job(setup: Setup):
    draft = WriteDraftInput(
        job_id="email_draft-1", user_id="u-1", thread_id="t-1", context="Hi?", tone="casual"
    )
    first = await environment().run(setup.acts.write_draft, draft)
    second = await environment().run(setup.acts.write_draft, draft)
    assert first == second and setup.writer.calls == 1
    no_key = EmailActivities(setup.acts._tokens, setup.accounts, setup.sync, setup.drafts, None)
    with pytest.raises(ApplicationError) as failure:
        await environment().run(no_key.write_draft, draft.model_copy(update={"job_id": "other"}))
    assert failure.value.type == INVALID_CONFIGURATION and failure.value.non_retryable


async def test_a_draft_is_placed_in_the_mailbox_once(setup: Setup):
    account_id, address = await setup.account(1)
    [message] = setup.google.mailbox(address).order
    written = await environment().run(
        setup.acts.write_draft,
        WriteDraftInput(
            job_id="email_draft-2",
            user_id="u-1",
            thread_id=message,
            context="Hi?",
            tone="friendly",
            account_id=account_id,
        ),
    )
    place = PlaceDraftInput(
        job_id="email_draft-2",
        account_id=account_id,
        thread_id=message,
        reply_to_message_id=message,
        body=written.body,
    )
    first = await environment().run(setup.acts.place_draft, place)
    second = await environment().run(setup.acts.place_draft, place)
    assert first == second
    assert len(setup.google.drafts_for(address)) == 1
