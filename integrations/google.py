"""Google OAuth token refresh and the Gmail API v1 calls the email jobs need (providers.md 1-2).

The clients run on an injected ``httpx.AsyncClient`` and never retry: every failure becomes a
``TransientProviderError`` or ``PermanentProviderError`` (see ``integrations.errors``) and the
activity's retry policy decides what happens next. Access tokens never reach an exception
message: the texts below are fixed, and server text is scrubbed of the token before use.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import AUTHENTICATION_FAILED
from integrations.errors import (
    RATE_LIMITED,
    REQUEST_REJECTED,
    CursorExpired,
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
    TransientProviderError,
    parse_retry_after,
    status_error,
)
from integrations.oauth import TokenEndpoint

OAUTH_PROVIDER = "google-oauth"
GMAIL_PROVIDER = "gmail"
GMAIL_USER_PATH = "/gmail/v1/users/me"
MAX_PAGE_SIZE = 500
METADATA_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")
# Gmail reports quota exhaustion as 403 with one of these reasons: that is a retry, not a denial.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded"})
MAX_SERVER_TEXT = 200
_OAUTH_CODE = re.compile(r"^[a-z_]{1,64}$")

MessageFormat = Literal["minimal", "metadata", "full"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class TokenGrant(_Frozen):
    access_token: str
    expires_at: datetime
    refresh_token: str | None
    scope: str = ""


class MessagePage(_Frozen):
    ids: list[str]
    next_page_token: str | None
    result_size_estimate: int


class GmailMessage(_Frozen):
    id: str
    thread_id: str
    label_ids: list[str]
    snippet: str
    history_id: int
    internal_date: datetime
    # Only From, To, Subject, Date and Message-ID, under those spellings.
    headers: dict[str, str]


class HistoryPage(_Frozen):
    added_message_ids: list[str]
    history_id: int
    next_page_token: str | None


class Profile(_Frozen):
    email_address: str
    history_id: int
    messages_total: int


def _transport_error(provider: str, operation: str, exc: httpx.TransportError) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientProviderError(provider, f"{operation} timed out")
    return TransientProviderError(provider, f"{operation} failed: {type(exc).__name__}")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _malformed(provider: str, operation: str) -> ProviderError:
    # An unreadable 2xx body is more often a proxy or outage symptom than a contract change.
    return TransientProviderError(provider, f"{operation}: malformed response")


class GoogleOAuth(TokenEndpoint):
    """Refreshes Google access tokens (form POST to the token endpoint)."""

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """A new access token; Google normally sends no new refresh token, so the old one stays."""
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": refresh_token,
            "grant_type": "refresh_token",
        }
        try:
            response = await self._http.post(self._token_url, data=form)
        except httpx.TransportError as exc:
            raise _transport_error(OAUTH_PROVIDER, "token refresh", exc) from exc
        body = _json_object(response)
        if response.is_success:
            try:
                access_token = str(body["access_token"])
                expires_in = int(body["expires_in"])
            except (KeyError, TypeError, ValueError):
                raise _malformed(OAUTH_PROVIDER, "token refresh") from None
            return TokenGrant(
                access_token=access_token,
                expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
                refresh_token=str(body.get("refresh_token") or refresh_token),
                scope=str(body.get("scope", "")),
            )
        raise self._error(response, body)

    @staticmethod
    def _error(response: httpx.Response, body: dict[str, Any]) -> ProviderError:
        status = response.status_code
        raw_code = body.get("error")
        # Only a well-formed OAuth error code goes into the message, never server free text.
        code = raw_code if isinstance(raw_code, str) and _OAUTH_CODE.match(raw_code) else None
        message = f"token refresh rejected: {code}" if code else "token refresh failed"
        if code == "invalid_grant":
            return ReauthRequired(OAUTH_PROVIDER, message, status_code=status)
        if code == "invalid_client":
            return PermanentProviderError(
                OAUTH_PROVIDER, message, status_code=status, error_type=AUTHENTICATION_FAILED
            )
        if code in ("invalid_request", "unauthorized_client", "unsupported_grant_type"):
            return PermanentProviderError(
                OAUTH_PROVIDER, message, status_code=status, error_type=REQUEST_REJECTED
            )
        return status_error(OAUTH_PROVIDER, status, message, response.headers.get("Retry-After"))


def _epoch_ms(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


class GmailClient:
    """Gmail API v1 for the signed-in user (``users/me``); the access token is passed per call."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + GMAIL_USER_PATH

    async def list_messages(
        self,
        token: str,
        *,
        page_token: str | None = None,
        max_results: int = MAX_PAGE_SIZE,
        query: str | None = None,
    ) -> MessagePage:
        params: dict[str, str | int] = {"maxResults": min(max(max_results, 1), MAX_PAGE_SIZE)}
        if page_token:
            params["pageToken"] = page_token
        if query:
            params["q"] = query
        body = await self._call("GET", "/messages", token, "messages.list", params=params)
        try:
            return MessagePage(
                ids=[str(item["id"]) for item in body.get("messages", [])],
                next_page_token=body.get("nextPageToken") or None,
                result_size_estimate=int(body.get("resultSizeEstimate", 0)),
            )
        except (KeyError, TypeError, ValueError, ValidationError):
            raise _malformed(GMAIL_PROVIDER, "messages.list") from None

    async def get_message(
        self, token: str, message_id: str, *, format: MessageFormat = "metadata"
    ) -> GmailMessage:
        params: list[tuple[str, str]] = [("format", format)]
        if format == "metadata":
            params += [("metadataHeaders", name) for name in METADATA_HEADERS]
        body = await self._call(
            "GET", f"/messages/{message_id}", token, "messages.get", params=params
        )
        wanted = {name.lower(): name for name in METADATA_HEADERS}
        try:
            headers: dict[str, str] = {}
            for header in body.get("payload", {}).get("headers", []):
                canonical = wanted.get(str(header["name"]).lower())
                if canonical and canonical not in headers:
                    headers[canonical] = str(header["value"])
            return GmailMessage(
                id=str(body["id"]),
                thread_id=str(body["threadId"]),
                label_ids=[str(label) for label in body.get("labelIds", [])],
                snippet=str(body.get("snippet", "")),
                history_id=int(body["historyId"]),
                internal_date=_epoch_ms(body["internalDate"]),
                headers=headers,
            )
        except (KeyError, TypeError, ValueError, AttributeError, ValidationError):
            raise _malformed(GMAIL_PROVIDER, "messages.get") from None

    async def list_history(
        self, token: str, start_history_id: int, *, page_token: str | None = None
    ) -> HistoryPage:
        """Message ids added since ``start_history_id``; raises CursorExpired when it is too old."""
        params: dict[str, str | int] = {
            "startHistoryId": start_history_id,
            "historyTypes": "messageAdded",
            "maxResults": MAX_PAGE_SIZE,
        }
        if page_token:
            params["pageToken"] = page_token
        body = await self._call("GET", "/history", token, "history.list", params=params)
        try:
            added: dict[str, None] = {}  # an ordered set: first appearance wins
            for record in body.get("history", []):
                for item in record.get("messagesAdded", []):
                    added.setdefault(str(item["message"]["id"]), None)
            return HistoryPage(
                added_message_ids=list(added),
                history_id=int(body["historyId"]),
                next_page_token=body.get("nextPageToken") or None,
            )
        except (KeyError, TypeError, ValueError, AttributeError, ValidationError):
            raise _malformed(GMAIL_PROVIDER, "history.list") from None

    async def get_profile(self, token: str) -> Profile:
        body = await self._call("GET", "/profile", token, "profile")
        try:
            return Profile(
                email_address=str(body["emailAddress"]),
                history_id=int(body["historyId"]),
                messages_total=int(body.get("messagesTotal", 0)),
            )
        except (KeyError, TypeError, ValueError, ValidationError):
            raise _malformed(GMAIL_PROVIDER, "profile") from None

    async def create_draft(self, token: str, *, thread_id: str | None, raw_rfc2822: bytes) -> str:
        """Store a draft (threaded when ``thread_id`` is given) and return its id."""
        message: dict[str, str] = {"raw": base64.urlsafe_b64encode(raw_rfc2822).decode("ascii")}
        if thread_id:
            message["threadId"] = thread_id
        body = await self._call(
            "POST", "/drafts", token, "drafts.create", json={"message": message}
        )
        draft_id = body.get("id")
        if not isinstance(draft_id, str) or not draft_id:
            raise _malformed(GMAIL_PROVIDER, "drafts.create")
        return draft_id

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        operation: str,
        *,
        params: Any = None,
        json: Any = None,
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method,
                self._base + path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TransportError as exc:
            raise _transport_error(GMAIL_PROVIDER, operation, exc) from exc
        if response.is_success:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise _malformed(GMAIL_PROVIDER, operation)
            return body
        raise self._error(response, token, operation)

    @staticmethod
    def _error(response: httpx.Response, token: str, operation: str) -> Exception:
        status = response.status_code
        error = _json_object(response).get("error")
        error = error if isinstance(error, dict) else {}
        reasons = [
            str(item.get("reason"))
            for item in error.get("errors", [])
            if isinstance(item, dict) and item.get("reason")
        ]
        text = str(error.get("message", ""))[:MAX_SERVER_TEXT]
        if token:
            text = text.replace(token, "***")
        message = f"{operation} failed" + (f" ({', '.join(reasons)})" if reasons else "")
        if text:
            message += f": {text}"
        retry_after = response.headers.get("Retry-After")
        if status == 403 and RATE_LIMIT_REASONS.intersection(reasons):
            return TransientProviderError(
                GMAIL_PROVIDER,
                message,
                status_code=status,
                retry_after=parse_retry_after(retry_after),
                error_type=RATE_LIMITED,
            )
        if status == 404 and operation == "history.list":
            # The start id is older than Gmail keeps: the caller falls back to a full sync.
            return CursorExpired(f"{GMAIL_PROVIDER}: {message}")
        # 401 arrives here after the caller already refreshed once: AuthenticationFailed.
        return status_error(GMAIL_PROVIDER, status, message, retry_after)


def build_reply_mime(
    *, to: str, subject: str, in_reply_to: str | None, references: str | None, body: str
) -> bytes:
    """An RFC 2822 reply: one ``Re:`` prefix, and threading headers when the parent is known."""
    msg = EmailMessage(policy=SMTP)
    msg["To"] = to
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    # References is the parent's References followed by the parent's Message-ID (RFC 5322 3.6.4).
    chain = (references or "").split()
    if in_reply_to and in_reply_to not in chain:
        chain.append(in_reply_to)
    if chain:
        msg["References"] = " ".join(chain)
    msg.set_content(body)
    return msg.as_bytes()


__all__ = [
    "GmailClient",
    "GmailMessage",
    "GoogleOAuth",
    "HistoryPage",
    "MessagePage",
    "Profile",
    "TokenGrant",
    "build_reply_mime",
]
