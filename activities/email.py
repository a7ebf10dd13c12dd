"""Email activities: AI reply drafts and mailbox sync, against any ``Mailbox`` and Claude.

Every side effect is idempotent on the job id: a retried ``write_draft`` returns the draft it
already stored instead of asking the model again, a retried ``place_draft`` does not create a
second draft in the mailbox, and a retried ``sync_pages`` resumes at the page it had reached
with the counts it had reached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.errors import to_application_error
from activities.heartbeat import auto_heartbeat, heartbeat
from activities.importance import is_important
from activities.mail_tokens import MailboxTokens
from core.crypto import TokenCipher, token_key
from core.errors import INVALID_CONFIGURATION, INVALID_JOB_DATA, RESOURCE_NOT_FOUND
from core.logging import get_logger
from db.email import AccountNotFound, EmailAccountStore
from db.email_drafts import DraftStore, NewDraft
from db.email_sync import NewMessage, SyncStore, UndraftedMessage
from integrations.errors import CursorExpired, ProviderError
from integrations.mailbox import Mailbox, MailboxPage, build_mailboxes

if TYPE_CHECKING:
    # The anthropic SDK costs a worker tens of MB; only workers of the email queue load it.
    from core.config import Settings
    from integrations.drafting import DraftWriter

log = get_logger(__name__)

# Pages per sync_pages call; the workflow loops (and continues as new) between calls.
PAGES_PER_CALL = 20
# Auto-draft candidates handed to the workflow per call; the rest wait for the next call.
DRAFTS_PER_CALL = 100


# -- drafts -----------------------------------------------------------------------------------


class WriteDraftInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    user_id: str
    thread_id: str
    context: str
    tone: str
    account_id: str | None = None


class WrittenDraft(BaseModel):
    body: str
    model: str
    input_tokens: int
    output_tokens: int


class PlaceDraftInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    account_id: str
    thread_id: str
    reply_to_message_id: str | None = None
    body: str


class PlacedDraft(BaseModel):
    provider: str
    provider_draft_id: str


# -- mailbox sync -----------------------------------------------------------------------------


class BeginSyncInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    user_id: str
    account_id: str
    provider: str


class SyncPlan(BaseModel):
    provider: str
    cursor: str | None  # None: a full sync


class SyncPagesInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    account_id: str
    provider: str
    cursor: str | None
    full: bool
    page_token: str | None = None
    sync_since: datetime | None = None
    # Auto-drafts the workflow started since the last call (message id -> draft job id).
    drafted: dict[str, str] = {}


# An important stored message whose auto-draft the workflow is to start.
StoredMessage = UndraftedMessage


class SyncPagesResult(BaseModel):
    fetched: int = 0
    stored: int = 0
    skipped: int = 0
    # Where the next call continues; None when the mailbox is done.
    page_token: str | None = None
    # The cursor to keep for the next incremental sync (set when done).
    new_cursor: str | None = None
    # The provider forgot the incremental cursor: the workflow restarts as a full sync.
    cursor_expired: bool = False
    # Important messages with no auto-draft yet, whichever attempt or sync stored them.
    important: list[StoredMessage] = []


class FinishSyncInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    account_id: str
    status: str
    fetched: int
    stored: int
    skipped: int
    full_sync: bool
    cursor: str | None = None
    error: str | None = None
    drafted: dict[str, str] = {}


class _Progress(BaseModel):
    """What sync_pages heartbeats: where the call is, and what it has counted so far."""

    page_token: str | None = None
    fetched: int = 0
    stored: int = 0
    skipped: int = 0
    done: bool = False
    new_cursor: str | None = None


@contextlib.contextmanager
def _activity_edge() -> Iterator[None]:
    """Provider and account errors as the Temporal failures the retry policy knows."""
    try:
        yield
    except ProviderError as exc:
        raise to_application_error(exc) from None
    except AccountNotFound as exc:
        raise ApplicationError(str(exc), type=RESOURCE_NOT_FOUND, non_retryable=True) from None


class EmailActivities:
    """Activities that talk to mailboxes and to Claude."""

    def __init__(
        self,
        tokens: MailboxTokens,
        accounts: EmailAccountStore,
        sync: SyncStore,
        drafts: DraftStore,
        writer: DraftWriter | None,
    ) -> None:
        self._tokens = tokens
        self._accounts = accounts
        self._sync = sync
        self._drafts = drafts
        self._writer = writer

    # -- drafts --------------------------------------------------------------------------

    @activity.defn(name="write_email_draft")
    @auto_heartbeat
    async def write_draft(self, input: WriteDraftInput) -> WrittenDraft:
        """Ask Claude for the reply and store it with model, usage and tone (once per job)."""
        stored = await self._drafts.get(input.job_id)
        if stored is None:
            if self._writer is None:
                raise ApplicationError(
                    "ANTHROPIC_API_KEY is not set", type=INVALID_CONFIGURATION, non_retryable=True
                )
            with _activity_edge():
                draft = await self._writer.write(context=input.context, tone=input.tone)
            stored = await self._drafts.add(
                NewDraft(
                    job_id=input.job_id,
                    user_id=input.user_id,
                    account_id=input.account_id,
                    thread_id=input.thread_id,
                    tone=input.tone,
                    model=draft.model,
                    input_tokens=draft.input_tokens,
                    output_tokens=draft.output_tokens,
                    body=draft.text,
                )
            )
        return WrittenDraft(
            body=stored.body,
            model=stored.model,
            input_tokens=stored.input_tokens,
            output_tokens=stored.output_tokens,
        )

    @activity.defn(name="place_email_draft")
    @auto_heartbeat
    async def place_draft(self, input: PlaceDraftInput) -> PlacedDraft:
        """Create the draft in the user's mailbox: a Gmail draft or a Graph reply draft."""
        with _activity_edge():
            account = await self._tokens.account(input.account_id)
            stored = await self._drafts.get(input.job_id)
            if stored is not None and stored.provider_draft_id:
                return PlacedDraft(
                    provider=account.provider, provider_draft_id=stored.provider_draft_id
                )

            async def create(mailbox: Mailbox, token: str) -> str:
                return await mailbox.create_reply_draft(
                    token,
                    thread_id=input.thread_id,
                    reply_to_message_id=input.reply_to_message_id,
                    body=input.body,
                )

            draft_id = await self._tokens.call(input.account_id, create)
        await self._drafts.set_provider_draft_id(input.job_id, draft_id)
        return PlacedDraft(provider=account.provider, provider_draft_id=draft_id)

    # -- sync ----------------------------------------------------------------------------

    @activity.defn(name="begin_email_sync")
    @auto_heartbeat
    async def begin_sync(self, input: BeginSyncInput) -> SyncPlan:
        """Record the run as running (FR-055) and check the account can be read."""
        with _activity_edge():
            account = await self._tokens.account(input.account_id)
            if account.provider != input.provider:
                raise ApplicationError(
                    f"account {input.account_id} is {account.provider}, not {input.provider}",
                    type=INVALID_JOB_DATA,
                    non_retryable=True,
                )
            await self._sync.begin_run(
                job_id=input.job_id,
                user_id=input.user_id,
                account_id=input.account_id,
                full=account.sync_cursor is None,
            )
            await self._tokens.access_token(account)
        return SyncPlan(provider=account.provider, cursor=account.sync_cursor)

    @activity.defn(name="sync_email_pages")
    @auto_heartbeat
    async def sync_pages(self, input: SyncPagesInput) -> SyncPagesResult:
        """Fetch and store up to PAGES_PER_CALL pages, then hand over the important messages
        not drafted yet. The page token and the counts so far are heartbeated after each
        stored page, so a retried or re-dispatched attempt resumes there and its counts add
        up with the earlier attempts'."""
        await self._sync.mark_drafted(input.account_id, input.drafted)
        progress = self._resume_point(input)
        with _activity_edge():
            account = await self._tokens.account(input.account_id)
            vips = await self._accounts.vip_senders(account.user_id)
            try:
                for _ in range(PAGES_PER_CALL):
                    if progress.done:
                        break
                    progress = await self._sync_page(input, progress, vips)
            except CursorExpired:
                return SyncPagesResult(cursor_expired=True)
        important = await self._sync.undrafted(input.account_id, DRAFTS_PER_CALL)
        return SyncPagesResult(
            fetched=progress.fetched,
            stored=progress.stored,
            skipped=progress.skipped,
            page_token=None if progress.done else progress.page_token,
            new_cursor=progress.new_cursor if progress.done else None,
            important=important,
        )

    @staticmethod
    def _resume_point(input: SyncPagesInput) -> _Progress:
        info = activity.info()
        details = info.heartbeat_details
        if not details:
            return _Progress(page_token=input.page_token)
        log.info("email_sync.resumed", job_id=input.job_id, attempt=info.attempt)
        if isinstance(details[0], dict):
            return _Progress.model_validate(details[0])
        # Heartbeats of workers before counts were heartbeated: the page token alone.
        return _Progress(page_token=details[0] if details[0] is not None else input.page_token)

    async def _sync_page(
        self, input: SyncPagesInput, progress: _Progress, vips: frozenset[str]
    ) -> _Progress:
        async def read(mailbox: Mailbox, token: str) -> MailboxPage:
            return await mailbox.page(
                token, full=input.full, cursor=input.cursor, page=progress.page_token
            )

        page = await self._tokens.call(input.account_id, read)
        kept = [
            NewMessage(
                **m.model_dump(exclude={"importance"}), important=is_important(m, vip_senders=vips)
            )
            for m in page.messages
            if input.sync_since is None
            or m.received_at is None
            or m.received_at >= input.sync_since
        ]
        stored = await self._sync.store_page(
            account_id=input.account_id, job_id=input.job_id, messages=kept
        )
        fetched = len(page.messages)
        progress = _Progress(
            page_token=page.next_page,
            fetched=progress.fetched + fetched,
            stored=progress.stored + stored,
            skipped=progress.skipped + fetched - stored,
            done=page.next_page is None,
            new_cursor=page.new_cursor,
        )
        heartbeat(progress.model_dump())
        return progress

    @activity.defn(name="finish_email_sync")
    async def finish_sync(self, input: FinishSyncInput) -> None:
        """Close the run's history row; a completed run also keeps its cursor."""
        await self._sync.mark_drafted(input.account_id, input.drafted)
        if input.status == "completed":
            await self._accounts.set_cursor(input.account_id, input.cursor)
        await self._sync.finish_run(
            job_id=input.job_id,
            status=input.status,
            fetched=input.fetched,
            stored=input.stored,
            skipped=input.skipped,
            full=input.full_sync,
            error=input.error,
        )


def build_draft_writer(settings: Settings) -> DraftWriter | None:
    """Claude with the SDK's own retries off (Temporal retries); None without an API key."""
    if not settings.anthropic_api_key:
        return None
    import anthropic

    from integrations.drafting import DraftWriter

    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        max_retries=0,
        timeout=120.0,
    )
    return DraftWriter(
        client, model=settings.email_draft_model, max_tokens=settings.email_draft_max_tokens
    )


def build_email_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    settings = deps.settings
    accounts = EmailAccountStore(deps.sessions, TokenCipher(token_key(settings)))
    mailboxes: Mapping[str, Mailbox] = build_mailboxes(settings, deps.http)
    email = EmailActivities(
        MailboxTokens(accounts, mailboxes),
        accounts,
        SyncStore(deps.sessions),
        DraftStore(deps.sessions),
        build_draft_writer(settings),
    )
    return [
        email.write_draft,
        email.place_draft,
        email.begin_sync,
        email.sync_pages,
        email.finish_sync,
    ]
