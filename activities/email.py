"""Email activities: AI reply drafts (and, next, mailbox sync) against Gmail, Graph and Claude.

Every side effect is idempotent on the job id: a retried ``write_draft`` returns the draft it
already stored instead of asking the model again, and a retried ``place_draft`` does not create
a second draft in the mailbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anthropic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import auto_heartbeat
from core.config import Settings
from core.errors import AUTHENTICATION_FAILED, INVALID_CONFIGURATION
from core.logging import get_logger
from db.base import utcnow
from db.email import AccountNotFound, EmailAccountStore, MailboxAccount
from db.models import EmailDraft
from db.session import dialect_insert
from integrations.drafting import DraftWriter
from integrations.errors import (
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
    to_application_error,
)
from integrations.google import GmailClient, GoogleOAuth, build_reply_mime
from integrations.microsoft import GraphMailClient, MicrosoftOAuth

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


def build_draft_writer(settings: Settings) -> DraftWriter | None:
    """Claude with the SDK's own retries off (Temporal retries); None without an API key."""
    if not settings.anthropic_api_key:
        return None
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        max_retries=0,
        timeout=120.0,
    )
    return DraftWriter(
        client, model=settings.email_draft_model, max_tokens=settings.email_draft_max_tokens
    )
