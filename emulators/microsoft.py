"""An in-memory Microsoft identity platform token endpoint and Graph v1.0 mail API.

Routes: ``POST /oauth2/v2.0/token`` and, under ``/v1.0``, the inbox listing, inbox delta and
``createReply``. Paging is cursor based (a message key or a change-log position inside an
opaque token), so each request costs O(log n + page size) however large the mailbox is.

    python -m emulators.microsoft --port 8025 --seed-user demo@example.com --messages 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import secrets
import uuid
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Faults

TOKEN_PATH = "/oauth2/v2.0/token"
GRAPH_PREFIX = "/v1.0"
DEFAULT_CLIENT_ID = "emulator-client"
DEFAULT_CLIENT_SECRET = "emulator-secret"
DEFAULT_PAGE_SIZE = 10  # Graph's default for both $top and odata.maxpagesize
MAX_PAGE_SIZE = 1000

Importance = Literal["low", "normal", "high"]
# (receivedDateTime in microseconds, insertion sequence): unique and totally ordered.
Key = tuple[int, int]

_GRAPH_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    410: "SyncStateNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceNotAvailable",
    504: "GatewayTimeout",
    509: "BandwidthLimitExceeded",
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micros(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def graph_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """A Graph error body, shaped as learn.microsoft.com/graph/errors documents it."""
    return {
        "error": {
            "code": code or _GRAPH_CODES.get(status, "UnknownError"),
            "message": message,
            "innerError": {
                "date": _iso(datetime.now(UTC)),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }


def oauth_error(error: str, description: str, aadsts: int) -> dict[str, Any]:
    """An identity platform error body."""
    return {
        "error": error,
        "error_description": f"AADSTS{aadsts}: {description}",
        "error_codes": [aadsts],
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
        "error_uri": "https://login.microsoftonline.com/error?code=" + str(aadsts),
    }


@dataclass(frozen=True)
class ReplyDraft:
    """A draft created by ``createReply``, kept for tests to inspect."""

    id: str
    user: str
    message_id: str
    comment: str


@dataclass
class Mailbox:
    """One user's inbox: messages by id, their sorted keys, and an append-only change log."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)  # ascending
    ids_by_key: dict[Key, str] = field(default_factory=dict)
    key_by_id: dict[str, Key] = field(default_factory=dict)
    # (message id, None) for an upsert, (message id, reason) for a removal.
    changes: list[tuple[str, str | None]] = field(default_factory=list)
    # Delta tokens carry the epoch they were issued in; older epochs answer 410.
    delta_epoch: int = 0


@dataclass
class MicrosoftState:
    """Everything the emulator knows; tests seed it, fault it and read it back."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    access_token_ttl: timedelta = timedelta(hours=1)
    faults: Faults = field(default_factory=Faults)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    access_tokens: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    drafts: list[ReplyDraft] = field(default_factory=list)
    _sequence: int = 0

    def mailbox(self, user: str) -> Mailbox:
        return self.mailboxes.setdefault(user, Mailbox())

    def issue_tokens(self, user: str) -> tuple[str, str]:
        """A fresh (access token, refresh token) pair for ``user``."""
        access = "eyJ0eXAi." + secrets.token_urlsafe(24)
        refresh = "M.C5." + secrets.token_urlsafe(32)
        self.access_tokens[access] = (user, datetime.now(UTC) + self.access_token_ttl)
        self.refresh_tokens[refresh] = user
        self.mailbox(user)
        return access, refresh

    def revoke(self, refresh_token: str) -> None:
        """Make ``refresh_token`` answer ``invalid_grant`` (AADSTS50173)."""
        self.refresh_tokens.pop(refresh_token, None)

    def expire_access_token(self, access_token: str) -> None:
        user, _ = self.access_tokens[access_token]
        self.access_tokens[access_token] = (user, datetime.now(UTC) - timedelta(seconds=1))

    def user_for(self, access_token: str) -> str | None:
        entry = self.access_tokens.get(access_token)
        if entry is None or entry[1] <= datetime.now(UTC):
            return None
        return entry[0]

    def add_message(
        self,
        user: str,
        *,
        subject: str = "Hello",
        from_address: str = "sender@example.com",
        received_at: datetime | None = None,
        importance: Importance = "normal",
        is_read: bool = False,
        body_preview: str = "",
        conversation_id: str | None = None,
    ) -> str:
        """Deliver a message to ``user``'s inbox; its id."""
        box = self.mailbox(user)
        self._sequence += 1
        received = received_at or datetime.now(UTC)
        message_id = f"AAMkAGI2{self._sequence:010d}{secrets.token_hex(4)}="
        box.messages[message_id] = {
            "id": message_id,
            "conversationId": conversation_id or f"AAQkAGI2{self._sequence:010d}=",
            "internetMessageId": f"<{self._sequence}.{uuid.uuid4().hex}@example.com>",
            "subject": subject,
            "from": {"emailAddress": {"name": from_address.split("@")[0], "address": from_address}},
            "receivedDateTime": _iso(received),
            "importance": importance,
            "isRead": is_read,
            "bodyPreview": body_preview,
        }
        key = (_micros(received), self._sequence)
        insort(box.keys, key)  # O(log n) search; appending in time order moves nothing
        box.ids_by_key[key] = message_id
        box.key_by_id[message_id] = key
        box.changes.append((message_id, None))
        return message_id

    def seed_mailbox(
        self, user: str, n: int, *, start: datetime, high_importance_every: int = 0
    ) -> list[str]:
        """``n`` messages one minute apart from ``start``; every k-th one high importance."""
        ids = []
        for i in range(n):
            high = high_importance_every > 0 and (i + 1) % high_importance_every == 0
            ids.append(
                self.add_message(
                    user,
                    subject=f"Message {i + 1}",
                    from_address=f"sender{i % 50}@example.com",
                    received_at=start + timedelta(minutes=i),
                    importance="high" if high else "normal",
                    body_preview=f"Preview of message {i + 1}",
                )
            )
        return ids

    def remove_message(self, user: str, message_id: str, reason: str = "deleted") -> None:
        """Delete (or move out of the inbox, reason ``changed``) one message."""
        box = self.mailbox(user)
        del box.messages[message_id]
        key = box.key_by_id.pop(message_id)
        del box.ids_by_key[key]
        del box.keys[bisect_left(box.keys, key)]
        box.changes.append((message_id, reason))

    def expire_delta_links(self, user: str | None = None) -> None:
        """Every delta and delta-paging link issued so far answers 410 Gone."""
        for name, box in self.mailboxes.items():
            if user is None or name == user:
                box.delta_epoch += 1

    def drafts_for(self, message_id: str) -> list[ReplyDraft]:
        return [draft for draft in self.drafts if draft.message_id == message_id]


def _key(value: Any) -> Key:
    micros, sequence = value  # JSON turned the tuple into a list
    return (int(micros), int(sequence))


def _select(message: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None:
        return message
    return {name: message[name] for name in ["id", *fields] if name in message}


def _select_fields(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _parse_since(filter_text: str | None) -> int | None:
    """``receivedDateTime ge <ISO time>``, the one filter this emulator understands."""
    if not filter_text:
        return None
    parts = filter_text.split()
    if len(parts) != 3 or parts[0] != "receivedDateTime" or parts[1] != "ge":
        raise ValueError("only 'receivedDateTime ge <time>' is supported")
    return _micros(datetime.fromisoformat(parts[2].replace("Z", "+00:00")))


def _page_size(value: str | None) -> int:
    size = int(value) if value else DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE}")
    return size


def _max_page_size(prefer: str | None) -> int:
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "odata.maxpagesize" and value.isdigit():
            return min(max(int(value), 1), MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE


def create_app(state: MicrosoftState) -> FastAPI:
    """The emulator app serving ``state``."""
    app = FastAPI(title="Microsoft identity platform and Graph emulator")

    async def injected(route: str, *, oauth: bool = False) -> Response | None:
        fault = state.faults.next(route)
        if fault is None:
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status < 400 and fault.body is None:
            return None  # a delay-only fault: answer normally, late
        if fault.body is not None:
            body = fault.body
        elif oauth:
            body = oauth_error("temporarily_unavailable", "Injected fault.", 50196)
        else:
            body = graph_error(fault.status, "Injected fault.")
        return JSONResponse(body, status_code=fault.status, headers=fault.headers)

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            graph_error(401, "Lifetime validation failed, the token is expired."),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
        )

    def authenticate(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return state.user_for(token) if scheme.lower() == "bearer" else None

    async def signed_in(route: str, request: Request) -> tuple[str, Mailbox] | Response:
        """The signed-in user and their mailbox, or the answer instead: an injected fault
        or a 401."""
        if (fault := await injected(route)) is not None:
            return fault
        user = authenticate(request)
        return unauthorized() if user is None else (user, state.mailbox(user))

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + GRAPH_PREFIX

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        if (fault := await injected("token", oauth=True)) is not None:
            return fault
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            body = oauth_error("unsupported_grant_type", "Only refresh_token is emulated.", 70003)
            return JSONResponse(body, status_code=400)
        if form.get("client_id") != state.client_id:
            body = oauth_error("unauthorized_client", "Application not found.", 700016)
            return JSONResponse(body, status_code=400)
        if form.get("client_secret") != state.client_secret:
            body = oauth_error("invalid_client", "Invalid client secret provided.", 7000215)
            return JSONResponse(body, status_code=401)
        scope = form.get("scope", "")
        if "," in scope or "offline_access" not in scope.split():
            body = oauth_error("invalid_scope", "The provided scope is not valid.", 70011)
            return JSONResponse(body, status_code=400)
        user = state.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if user is None:
            body = oauth_error("invalid_grant", "The refresh token has been revoked.", 50173)
            return JSONResponse(body, status_code=400)
        # Rotation: the token just used is gone; only the new one works from now on.
        access, refresh = state.issue_tokens(user)
        ttl = int(state.access_token_ttl.total_seconds())
        return JSONResponse(
            {
                "token_type": "Bearer",
                "scope": scope,
                "expires_in": ttl,
                "ext_expires_in": ttl,
                "access_token": access,
                "refresh_token": refresh,
            }
        )

    @app.get(GRAPH_PREFIX + "/me/mailFolders/inbox/messages")
    async def list_messages(request: Request) -> Response:
        signed = await signed_in("messages", request)
        if isinstance(signed, Response):
            return signed
        user, box = signed
        query = request.query_params
        try:
            if "$skiptoken" in query:
                cursor = _decode(query["$skiptoken"])
                if cursor is None or cursor.get("user") != user:
                    raise ValueError("invalid $skiptoken")
                top, since, fields = cursor["top"], cursor["since"], cursor["select"]
                before: Key | None = _key(cursor["before"])
            else:
                top = _page_size(query.get("$top"))
                since = _parse_since(query.get("$filter"))
                fields, before = _select_fields(query.get("$select")), None
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse(graph_error(400, str(exc)), status_code=400)
        # Newest first, as Graph lists by default: walk the ascending keys backwards.
        stop = len(box.keys) if before is None else bisect_left(box.keys, before)
        floor = 0 if since is None else bisect_left(box.keys, (since, -1))
        start = max(floor, stop - top)
        page = box.keys[start:stop][::-1]
        body: dict[str, Any] = {
            "@odata.context": f"{base(request)}/$metadata#users('{quote(user)}')/messages",
            "value": [_select(box.messages[box.ids_by_key[key]], fields) for key in page],
        }
        if start > floor:
            token = _encode(
                {"user": user, "top": top, "since": since, "select": fields, "before": page[-1]}
            )
            body["@odata.nextLink"] = (
                f"{base(request)}/me/mailFolders/inbox/messages?$skiptoken={token}"
            )
        return JSONResponse(body)

    @app.get(GRAPH_PREFIX + "/me/mailFolders/inbox/messages/delta")
    async def delta(request: Request) -> Response:
        signed = await signed_in("delta", request)
        if isinstance(signed, Response):
            return signed
        user, box = signed
        query = request.query_params
        size = _max_page_size(request.headers.get("prefer"))
        raw_token = query.get("$skiptoken") or query.get("$deltatoken")
        if raw_token is None:
            # A new sync: enumerate the inbox as it is, then continue from the log's end.
            cursor: dict[str, Any] = {
                "user": user,
                "epoch": box.delta_epoch,
                "select": _select_fields(query.get("$select")),
                "log": len(box.changes),
                "initial": True,
                "after": None,
            }
        else:
            decoded = _decode(raw_token)
            if decoded is None or decoded.get("user") != user:
                return JSONResponse(graph_error(400, "Invalid delta token."), status_code=400)
            cursor = decoded
        if cursor["epoch"] != box.delta_epoch:
            return JSONResponse(
                graph_error(410, "The sync state is no longer valid; start a new sync."),
                status_code=410,
            )
        fields: list[str] | None = cursor["select"]
        values: list[dict[str, Any]] = []
        if cursor["initial"]:
            # Oldest first; bisect_right also steps past a cursor message deleted meanwhile.
            begin = 0 if cursor["after"] is None else bisect_right(box.keys, _key(cursor["after"]))
            page = box.keys[begin : begin + size]
            values = [_select(box.messages[box.ids_by_key[key]], fields) for key in page]
            more = begin + size < len(box.keys)
            next_cursor = {**cursor, "initial": more, "after": page[-1] if more else None}
        else:
            position: int = cursor["log"]
            for message_id, reason in box.changes[position : position + size]:
                if reason is not None:
                    values.append({"id": message_id, "@removed": {"reason": reason}})
                elif message_id in box.messages:
                    values.append(_select(box.messages[message_id], fields))
            position = min(position + size, len(box.changes))
            more = position < len(box.changes)
            next_cursor = {**cursor, "initial": False, "log": position}
        url = f"{base(request)}/me/mailFolders/inbox/messages/delta"
        body: dict[str, Any] = {
            "@odata.context": f"{base(request)}/$metadata#Collection(message)",
            "value": values,
        }
        if more:
            body["@odata.nextLink"] = f"{url}?$skiptoken={_encode(next_cursor)}"
        else:
            body["@odata.deltaLink"] = f"{url}?$deltatoken={_encode(next_cursor)}"
        return JSONResponse(body, headers={"Preference-Applied": f"odata.maxpagesize={size}"})

    @app.post(GRAPH_PREFIX + "/me/messages/{message_id}/createReply")
    async def create_reply(message_id: str, request: Request) -> Response:
        signed = await signed_in("createReply", request)
        if isinstance(signed, Response):
            return signed
        user, box = signed
        original = box.messages.get(message_id)
        if original is None:
            return JSONResponse(
                graph_error(404, "The specified object was not found in the store."),
                status_code=404,
            )
        try:
            payload = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse(graph_error(400, "Malformed JSON body."), status_code=400)
        if not isinstance(payload, dict) or ("comment" in payload and "message" in payload):
            return JSONResponse(
                graph_error(400, "Specify either comment or message, not both."), status_code=400
            )
        comment = str(payload.get("comment", ""))
        draft = ReplyDraft(
            id=f"AAMkAGDraft{uuid.uuid4().hex}=",
            user=user,
            message_id=message_id,
            comment=comment,
        )
        state.drafts.append(draft)
        body = {
            "id": draft.id,
            "subject": "RE: " + str(original["subject"]),
            "isDraft": True,
            "conversationId": original["conversationId"],
            "body": {"contentType": "html", "content": comment},
            "toRecipients": [original["from"]],
        }
        return JSONResponse(body, status_code=201)

    return app


def main(argv: list[str] | None = None) -> None:
    """Run the emulator with one seeded mailbox and print the credentials it issued."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--seed-user", default="demo@example.com")
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args(argv)
    state = MicrosoftState()
    start = datetime.now(UTC) - timedelta(minutes=args.messages)
    state.seed_mailbox(args.seed_user, args.messages, start=start, high_importance_every=10)
    access, refresh = state.issue_tokens(args.seed_user)
    base_url = f"http://127.0.0.1:{args.port}"
    print(f"MICROSOFT_OAUTH_TOKEN_URL={base_url}{TOKEN_PATH}")
    print(f"GRAPH_API_BASE_URL={base_url}{GRAPH_PREFIX}")
    print(f"MICROSOFT_CLIENT_ID={state.client_id}")
    print(f"MICROSOFT_CLIENT_SECRET={state.client_secret}")
    print(f"user={args.seed_user} messages={args.messages}")
    print(f"access_token={access}")
    print(f"refresh_token={refresh}", flush=True)
    uvicorn.run(create_app(state), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
