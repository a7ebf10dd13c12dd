"""A loopback Google OAuth + Gmail API v1 emulator (providers.md sections 1 and 2).

State lives in dicts and append-only lists so paging a 20,000-message mailbox and fetching
each message costs O(page) per request: message listing walks the append order backwards
(newest first) from an index carried in the page token, and history paging bisects the log.

Fault route names: "token", "messages.list", "messages.get", "history.list", "drafts.create",
"profile". A fault with ``status < 400`` only delays; otherwise its status (and body, or a
Google-shaped default) is the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Fault, Faults, serve

DEFAULT_CLIENT_ID = "emulator-client.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "emulator-secret"
DEFAULT_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
ACCESS_TOKEN_TTL_S = 3599
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
# Seeded mail: every VIP_EVERY-th message comes from one of these senders, in turn.
VIP_SENDERS = ("ceo@bigclient.example", "founder@vip.example")
VIP_EVERY = 7
MESSAGES_PER_THREAD = 3
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)

_STATUS_NAMES = {
    400: ("INVALID_ARGUMENT", "badRequest"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "forbidden"),
    404: ("NOT_FOUND", "notFound"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
}


def google_error(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """Google's JSON error body: ``{"error": {code, message, errors: [...], status}}``."""
    name, default_reason = _STATUS_NAMES.get(status, ("UNKNOWN", "unknown"))
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [
                {"domain": "global", "reason": reason or default_reason, "message": message}
            ],
            "status": name,
        }
    }


def _page_token(index: int) -> str:
    return base64.urlsafe_b64encode(f"o:{index}".encode()).decode("ascii")


def _page_index(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, ValueError, UnicodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "o" and number.isdigit() else None


@dataclass
class EmuMessage:
    id: str
    thread_id: str
    label_ids: list[str]
    snippet: str
    internal_date: datetime
    headers: dict[str, str]
    history_id: int
    body: str = ""

    def sender(self) -> str:
        return self.headers.get("From", "")


@dataclass
class HistoryRecord:
    id: int
    message_id: str


@dataclass
class Mailbox:
    email: str
    messages: dict[str, EmuMessage] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # append order, oldest first
    history: list[HistoryRecord] = field(default_factory=list)  # increasing ids
    history_ids: list[int] = field(default_factory=list)  # parallel to history, for bisect
    threads: set[str] = field(default_factory=set)


@dataclass
class RefreshGrant:
    email: str
    client_id: str
    revoked: bool = False


@dataclass
class AccessGrant:
    email: str
    expires_at: datetime


@dataclass
class StoredDraft:
    id: str
    email: str
    thread_id: str | None
    raw: bytes


class GoogleState:
    """Everything the emulator knows; tests seed and inspect it directly."""

    def __init__(self, clients: dict[str, str] | None = None) -> None:
        self.clients: dict[str, str] = (
            dict(clients) if clients is not None else {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        )
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.access_tokens: dict[str, AccessGrant] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.drafts: list[StoredDraft] = []
        self.faults = Faults()
        # Requests per route name, for tests that check what a client asked for.
        self.calls: Counter[str] = Counter()
        # One counter for all mailboxes keeps each mailbox's history ids increasing.
        self.history_id = 1000
        self.min_history_id = 0
        self._serial = 0

    def mailbox(self, email: str) -> Mailbox:
        box = self.mailboxes.get(email)
        if box is None:
            box = self.mailboxes[email] = Mailbox(email=email)
        return box

    def issue_tokens(
        self, email: str, *, client_id: str | None = None, access_ttl_s: float = ACCESS_TOKEN_TTL_S
    ) -> tuple[str, str]:
        """A fresh (access, refresh) pair for ``email`` (its mailbox is created if missing)."""
        self.mailbox(email)
        refresh = "1//emu-" + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = RefreshGrant(
            email=email, client_id=client_id or next(iter(self.clients), "")
        )
        return self.mint_access_token(email, access_ttl_s), refresh

    def mint_access_token(self, email: str, ttl_s: float) -> str:
        token = "ya29.emu-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = AccessGrant(
            email=email, expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s)
        )
        return token

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens[refresh_token].revoked = True

    def expire_access_token(self, access_token: str) -> None:
        self.access_tokens[access_token].expires_at = datetime.now(UTC) - timedelta(seconds=1)

    def expire_history(self, before_id: int) -> None:
        """history.list answers 404 for any startHistoryId below ``before_id``."""
        self.min_history_id = before_id

    def seed_mailbox(
        self,
        email: str,
        n_messages: int,
        *,
        start: datetime = DEFAULT_START,
        important_every: int = 0,
    ) -> list[str]:
        """Append ``n_messages`` deterministic messages, one minute apart; return their ids.

        Message ``n`` (counted per mailbox from 0) is IMPORTANT when ``important_every`` divides
        it, and comes from a VIP_SENDERS address when VIP_EVERY divides it.
        """
        box = self.mailbox(email)
        ids = []
        for _ in range(n_messages):
            n = len(box.order)
            if n % VIP_EVERY == 0:
                sender = VIP_SENDERS[(n // VIP_EVERY) % len(VIP_SENDERS)]
            else:
                sender = f"sender{n % 50}@example.com"
            labels = ["INBOX"] + (["UNREAD"] if n % 2 else [])
            if important_every and n % important_every == 0:
                labels.append("IMPORTANT")
            thread_root = n - n % MESSAGES_PER_THREAD
            msg = self.add_message(
                email,
                sender=sender,
                subject=f"Message {n} for {email}",
                body=f"Hello, this is message {n}.",
                labels=labels,
                internal_date=start + timedelta(minutes=n),
                thread_id=box.order[thread_root] if thread_root < n else None,
            )
            ids.append(msg.id)
        return ids

    def add_message(
        self,
        email: str,
        *,
        sender: str = "someone@example.com",
        subject: str = "Hello",
        body: str = "Hello there.",
        labels: list[str] | None = None,
        internal_date: datetime | None = None,
        thread_id: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> EmuMessage:
        """Deliver a message and record a messageAdded history entry for it."""
        box = self.mailbox(email)
        self._serial += 1
        self.history_id += 1
        digest = hashlib.sha256(f"{email}/{self._serial}".encode()).hexdigest()
        msg_id = digest[:16]
        when = internal_date or datetime.now(UTC)
        headers = {
            "From": sender,
            "To": email,
            "Subject": subject,
            "Date": format_datetime(when),
            "Message-ID": f"<{digest[:24]}@mail.emulator.example>",
            **(extra_headers or {}),
        }
        msg = EmuMessage(
            id=msg_id,
            thread_id=thread_id or msg_id,
            label_ids=list(labels if labels is not None else ["INBOX", "UNREAD"]),
            snippet=body[:100],
            internal_date=when,
            headers=headers,
            history_id=self.history_id,
            body=body,
        )
        box.messages[msg_id] = msg
        box.order.append(msg_id)
        box.threads.add(msg.thread_id)
        box.history.append(HistoryRecord(id=self.history_id, message_id=msg_id))
        box.history_ids.append(self.history_id)
        return msg

    def drafts_for(self, email: str) -> list[StoredDraft]:
        return [draft for draft in self.drafts if draft.email == email]


def _message_json(msg: EmuMessage, fmt: str, wanted: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": msg.id,
        "threadId": msg.thread_id,
        "labelIds": msg.label_ids,
        "snippet": msg.snippet,
        "historyId": str(msg.history_id),
        "internalDate": str(int(msg.internal_date.timestamp() * 1000)),
        "sizeEstimate": len(msg.body) + sum(len(k) + len(v) for k, v in msg.headers.items()),
    }
    if fmt == "minimal":
        return out
    headers = [{"name": k, "value": v} for k, v in msg.headers.items()]
    if fmt == "metadata":
        if wanted:
            lowered = {name.lower() for name in wanted}
            headers = [h for h in headers if h["name"].lower() in lowered]
        out["payload"] = {"partId": "", "mimeType": "text/plain", "headers": headers}
        return out
    data = base64.urlsafe_b64encode(msg.body.encode()).decode("ascii")
    out["payload"] = {
        "partId": "",
        "mimeType": "text/plain",
        "filename": "",
        "headers": headers,
        "body": {"size": len(msg.body.encode()), "data": data},
    }
    return out


def _page_size(raw: str | None, default: int = DEFAULT_PAGE_SIZE) -> int | None:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        return None
    return min(int(raw), MAX_PAGE_SIZE)


def _matches(msg: EmuMessage, terms: list[str]) -> bool:
    """The small subset of Gmail search the emulator understands: from:, label:, is:."""
    for term in terms:
        key, _, value = term.partition(":")
        value = value.lower()
        if key == "from" and value not in msg.sender().lower():
            return False
        if key in ("label", "is") and value.upper() not in msg.label_ids:
            return False
    return True


def create_app(state: GoogleState) -> FastAPI:
    """The emulator app serving ``state``."""
    app = FastAPI(title="Google emulator", openapi_url=None, docs_url=None, redoc_url=None)

    async def fault_response(route: str, *, oauth: bool = False) -> Response | None:
        state.calls[route] += 1
        fault: Fault | None = state.faults.next(route)
        if fault is None:
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status < 400:
            return None
        if fault.body is not None:
            body = fault.body
        elif oauth:
            body = {"error": "server_error", "error_description": "Injected fault."}
        else:
            body = google_error(fault.status, "Injected fault.")
        return JSONResponse(body, status_code=fault.status, headers=fault.headers)

    def gmail_error(status: int, message: str, reason: str | None = None) -> JSONResponse:
        return JSONResponse(google_error(status, message, reason), status_code=status)

    def authorize(request: Request) -> Mailbox | JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = state.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires_at <= datetime.now(UTC):
            return gmail_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token,"
                " login cookie or other valid authentication credential.",
                "authError",
            )
        return state.mailbox(grant.email)

    def oauth_error(status: int, code: str, description: str) -> JSONResponse:
        return JSONResponse({"error": code, "error_description": description}, status_code=status)

    @app.post("/token")
    async def token(request: Request) -> Response:
        if (fault := await fault_response("token", oauth=True)) is not None:
            return fault
        # parse_qsl, not request.form(): the token endpoint is urlencoded only, and this keeps
        # python-multipart out of the dependencies.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        client_id = form.get("client_id", "")
        secret = state.clients.get(client_id)
        if secret is None or secret != form.get("client_secret"):
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("grant_type") != "refresh_token":
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        refresh = form.get("refresh_token", "")
        if not refresh:
            return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        grant = state.refresh_tokens.get(refresh)
        if grant is None or grant.revoked or grant.client_id != client_id:
            return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return JSONResponse(
            {
                "access_token": state.mint_access_token(grant.email, ACCESS_TOKEN_TTL_S),
                "expires_in": ACCESS_TOKEN_TTL_S,
                "scope": DEFAULT_SCOPE,
                "token_type": "Bearer",
            }
        )

    @app.get("/gmail/v1/users/me/messages")
    async def list_messages(request: Request) -> Response:
        if (fault := await fault_response("messages.list")) is not None:
            return fault
        box = authorize(request)
        if isinstance(box, JSONResponse):
            return box
        params = request.query_params
        size = _page_size(params.get("maxResults"))
        if size is None:
            return gmail_error(400, "Invalid maxResults", "invalidArgument")
        # The token is an index into the append order: messages that arrive while a client
        # pages land above it, so a listing never repeats or skips an id.
        hi = len(box.order)
        if raw_token := params.get("pageToken"):
            parsed = _page_index(raw_token)
            if parsed is None or parsed > hi:
                return gmail_error(400, "Invalid pageToken", "invalidArgument")
            hi = parsed
        terms = params.get("q", "").split()
        ids: list[str] = []
        index = hi
        while index > 0 and len(ids) < size:
            index -= 1
            msg_id = box.order[index]
            if not terms or _matches(box.messages[msg_id], terms):
                ids.append(msg_id)
        body: dict[str, Any] = {
            "messages": [{"id": i, "threadId": box.messages[i].thread_id} for i in ids],
            "resultSizeEstimate": len(box.order) if not terms else len(ids),
        }
        if index > 0:
            body["nextPageToken"] = _page_token(index)
        if not ids:
            del body["messages"]  # Gmail omits the field on an empty result
        return JSONResponse(body)

    @app.get("/gmail/v1/users/me/messages/{message_id}")
    async def get_message(message_id: str, request: Request) -> Response:
        if (fault := await fault_response("messages.get")) is not None:
            return fault
        box = authorize(request)
        if isinstance(box, JSONResponse):
            return box
        fmt = request.query_params.get("format", "full")
        if fmt not in ("minimal", "metadata", "full"):
            return gmail_error(400, f"Unsupported format: {fmt}", "invalidArgument")
        msg = box.messages.get(message_id)
        if msg is None:
            return gmail_error(404, "Requested entity was not found.", "notFound")
        wanted = request.query_params.getlist("metadataHeaders")
        return JSONResponse(_message_json(msg, fmt, wanted))

    @app.get("/gmail/v1/users/me/history")
    async def list_history(request: Request) -> Response:
        if (fault := await fault_response("history.list")) is not None:
            return fault
        box = authorize(request)
        if isinstance(box, JSONResponse):
            return box
        params = request.query_params
        start = params.get("startHistoryId", "")
        size = _page_size(params.get("maxResults"))
        if not start.isdigit() or size is None:
            return gmail_error(400, "Invalid startHistoryId or maxResults", "invalidArgument")
        if int(start) < state.min_history_id:
            return gmail_error(404, "Requested entity was not found.", "notFound")
        first = bisect.bisect_right(box.history_ids, int(start))
        if raw_token := params.get("pageToken"):
            parsed = _page_index(raw_token)
            if parsed is None or parsed > len(box.history):
                return gmail_error(400, "Invalid pageToken", "invalidArgument")
            first = parsed
        types = params.getlist("historyTypes")
        records = box.history[first : first + size] if not types or "messageAdded" in types else []
        history = []
        for record in records:
            msg = box.messages[record.message_id]
            ref = {"id": msg.id, "threadId": msg.thread_id}
            history.append(
                {
                    "id": str(record.id),
                    "messages": [ref],
                    "messagesAdded": [{"message": {**ref, "labelIds": msg.label_ids}}],
                }
            )
        body: dict[str, Any] = {"historyId": str(state.history_id)}
        if history:
            body["history"] = history
        if records and first + size < len(box.history):
            body["nextPageToken"] = _page_token(first + size)
        return JSONResponse(body)

    @app.get("/gmail/v1/users/me/profile")
    async def profile(request: Request) -> Response:
        if (fault := await fault_response("profile")) is not None:
            return fault
        box = authorize(request)
        if isinstance(box, JSONResponse):
            return box
        return JSONResponse(
            {
                "emailAddress": box.email,
                "messagesTotal": len(box.messages),
                "threadsTotal": len(box.threads),
                "historyId": str(state.history_id),
            }
        )

    @app.post("/gmail/v1/users/me/drafts")
    async def create_draft(request: Request) -> Response:
        if (fault := await fault_response("drafts.create")) is not None:
            return fault
        box = authorize(request)
        if isinstance(box, JSONResponse):
            return box
        try:
            payload = await request.json()
            message = payload["message"]
            raw = base64.urlsafe_b64decode(str(message["raw"]).encode("ascii"))
            thread_id = message.get("threadId")
        except (ValueError, KeyError, TypeError, binascii.Error):
            return gmail_error(400, "Invalid draft: message.raw is required", "invalidArgument")
        if thread_id is not None and thread_id not in box.threads:
            return gmail_error(404, "Requested entity was not found.", "notFound")
        draft = StoredDraft(
            id="r" + secrets.token_hex(8), email=box.email, thread_id=thread_id, raw=raw
        )
        state.drafts.append(draft)
        message_id = secrets.token_hex(8)
        return JSONResponse(
            {
                "id": draft.id,
                "message": {
                    "id": message_id,
                    "threadId": thread_id or message_id,
                    "labelIds": ["DRAFT"],
                },
            }
        )

    return app


async def _run(args: argparse.Namespace) -> None:
    state = GoogleState({args.client_id: args.client_secret})
    state.seed_mailbox(args.seed_email, args.messages, important_every=args.important_every)
    access, refresh = state.issue_tokens(args.seed_email)
    async with serve(create_app(state), port=args.port) as url:
        print(f"GOOGLE_OAUTH_TOKEN_URL={url}/token", flush=True)
        print(f"GMAIL_API_BASE_URL={url}", flush=True)
        print(f"GOOGLE_CLIENT_ID={args.client_id}", flush=True)
        print(f"GOOGLE_CLIENT_SECRET={args.client_secret}", flush=True)
        print(f"access_token={access}", flush=True)
        print(f"refresh_token={refresh}", flush=True)
        await asyncio.Event().wait()  # serve until interrupted


def main(argv: list[str] | None = None) -> None:
    """Serve a seeded emulator for the demo and print the tokens it issued."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed-email", default="demo@example.com")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--important-every", type=int, default=5)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
