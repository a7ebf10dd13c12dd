"""Microsoft identity platform token refresh and Graph v1.0 mail, on an injected httpx client.

The clients never retry: every failure is raised as a ``ProviderError`` (or ``CursorExpired``)
so the activity edge decides, and each attempt stays visible in the workflow history. Tokens
are passed in per call and are scrubbed from every exception message, even when the provider
echoes them back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from integrations.errors import (
    CursorExpired,
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
    TransientProviderError,
    parse_retry_after,
    status_error,
)
from integrations.oauth import TokenEndpoint

PROVIDER = "microsoft"
DEFAULT_SCOPES: tuple[str, ...] = ("offline_access", "Mail.ReadWrite")
MESSAGE_SELECT = (
    "id,conversationId,internetMessageId,subject,from,receivedDateTime,importance,isRead,"
    "bodyPreview"
)
MAX_PAGE_SIZE = 1000
# OAuth error codes that only the user can clear (sign in again, grant consent).
_REAUTH_OAUTH_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})
# Graph codes on a delta request meaning the sync state is gone: resync, like a 410.
_DELTA_RESYNC_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
# Graph's documented transient statuses; 509 is bandwidth exceeded.
_GRAPH_TRANSIENT = frozenset({503, 504, 509})
_MAX_DETAIL = 300


class TokenGrant(BaseModel):
    """A refreshed grant; ``refresh_token`` replaces the old one and must be persisted."""

    model_config = ConfigDict(frozen=True)

    access_token: str = Field(repr=False)
    expires_at: AwareDatetime
    refresh_token: str = Field(repr=False)
    scope: str


class GraphMessage(BaseModel):
    """The inbox message fields the jobs system uses."""

    model_config = ConfigDict(frozen=True)

    id: str
    conversation_id: str | None = None
    internet_message_id: str | None = None
    subject: str = ""
    from_address: str | None = None
    received_at: AwareDatetime
    importance: Literal["low", "normal", "high"] = "normal"
    is_read: bool = False
    body_preview: str = ""


class GraphPage(BaseModel):
    """One page of an inbox listing; ``next_link`` is None on the last page."""

    messages: list[GraphMessage]
    next_link: str | None = None


class DeltaPage(BaseModel):
    """One delta page: ``next_link`` until the last page, which carries ``delta_link``."""

    messages: list[GraphMessage]
    removed_ids: list[str]
    next_link: str | None = None
    delta_link: str | None = None


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:_MAX_DETAIL]


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _transport_error(what: str, exc: httpx.TransportError) -> TransientProviderError:
    # Only the exception class: its text can carry the URL, and nothing more is actionable.
    return TransientProviderError(PROVIDER, f"{what} failed: {type(exc).__name__}")


class MicrosoftOAuth(TokenEndpoint):
    """Refreshes Microsoft identity platform tokens (v2.0 token endpoint)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
    ) -> None:
        super().__init__(http, token_url, client_id, client_secret)
        self._scopes = scopes

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """Exchange ``refresh_token`` for a new access token and a new refresh token."""
        form = {
            "client_id": self._client_id,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            # Microsoft rejects comma-separated scopes (AADSTS70011).
            "scope": " ".join(self._scopes),
        }
        if self._client_secret:
            form["client_secret"] = self._client_secret
        secrets = (refresh_token, self._client_secret)
        started = datetime.now(UTC)
        try:
            response = await self._http.post(self._token_url, data=form)
        except httpx.TransportError as exc:
            raise _transport_error("token refresh", exc) from None
        body = _json_object(response)
        if response.status_code != 200:
            raise self._error(response, body, secrets)
        try:
            if body is None:
                raise ValueError("not a JSON object")
            return TokenGrant(
                access_token=body["access_token"],
                # Counted from before the request, so the grant never outlives the token.
                expires_at=started + timedelta(seconds=int(body["expires_in"])),
                # Microsoft usually rotates it; when it does not, the old one stays valid.
                refresh_token=body.get("refresh_token") or refresh_token,
                scope=body.get("scope", " ".join(self._scopes)),
            )
        except (KeyError, TypeError, ValueError):
            raise TransientProviderError(
                PROVIDER, "token refresh answered 200 without a usable grant", status_code=200
            ) from None

    def _error(
        self, response: httpx.Response, body: dict[str, Any] | None, secrets: tuple[str, ...]
    ) -> ProviderError:
        status = response.status_code
        code = str(body.get("error", "")) if body else ""
        codes = body.get("error_codes") if body else None
        aadsts = f" AADSTS{codes[0]}" if isinstance(codes, list) and codes else ""
        message = _redact(f"token refresh rejected: {code or 'no error code'}{aadsts}", secrets)
        if code in _REAUTH_OAUTH_ERRORS:
            return ReauthRequired(PROVIDER, message, status_code=status)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == "temporarily_unavailable":
            return TransientProviderError(
                PROVIDER, message, status_code=status, retry_after=retry_after
            )
        return status_error(PROVIDER, status, message, response.headers.get("Retry-After"))


class GraphMailClient:
    """Reads an inbox and creates reply drafts through Microsoft Graph v1.0."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        parts = urlsplit(self._base_url)
        self._origin = (parts.scheme, parts.netloc)

    async def list_inbox(
        self,
        token: str,
        *,
        next_link: str | None = None,
        page_size: int = 100,
        received_since: datetime | None = None,
    ) -> GraphPage:
        """One page of inbox messages; pass the returned ``next_link`` to get the next one."""
        if next_link is not None:
            response = await self._send("GET", self._own(next_link), token, what="list inbox")
        else:
            params = {"$top": str(_page_size(page_size)), "$select": MESSAGE_SELECT}
            if received_since is not None:
                params["$filter"] = f"receivedDateTime ge {_graph_time(received_since)}"
            url = f"{self._base_url}/me/mailFolders/inbox/messages"
            response = await self._send("GET", url, token, params=params, what="list inbox")
        body = self._body(response, token, expected=200, what="list inbox")
        return GraphPage(
            messages=[_message(raw) for raw in _values(body)],
            next_link=_link(body, "@odata.nextLink"),
        )

    async def delta(
        self, token: str, *, link: str | None = None, page_size: int = 100
    ) -> DeltaPage:
        """One delta page of the inbox: the first call starts a full sync, ``link`` resumes."""
        # Graph honours the page size of a delta query only through this header, on every call.
        headers = {"Prefer": f"odata.maxpagesize={_page_size(page_size)}"}
        if link is not None:
            response = await self._send(
                "GET", self._own(link), token, headers=headers, what="delta"
            )
        else:
            url = f"{self._base_url}/me/mailFolders/inbox/messages/delta"
            response = await self._send(
                "GET", url, token, headers=headers, params={"$select": MESSAGE_SELECT}, what="delta"
            )
        body = self._body(response, token, expected=200, what="delta")
        messages: list[GraphMessage] = []
        removed: list[str] = []
        for raw in _values(body):
            if "@removed" in raw:
                removed.append(str(raw["id"]))
            else:
                messages.append(_message(raw))
        return DeltaPage(
            messages=messages,
            removed_ids=removed,
            next_link=_link(body, "@odata.nextLink"),
            delta_link=_link(body, "@odata.deltaLink"),
        )

    async def create_reply_draft(self, token: str, message_id: str, comment: str) -> str:
        """Create a reply draft to ``message_id`` with ``comment`` above the quote; its id."""
        url = f"{self._base_url}/me/messages/{quote(message_id, safe='')}/createReply"
        response = await self._send(
            "POST", url, token, json={"comment": comment}, what="create reply draft"
        )
        body = self._body(response, token, expected=201, what="create reply draft")
        draft_id = body.get("id")
        if not isinstance(draft_id, str) or not draft_id:
            raise PermanentProviderError(
                PROVIDER, "create reply draft answered without a draft id", status_code=201
            )
        return draft_id

    def _own(self, link: str) -> str:
        # A link is called with the bearer token attached: never send it to another host.
        parts = urlsplit(link)
        if (parts.scheme, parts.netloc) != self._origin:
            raise PermanentProviderError(PROVIDER, "paging link points outside the Graph base URL")
        return link

    async def _send(
        self,
        method: str,
        url: str,
        token: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        try:
            return await self._http.request(
                method, url, params=params, headers=all_headers, json=json
            )
        except httpx.TransportError as exc:
            raise _transport_error(what, exc) from None

    def _body(
        self, response: httpx.Response, token: str, *, expected: int, what: str
    ) -> dict[str, Any]:
        body = _json_object(response)
        status = response.status_code
        if status == expected and body is not None:
            return body
        if status == expected:
            raise TransientProviderError(
                PROVIDER, f"{what} answered malformed JSON", status_code=status
            )
        error = body.get("error") if body else None
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        detail = str(error.get("message", "")) if isinstance(error, dict) else ""
        message = _redact(f"{what} failed: {code or 'no error code'} {detail}".rstrip(), (token,))
        retry_after_header = response.headers.get("Retry-After")
        if what == "delta" and (status == 410 or code.lower() in _DELTA_RESYNC_CODES):
            raise CursorExpired(message)
        if status in _GRAPH_TRANSIENT:
            raise TransientProviderError(
                PROVIDER,
                message,
                status_code=status,
                retry_after=parse_retry_after(retry_after_header),
            )
        raise status_error(PROVIDER, status, message, retry_after_header)


def _page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def _graph_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("received_since must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _values(body: dict[str, Any]) -> list[dict[str, Any]]:
    values = body.get("value")
    if not isinstance(values, list) or not all(isinstance(item, dict) for item in values):
        raise PermanentProviderError(PROVIDER, "Graph answered without a value list")
    return values


def _link(body: dict[str, Any], key: str) -> str | None:
    link = body.get(key)
    return link if isinstance(link, str) and link else None


def _message(raw: dict[str, Any]) -> GraphMessage:
    sender = raw.get("from")
    address = None
    if isinstance(sender, dict) and isinstance(sender.get("emailAddress"), dict):
        address = sender["emailAddress"].get("address")
    try:
        return GraphMessage(
            id=raw["id"],
            conversation_id=raw.get("conversationId"),
            internet_message_id=raw.get("internetMessageId"),
            subject=raw.get("subject") or "",
            from_address=address,
            received_at=raw["receivedDateTime"],
            importance=raw.get("importance") or "normal",
            is_read=bool(raw.get("isRead", False)),
            body_preview=raw.get("bodyPreview") or "",
        )
    except (KeyError, ValidationError):
        # The validation text would quote message content; the id is enough to find it.
        raise PermanentProviderError(
            PROVIDER, f"unexpected message shape (id {str(raw.get('id'))[:80]})"
        ) from None


__all__ = [
    "DEFAULT_SCOPES",
    "DeltaPage",
    "GraphMailClient",
    "GraphMessage",
    "GraphPage",
    "MicrosoftOAuth",
    "TokenGrant",
]
