"""Email activities: AI reply drafts (and, next, mailbox sync) against Gmail, Graph and Claude.

Every side effect is idempotent on the job id: a retried ``write_draft`` returns the draft it
already stored instead of asking the model again, and a retried ``place_draft`` does not create
a second draft in the mailbox.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import Dependencies
from activities.errors import to_application_error
from activities.heartbeat import auto_heartbeat, heartbeat
from core.config import Settings
from core.crypto import TokenCipher, token_key
from core.errors import AUTHENTICATION_FAILED, INVALID_CONFIGURATION
from core.logging import get_logger
from db.base import utcnow
from db.email import AccountNotFound, EmailAccountStore, MailboxAccount
from db.models import EmailDraft, EmailMessage, EmailSyncRun
from db.session import dialect_insert
from integrations.errors import (
    CursorExpired,
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
)
from integrations.google import GmailClient, GoogleOAuth, build_reply_mime
from integrations.microsoft import GraphMailClient, MicrosoftOAuth

if TYPE_CHECKING:
    # The anthropic SDK costs a worker tens of MB; only workers of the email queue load it.
    from integrations.drafting import DraftWriter

log = get_logger(__name__)

# Refresh a token that expires within this margin rather than fail on it mid-call.
TOKEN_MARGIN = timedelta(seconds=60)


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

# Words that make a message high-importance for auto-drafting (case-insensitive, whole words).
IMPORTANT_KEYWORDS = ("urgent", "asap", "immediately", "deadline", "contract", "invoice")
# Pages per sync_pages call; the workflow loops (and continues as new) between calls.
PAGES_PER_CALL = 20


def is_important(
    *,
    labels: list[str],
    importance: str | None,
    subject: str,
    snippet: str,
    sender: str | None = None,
    vip_senders: frozenset[str] = frozenset(),
) -> bool:
    """The auto-draft rule (M2.5): a sender in the user's VIP list, Gmail's IMPORTANT label,
    Graph's high importance, or a keyword from IMPORTANT_KEYWORDS in subject or preview."""
    if sender is not None and sender.lower() in vip_senders:
        return True
    if "IMPORTANT" in labels or importance == "high":
        return True
    words = set(re.findall(r"[a-z]+", f"{subject} {snippet}".lower()))
    return any(keyword in words for keyword in IMPORTANT_KEYWORDS)


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


class StoredMessage(BaseModel):
    provider_message_id: str
    thread_id: str | None
    subject: str
    snippet: str


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


class _Row(BaseModel):
    provider_message_id: str
    thread_id: str | None
    subject: str
    from_address: str | None
    received_at: datetime | None
    labels: list[str]
    important: bool
    snippet: str


class MailboxClients:
    """The provider clients of both mailbox kinds, built once by the worker."""

    def __init__(
        self,
        *,
        google_oauth: GoogleOAuth,
        gmail: GmailClient,
        microsoft_oauth: MicrosoftOAuth,
        graph: GraphMailClient,
    ) -> None:
        self.google_oauth = google_oauth
        self.gmail = gmail
        self.microsoft_oauth = microsoft_oauth
        self.graph = graph


class EmailActivities:
    """Activities that talk to mailboxes and to Claude."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        accounts: EmailAccountStore,
        mailboxes: MailboxClients,
        drafts: DraftWriter | None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._accounts = accounts
        self._mailboxes = mailboxes
        self._drafts = drafts

    # -- tokens --------------------------------------------------------------------------

    async def _account(self, account_id: str) -> MailboxAccount:
        try:
            account = await self._accounts.get(account_id)
        except AccountNotFound as exc:
            raise ApplicationError(str(exc), type="ResourceNotFound", non_retryable=True) from None
        if account.state == "needs_reauth":
            raise to_application_error(
                ReauthRequired(account.provider, "the account must be connected again")
            )
        return account

    async def _access_token(self, account: MailboxAccount, *, force: bool = False) -> str:
        """A usable access token, refreshed (and stored) when it is about to expire."""
        if not force and account.expires_at - datetime.now(UTC) > TOKEN_MARGIN:
            return account.access_token
        try:
            if account.provider == "gmail":
                grant = await self._mailboxes.google_oauth.refresh(account.refresh_token)
                rotated = grant.refresh_token
            else:
                ms_grant = await self._mailboxes.microsoft_oauth.refresh(account.refresh_token)
                grant_token, expires_at = ms_grant.access_token, ms_grant.expires_at
                # Microsoft rotates refresh tokens: the new one must be kept.
                await self._accounts.update_tokens(
                    account.id,
                    access_token=grant_token,
                    expires_at=expires_at,
                    refresh_token=ms_grant.refresh_token,
                )
                return grant_token
        except ReauthRequired as exc:
            await self._accounts.mark_needs_reauth(account.id)
            log.warning("email_account.needs_reauth", account_id=account.id)
            raise to_application_error(exc) from None
        except ProviderError as exc:
            raise to_application_error(exc) from None
        await self._accounts.update_tokens(
            account.id,
            access_token=grant.access_token,
            expires_at=grant.expires_at,
            refresh_token=rotated,
        )
        return grant.access_token

    # -- drafts --------------------------------------------------------------------------

    async def _stored_draft(self, job_id: str) -> EmailDraft | None:
        async with self._sessions() as session:
            draft: EmailDraft | None = await session.scalar(
                select(EmailDraft).where(EmailDraft.job_id == job_id)
            )
            return draft

    @activity.defn(name="write_email_draft")
    @auto_heartbeat
    async def write_draft(self, input: WriteDraftInput) -> WrittenDraft:
        """Ask Claude for the reply and store it with model, usage and tone (once per job)."""
        stored = await self._stored_draft(input.job_id)
        if stored is None:
            if self._drafts is None:
                raise ApplicationError(
                    "ANTHROPIC_API_KEY is not set", type=INVALID_CONFIGURATION, non_retryable=True
                )
            try:
                draft = await self._drafts.write(context=input.context, tone=input.tone)
            except ProviderError as exc:
                raise to_application_error(exc) from None
            async with self._sessions() as session, session.begin():
                await session.execute(
                    dialect_insert(session, EmailDraft)
                    .values(
                        job_id=input.job_id,
                        user_id=input.user_id,
                        account_id=input.account_id,
                        thread_id=input.thread_id,
                        tone=input.tone,
                        model=draft.model,
                        input_tokens=draft.input_tokens,
                        output_tokens=draft.output_tokens,
                        body=draft.text,
                        provider_draft_id=None,
                        created_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=[EmailDraft.job_id])
                )
            stored = await self._stored_draft(input.job_id)
            assert stored is not None
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
        stored = await self._stored_draft(input.job_id)
        account = await self._account(input.account_id)
        if stored is not None and stored.provider_draft_id:
            return PlacedDraft(
                provider=account.provider, provider_draft_id=stored.provider_draft_id
            )
        token = await self._access_token(account)
        try:
            try:
                draft_id = await self._create(account, token, input)
            except PermanentProviderError as exc:
                # A 401 with a token we believed fresh: refresh once, then give up.
                if exc.error_type != AUTHENTICATION_FAILED:
                    raise
                account = await self._account(account.id)  # tokens may have been refreshed
                token = await self._access_token(account, force=True)
                draft_id = await self._create(account, token, input)
        except ProviderError as exc:
            raise to_application_error(exc) from None
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(EmailDraft)
                .where(EmailDraft.job_id == input.job_id)
                .values(provider_draft_id=draft_id)
            )
        return PlacedDraft(provider=account.provider, provider_draft_id=draft_id)

    # -- sync ----------------------------------------------------------------------------

    @activity.defn(name="begin_email_sync")
    @auto_heartbeat
    async def begin_sync(self, input: BeginSyncInput) -> SyncPlan:
        """Record the run as running (FR-055) and check the account can be read."""
        account = await self._account(input.account_id)
        if account.provider != input.provider:
            raise ApplicationError(
                f"account {input.account_id} is {account.provider}, not {input.provider}",
                type="InvalidJobData",
                non_retryable=True,
            )
        async with self._sessions() as session, session.begin():
            await session.execute(
                dialect_insert(session, EmailSyncRun)
                .values(
                    user_id=input.user_id,
                    account_id=input.account_id,
                    job_id=input.job_id,
                    status="running",
                    full_sync=account.sync_cursor is None,
                    fetched=0,
                    stored=0,
                    skipped=0,
                    started_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=[EmailSyncRun.job_id])
            )
        await self._access_token(account)
        return SyncPlan(provider=account.provider, cursor=account.sync_cursor)

    @activity.defn(name="sync_email_pages")
    @auto_heartbeat
    async def sync_pages(self, input: SyncPagesInput) -> SyncPagesResult:
        """Fetch and store up to PAGES_PER_CALL pages. The page token is heartbeated, so a
        retried or re-dispatched attempt resumes at the page it had reached."""
        account = await self._account(input.account_id)
        details = activity.info().heartbeat_details
        page_token = details[0] if details and details[0] is not None else input.page_token
        if details:
            log.info("email_sync.resumed", job_id=input.job_id, attempt=activity.info().attempt)
        total = SyncPagesResult()
        vips = await self._accounts.vip_senders(account.user_id)
        try:
            for _ in range(PAGES_PER_CALL):
                # Re-read each page: a refresh stores new tokens (Microsoft rotates the
                # refresh token, so the old one must not be used again).
                account = await self._account(input.account_id)
                rows, page_token, new_cursor = await self._page(account, input, page_token, vips)
                fetched = len(rows)
                kept = [
                    r
                    for r in rows
                    if input.sync_since is None
                    or r.received_at is None
                    or r.received_at >= input.sync_since
                ]
                inserted = await self._store_messages(input.account_id, kept)
                total.fetched += fetched
                total.skipped += fetched - len(inserted)
                total.stored += len(inserted)
                total.important += [
                    StoredMessage(
                        provider_message_id=r.provider_message_id,
                        thread_id=r.thread_id,
                        subject=r.subject,
                        snippet=r.snippet,
                    )
                    for r in inserted
                    if r.important
                ]
                heartbeat(page_token)
                if page_token is None:
                    total.new_cursor = new_cursor
                    return total
        except CursorExpired:
            return SyncPagesResult(cursor_expired=True)
        except ProviderError as exc:
            raise to_application_error(exc) from None
        total.page_token = page_token
        return total

    async def _page(
        self,
        account: MailboxAccount,
        input: SyncPagesInput,
        page_token: str | None,
        vips: frozenset[str],
    ) -> tuple[list[_Row], str | None, str | None]:
        """One page; a 401 with a token we believed fresh refreshes once, then fails."""
        fetch = self._gmail_page if account.provider == "gmail" else self._graph_page
        token = await self._access_token(account)
        try:
            return await fetch(token, input, page_token, vips)
        except PermanentProviderError as exc:
            if exc.error_type != AUTHENTICATION_FAILED:
                raise
            account = await self._account(account.id)  # tokens may have been refreshed
            token = await self._access_token(account, force=True)
            return await fetch(token, input, page_token, vips)

    async def _gmail_page(
        self, token: str, input: SyncPagesInput, page_token: str | None, vips: frozenset[str]
    ) -> tuple[list[_Row], str | None, str | None]:
        gmail = self._mailboxes.gmail
        if input.full:
            if page_token is None:
                # The cursor to continue from once this full pass is done.
                profile = await gmail.get_profile(token)
                page_token = f"start:{profile.history_id}"
            start, _, list_token = page_token.partition(":")[2].partition("|")
            page = await gmail.list_messages(token, page_token=list_token or None)
            ids, next_list = page.ids, page.next_page_token
            following = f"start:{start}|{next_list}" if next_list else None
            new_cursor = start if following is None else None
        else:
            assert input.cursor is not None
            history = await gmail.list_history(token, int(input.cursor), page_token=page_token)
            ids, following = history.added_message_ids, history.next_page_token
            new_cursor = str(history.history_id) if following is None else None
        rows = []
        for message_id in ids:
            try:
                message = await gmail.get_message(token, message_id, format="metadata")
            except PermanentProviderError as exc:
                if exc.error_type == "ResourceNotFound":
                    continue  # deleted since it was listed
                raise
            headers = {k.lower(): v for k, v in message.headers.items()}
            subject = headers.get("subject", "")
            sender = _address(headers.get("from"))
            rows.append(
                _Row(
                    provider_message_id=message.id,
                    thread_id=message.thread_id,
                    subject=subject,
                    from_address=sender,
                    received_at=message.internal_date,
                    labels=list(message.label_ids),
                    important=is_important(
                        labels=list(message.label_ids),
                        importance=None,
                        subject=subject,
                        snippet=message.snippet,
                        sender=sender,
                        vip_senders=vips,
                    ),
                    snippet=message.snippet,
                )
            )
        return rows, following, new_cursor

    async def _graph_page(
        self, token: str, input: SyncPagesInput, page_token: str | None, vips: frozenset[str]
    ) -> tuple[list[_Row], str | None, str | None]:
        link = page_token if page_token is not None else (None if input.full else input.cursor)
        page = await self._mailboxes.graph.delta(token, link=link, page_size=500)
        rows = [
            _Row(
                provider_message_id=m.id,
                thread_id=m.conversation_id,
                subject=m.subject,
                from_address=m.from_address,
                received_at=m.received_at,
                labels=[],
                important=is_important(
                    labels=[],
                    importance=m.importance,
                    subject=m.subject,
                    snippet=m.body_preview,
                    sender=m.from_address,
                    vip_senders=vips,
                ),
                snippet=m.body_preview,
            )
            for m in page.messages
        ]
        return rows, page.next_link, page.delta_link

    async def _store_messages(self, account_id: str, rows: list[_Row]) -> list[_Row]:
        """Insert what is new; a message seen before is skipped (unique per account)."""
        if not rows:
            return []
        now = utcnow()
        async with self._sessions() as session, session.begin():
            statement = (
                dialect_insert(session, EmailMessage)
                .values(
                    [
                        {
                            "account_id": account_id,
                            "provider_message_id": r.provider_message_id,
                            "thread_id": r.thread_id,
                            "subject": r.subject,
                            "from_address": r.from_address,
                            "received_at": r.received_at,
                            "labels": r.labels,
                            "important": r.important,
                            "snippet": r.snippet,
                            "created_at": now,
                        }
                        for r in rows
                    ]
                )
                .on_conflict_do_nothing(
                    index_elements=[EmailMessage.account_id, EmailMessage.provider_message_id]
                )
                .returning(EmailMessage.provider_message_id)
            )
            new_ids = set((await session.execute(statement)).scalars())
        return [r for r in rows if r.provider_message_id in new_ids]

    @activity.defn(name="finish_email_sync")
    async def finish_sync(self, input: FinishSyncInput) -> None:
        """Close the run's history row; a completed run also keeps its cursor."""
        if input.status == "completed":
            await self._accounts.set_cursor(input.account_id, input.cursor)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(EmailSyncRun)
                .where(EmailSyncRun.job_id == input.job_id)
                .values(
                    status=input.status,
                    fetched=input.fetched,
                    stored=input.stored,
                    skipped=input.skipped,
                    full_sync=input.full_sync,
                    error=input.error,
                    finished_at=utcnow(),
                )
            )

    async def _create(self, account: MailboxAccount, token: str, input: PlaceDraftInput) -> str:
        if account.provider == "outlook":
            if input.reply_to_message_id is None:
                raise PermanentProviderError(
                    "graph", "reply_to_message_id is required to draft an Outlook reply"
                )
            return await self._mailboxes.graph.create_reply_draft(
                token, input.reply_to_message_id, input.body
            )
        to, subject, in_reply_to, references = "", "", None, None
        if input.reply_to_message_id is not None:
            original = await self._mailboxes.gmail.get_message(
                token, input.reply_to_message_id, format="metadata"
            )
            headers = {name.lower(): value for name, value in original.headers.items()}
            to = headers.get("reply-to") or headers.get("from", "")
            subject = headers.get("subject", "")
            in_reply_to = headers.get("message-id")
            references = " ".join(filter(None, [headers.get("references"), in_reply_to])) or None
        raw = build_reply_mime(
            to=to, subject=subject, in_reply_to=in_reply_to, references=references, body=input.body
        )
        return await self._mailboxes.gmail.create_draft(
            token, thread_id=input.thread_id, raw_rfc2822=raw
        )


def _address(value: str | None) -> str | None:
    if not value:
        return None
    return parseaddr(value)[1].lower() or None


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
    mailboxes = MailboxClients(
        google_oauth=GoogleOAuth(
            deps.http,
            settings.google_oauth_token_url,
            settings.google_client_id,
            settings.google_client_secret,
        ),
        gmail=GmailClient(deps.http, settings.gmail_api_base_url),
        microsoft_oauth=MicrosoftOAuth(
            deps.http,
            settings.microsoft_oauth_token_url,
            settings.microsoft_client_id,
            settings.microsoft_client_secret,
        ),
        graph=GraphMailClient(deps.http, settings.graph_api_base_url),
    )
    email = EmailActivities(
        settings,
        deps.sessions,
        EmailAccountStore(deps.sessions, TokenCipher(token_key(settings))),
        mailboxes,
        build_draft_writer(settings),
    )
    return [
        email.write_draft,
        email.place_draft,
        email.begin_sync,
        email.sync_pages,
        email.finish_sync,
    ]
