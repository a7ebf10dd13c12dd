"""One mailbox interface over Gmail and Microsoft Graph: refresh a token, read a page of a full
or incremental sync, and create a reply draft.

The email activities talk to ``Mailbox`` only; each adapter hides its provider's paging
(Gmail lists ids then reads each message, and follows ``historyId``; Graph pages a delta
query and follows ``deltaLink``), token rotation and draft threading. Page tokens are opaque
to callers: a sync heartbeats them and hands them back to resume.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parseaddr
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from core.config import Settings
from core.errors import RESOURCE_NOT_FOUND
from core.mail import MailMessage
from integrations.errors import PermanentProviderError
from integrations.google import GmailClient, GoogleOAuth, build_reply_mime
from integrations.microsoft import GraphMailClient, MicrosoftOAuth

Provider = Literal["gmail", "outlook"]
# Messages per page of a Graph delta query (Gmail pages are the API's maximum, 500).
GRAPH_PAGE_SIZE = 500


class Grant(BaseModel):
    """Refreshed tokens; ``refresh_token`` is the one to keep (Microsoft rotates it)."""

    model_config = ConfigDict(frozen=True)

    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    expires_at: datetime


class MailboxMessage(MailMessage):
    """A message as both providers describe it, with what the auto-draft rule reads."""

    importance: str | None = None  # Graph's low / normal / high


class MailboxPage(BaseModel):
    messages: list[MailboxMessage]
    # Where this pass continues; None on its last page.
    next_page: str | None
    # On the last page: the cursor the next incremental sync starts from.
    new_cursor: str | None


class Mailbox(Protocol):
    """A provider's mailbox API; every method raises ``ProviderError`` or ``CursorExpired``."""

    async def refresh(self, refresh_token: str) -> Grant: ...

    async def page(
        self, token: str, *, full: bool, cursor: str | None, page: str | None
    ) -> MailboxPage:
        """One page of a full pass (``full``) or of the changes since ``cursor``."""
        ...

    async def create_reply_draft(
        self, token: str, *, thread_id: str, reply_to_message_id: str | None, body: str
    ) -> str:
        """Create a reply draft in the mailbox; its provider id."""
        ...


def _address(value: str | None) -> str | None:
    if not value:
        return None
    return parseaddr(value)[1].lower() or None


class GmailMailbox:
    """Gmail: a full pass lists message ids and reads each one; an incremental sync follows
    the history since the stored ``historyId``.

    A full pass's page token is ``start:<historyId>|<list page token>``: the history id is
    read before the first page, so the changes made during the pass are picked up by the
    next incremental sync.
    """

    def __init__(self, oauth: GoogleOAuth, gmail: GmailClient) -> None:
        self._oauth = oauth
        self._gmail = gmail

    async def refresh(self, refresh_token: str) -> Grant:
        grant = await self._oauth.refresh(refresh_token)
        return Grant(
            access_token=grant.access_token,
            # Google normally keeps the refresh token; the client returns the old one then.
            refresh_token=grant.refresh_token or refresh_token,
            expires_at=grant.expires_at,
        )

    async def page(
        self, token: str, *, full: bool, cursor: str | None, page: str | None
    ) -> MailboxPage:
        if full:
            if page is None:
                profile = await self._gmail.get_profile(token)
                page = f"start:{profile.history_id}"
            start, _, list_token = page.partition(":")[2].partition("|")
            listed = await self._gmail.list_messages(token, page_token=list_token or None)
            ids, following = listed.ids, listed.next_page_token
            next_page = f"start:{start}|{following}" if following else None
            new_cursor = start if next_page is None else None
        else:
            if cursor is None:
                raise ValueError("an incremental Gmail sync needs a cursor")
            history = await self._gmail.list_history(token, int(cursor), page_token=page)
            ids, next_page = history.added_message_ids, history.next_page_token
            new_cursor = str(history.history_id) if next_page is None else None
        messages = []
        for message_id in ids:
            try:
                message = await self._gmail.get_message(token, message_id, format="metadata")
            except PermanentProviderError as exc:
                if exc.error_type == RESOURCE_NOT_FOUND:
                    continue  # deleted since it was listed
                raise
            headers = {k.lower(): v for k, v in message.headers.items()}
            messages.append(
                MailboxMessage(
                    provider_message_id=message.id,
                    thread_id=message.thread_id,
                    subject=headers.get("subject", ""),
                    from_address=_address(headers.get("from")),
                    received_at=message.internal_date,
                    labels=list(message.label_ids),
                    snippet=message.snippet,
                )
            )
        return MailboxPage(messages=messages, next_page=next_page, new_cursor=new_cursor)

    async def create_reply_draft(
        self, token: str, *, thread_id: str, reply_to_message_id: str | None, body: str
    ) -> str:
        to, subject, in_reply_to, references = "", "", None, None
        if reply_to_message_id is not None:
            original = await self._gmail.get_message(token, reply_to_message_id, format="metadata")
            headers = {name.lower(): value for name, value in original.headers.items()}
            to = headers.get("reply-to") or headers.get("from", "")
            subject = headers.get("subject", "")
            in_reply_to = headers.get("message-id")
            references = " ".join(filter(None, [headers.get("references"), in_reply_to])) or None
        raw = build_reply_mime(
            to=to, subject=subject, in_reply_to=in_reply_to, references=references, body=body
        )
        return await self._gmail.create_draft(token, thread_id=thread_id, raw_rfc2822=raw)


class GraphMailbox:
    """Outlook through Microsoft Graph: full and incremental syncs are both a delta query of
    the inbox; the page token is Graph's ``nextLink`` and the cursor its ``deltaLink``."""

    def __init__(self, oauth: MicrosoftOAuth, graph: GraphMailClient) -> None:
        self._oauth = oauth
        self._graph = graph

    async def refresh(self, refresh_token: str) -> Grant:
        grant = await self._oauth.refresh(refresh_token)
        return Grant(
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_at=grant.expires_at,
        )

    async def page(
        self, token: str, *, full: bool, cursor: str | None, page: str | None
    ) -> MailboxPage:
        link = page if page is not None else (None if full else cursor)
        delta = await self._graph.delta(token, link=link, page_size=GRAPH_PAGE_SIZE)
        messages = [
            MailboxMessage(
                provider_message_id=m.id,
                thread_id=m.conversation_id,
                subject=m.subject,
                from_address=m.from_address,
                received_at=m.received_at,
                importance=m.importance,
                snippet=m.body_preview,
            )
            for m in delta.messages
        ]
        return MailboxPage(
            messages=messages, next_page=delta.next_link, new_cursor=delta.delta_link
        )

    async def create_reply_draft(
        self, token: str, *, thread_id: str, reply_to_message_id: str | None, body: str
    ) -> str:
        del thread_id  # Graph threads a reply by the message it answers
        if reply_to_message_id is None:
            raise PermanentProviderError(
                "graph", "reply_to_message_id is required to draft an Outlook reply"
            )
        return await self._graph.create_reply_draft(token, reply_to_message_id, body)


def build_mailboxes(settings: Settings, http: httpx.AsyncClient) -> dict[str, Mailbox]:
    """The mailbox of each provider, on the worker's shared HTTP client."""
    return {
        "gmail": GmailMailbox(
            GoogleOAuth(
                http,
                settings.google_oauth_token_url,
                settings.google_client_id,
                settings.google_client_secret,
            ),
            GmailClient(http, settings.gmail_api_base_url),
        ),
        "outlook": GraphMailbox(
            MicrosoftOAuth(
                http,
                settings.microsoft_oauth_token_url,
                settings.microsoft_client_id,
                settings.microsoft_client_secret,
            ),
            GraphMailClient(http, settings.graph_api_base_url),
        ),
    }
