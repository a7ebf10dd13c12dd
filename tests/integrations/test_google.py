"""The Google OAuth and Gmail clients against the loopback emulator, over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import httpx
import pytest

from core.errors import AUTHENTICATION_FAILED, RESOURCE_NOT_FOUND
from emulators.google import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    VIP_SENDERS,
    GoogleState,
    create_app,
)
from emulators.server import Fault, serve
from integrations.errors import (
    PERMISSION_DENIED,
    RATE_LIMITED,
    REAUTH_REQUIRED,
    CursorExpired,
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
    TransientProviderError,
)
from integrations.google import GmailClient, GoogleOAuth, build_reply_mime

EMAIL = "user@example.com"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Env:
    state: GoogleState
    oauth: GoogleOAuth
    gmail: GmailClient
    access: str
    refresh: str
    base_url: str


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    state = GoogleState()
    access, refresh = state.issue_tokens(EMAIL)
    async with serve(create_app(state)) as url, httpx.AsyncClient(timeout=10.0) as http:
        yield Env(
            state=state,
            oauth=GoogleOAuth(http, f"{url}/token", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            gmail=GmailClient(http, url),
            access=access,
            refresh=refresh,
            base_url=url,
        )


def assert_no_token(exc: BaseException, *tokens: str) -> None:
    for token in tokens:
        assert token not in str(exc)
        assert token not in repr(exc)


async def test_refresh_returns_new_access_token_and_keeps_refresh_token(env: Env):
    before = datetime.now(UTC)
    grant = await env.oauth.refresh(env.refresh)
    assert grant.access_token != env.access
    assert grant.refresh_token == env.refresh
    assert grant.expires_at.tzinfo is not None
    assert before + timedelta(seconds=3500) < grant.expires_at < before + timedelta(seconds=3700)
    assert "gmail" in grant.scope
    # The new token works against the Gmail API.
    profile = await env.gmail.get_profile(grant.access_token)
    assert profile.email_address == EMAIL


async def test_unknown_refresh_token_is_reauth_required(env: Env):
    with pytest.raises(ReauthRequired) as info:
        await env.oauth.refresh("1//not-a-token")
    assert info.value.error_type == REAUTH_REQUIRED
    assert info.value.status_code == 400
    assert not info.value.retryable
    assert_no_token(info.value, "1//not-a-token")


async def test_revoked_refresh_token_is_reauth_required(env: Env):
    env.state.revoke(env.refresh)
    with pytest.raises(ReauthRequired) as info:
        await env.oauth.refresh(env.refresh)
    assert_no_token(info.value, env.refresh)


async def test_wrong_client_secret_is_authentication_failed(env: Env):
    async with httpx.AsyncClient() as http:
        oauth = GoogleOAuth(http, f"{env.base_url}/token", DEFAULT_CLIENT_ID, "wrong-secret")
        with pytest.raises(PermanentProviderError) as info:
            await oauth.refresh(env.refresh)
    assert not isinstance(info.value, ReauthRequired)
    assert info.value.error_type == AUTHENTICATION_FAILED
    assert info.value.status_code == 401
    assert_no_token(info.value, env.refresh, "wrong-secret")


async def test_token_endpoint_5xx_is_transient(env: Env):
    env.state.faults.add("token", Fault(status=503))
    with pytest.raises(TransientProviderError) as info:
        await env.oauth.refresh(env.refresh)
    assert info.value.status_code == 503


async def test_list_pagination_yields_every_id_once(env: Env):
    seeded = env.state.seed_mailbox(EMAIL, 1234, start=START)
    seen: list[str] = []
    page_token: str | None = None
    pages = 0
    while True:
        page = await env.gmail.list_messages(env.access, page_token=page_token)
        pages += 1
        assert page.result_size_estimate == 1234
        seen.extend(page.ids)
        page_token = page.next_page_token
        if page_token is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 1234
    assert set(seen) == set(seeded)
    assert seen[0] == seeded[-1]  # newest first, as Gmail lists


async def test_list_query_filters_by_sender(env: Env):
    env.state.seed_mailbox(EMAIL, 50, start=START)
    page = await env.gmail.list_messages(env.access, query=f"from:{VIP_SENDERS[0]}")
    assert page.ids
    for message_id in page.ids:
        message = await env.gmail.get_message(env.access, message_id)
        assert VIP_SENDERS[0] in message.headers["From"]


async def test_get_message_fields(env: Env):
    ids = env.state.seed_mailbox(EMAIL, 6, start=START, important_every=3)
    message = await env.gmail.get_message(env.access, ids[3])
    stored = env.state.mailboxes[EMAIL].messages[ids[3]]
    assert message.id == ids[3]
    assert message.thread_id == ids[3]  # message 3 starts the second thread of three
    assert "IMPORTANT" in message.label_ids
    assert message.snippet == stored.snippet
    assert message.history_id == stored.history_id
    assert message.internal_date == START + timedelta(minutes=3)
    assert set(message.headers) == {"From", "To", "Subject", "Date", "Message-ID"}
    assert message.headers["To"] == EMAIL
    assert message.headers["Message-ID"] == stored.headers["Message-ID"]
    second = await env.gmail.get_message(env.access, ids[4], format="full")
    assert second.thread_id == ids[3]
    assert "IMPORTANT" not in second.label_ids


async def test_get_unknown_message_is_not_found(env: Env):
    with pytest.raises(PermanentProviderError) as info:
        await env.gmail.get_message(env.access, "0000000000000000")
    assert info.value.error_type == RESOURCE_NOT_FOUND


async def test_history_after_adding_messages(env: Env):
    env.state.seed_mailbox(EMAIL, 10, start=START)
    baseline = (await env.gmail.get_profile(env.access)).history_id
    added = [env.state.add_message(EMAIL, subject=f"new {i}").id for i in range(3)]
    page = await env.gmail.list_history(env.access, baseline)
    assert page.added_message_ids == added
    assert page.history_id > baseline
    assert page.next_page_token is None
    again = await env.gmail.list_history(env.access, page.history_id)
    assert again.added_message_ids == []


async def test_history_pages_through_a_long_log(env: Env):
    baseline = (await env.gmail.get_profile(env.access)).history_id
    added = env.state.seed_mailbox(EMAIL, 1201, start=START)
    collected: list[str] = []
    page_token: str | None = None
    while True:
        page = await env.gmail.list_history(env.access, baseline, page_token=page_token)
        collected.extend(page.added_message_ids)
        if (page_token := page.next_page_token) is None:
            break
    assert collected == added


async def test_expired_history_id_is_cursor_expired(env: Env):
    env.state.seed_mailbox(EMAIL, 5, start=START)
    old = (await env.gmail.get_profile(env.access)).history_id
    env.state.add_message(EMAIL)
    env.state.expire_history(old + 1)
    with pytest.raises(CursorExpired) as info:
        await env.gmail.list_history(env.access, old)
    assert_no_token(info.value, env.access)


async def test_429_with_retry_after_is_transient(env: Env):
    env.state.faults.add("messages.list", Fault(status=429, headers={"Retry-After": "17"}))
    with pytest.raises(TransientProviderError) as info:
        await env.gmail.list_messages(env.access)
    assert info.value.retry_after == 17.0
    assert info.value.error_type == RATE_LIMITED
    assert info.value.status_code == 429


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
async def test_403_rate_limit_reason_is_transient(env: Env, reason: str):
    body = {
        "error": {
            "code": 403,
            "message": "Quota exceeded",
            "errors": [{"domain": "usageLimits", "reason": reason, "message": "Quota exceeded"}],
            "status": "PERMISSION_DENIED",
        }
    }
    env.state.faults.add("messages.get", Fault(status=403, body=body))
    with pytest.raises(TransientProviderError) as info:
        await env.gmail.get_message(env.access, "whatever")
    assert info.value.error_type == RATE_LIMITED
    assert info.value.status_code == 403


async def test_403_other_reason_is_permanent(env: Env):
    body = {
        "error": {
            "code": 403,
            "message": "Delegation denied",
            "errors": [{"domain": "global", "reason": "domainPolicy", "message": "denied"}],
            "status": "PERMISSION_DENIED",
        }
    }
    env.state.faults.add("profile", Fault(status=403, body=body))
    with pytest.raises(PermanentProviderError) as info:
        await env.gmail.get_profile(env.access)
    assert info.value.error_type == PERMISSION_DENIED
    assert not info.value.retryable


async def test_500_is_transient(env: Env):
    env.state.faults.add("history.list", Fault(status=500))
    with pytest.raises(TransientProviderError) as info:
        await env.gmail.list_history(env.access, 1)
    assert info.value.status_code == 500


async def test_slow_response_beyond_client_timeout_is_transient(env: Env):
    # This client times out after 0.3 s; the emulator holds the answer 1 s.
    env.state.faults.add("messages.list", Fault(status=200, delay_s=1.0))
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(TransientProviderError) as info:
            await GmailClient(http, env.base_url).list_messages(env.access)
    assert "timed out" in str(info.value)
    assert_no_token(info.value, env.access)


async def test_connection_refused_is_transient():
    async with httpx.AsyncClient(timeout=0.3) as http:
        # Port 9 (discard) on loopback has no listener in the test environment.
        gmail = GmailClient(http, "http://127.0.0.1:9")
        with pytest.raises(TransientProviderError):
            await gmail.get_profile("ya29.secret")


async def test_expired_access_token_is_authentication_failed(env: Env):
    env.state.expire_access_token(env.access)
    with pytest.raises(PermanentProviderError) as info:
        await env.gmail.list_messages(env.access)
    assert info.value.error_type == AUTHENTICATION_FAILED
    assert info.value.status_code == 401
    assert_no_token(info.value, env.access)


async def test_create_draft_stores_threaded_reply(env: Env):
    ids = env.state.seed_mailbox(EMAIL, 3, start=START)
    parent = await env.gmail.get_message(env.access, ids[0])
    raw = build_reply_mime(
        to=parent.headers["From"],
        subject=parent.headers["Subject"],
        in_reply_to=parent.headers["Message-ID"],
        references=None,
        body="Thanks, will do.",
    )
    draft_id = await env.gmail.create_draft(env.access, thread_id=parent.thread_id, raw_rfc2822=raw)
    [draft] = env.state.drafts_for(EMAIL)
    assert draft.id == draft_id
    assert draft.thread_id == parent.thread_id
    stored = message_from_bytes(draft.raw)
    assert stored["In-Reply-To"] == parent.headers["Message-ID"]
    assert stored["References"] == parent.headers["Message-ID"]
    assert stored["Subject"] == f"Re: {parent.headers['Subject']}"
    assert "Thanks, will do." in stored.get_payload()


async def test_create_draft_in_unknown_thread_is_not_found(env: Env):
    with pytest.raises(PermanentProviderError) as info:
        await env.gmail.create_draft(env.access, thread_id="nope", raw_rfc2822=b"Subject: x\r\n")
    assert info.value.error_type == RESOURCE_NOT_FOUND
    assert env.state.drafts == []


def test_reply_mime_prefixes_re_once_and_extends_references():
    raw = build_reply_mime(
        to="a@example.com",
        subject="RE: Budget",
        in_reply_to="<p2@x>",
        references="<p1@x>",
        body="ok",
    )
    parsed = message_from_bytes(raw)
    assert parsed["Subject"] == "RE: Budget"
    assert parsed["References"] == "<p1@x> <p2@x>"
    assert b"\r\n" in raw
    plain = message_from_bytes(
        build_reply_mime(
            to="a@example.com", subject="Hi", in_reply_to=None, references=None, body="x"
        )
    )
    assert plain["Subject"] == "Re: Hi"
    assert plain["In-Reply-To"] is None and plain["References"] is None


async def test_draft_raw_is_base64url_on_the_wire():
    # Unit level: the exact request body, including the base64url alphabet for bytes > 0x7f.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "r1", "message": {"id": "m1"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        gmail = GmailClient(http, "https://gmail.test/")
        raw = bytes([0xFB, 0xFF, 0xFE]) * 4
        assert await gmail.create_draft("tok", thread_id=None, raw_rfc2822=raw) == "r1"
    [request] = seen
    assert request.url.path == "/gmail/v1/users/me/drafts"
    assert request.headers["Authorization"] == "Bearer tok"
    body = request.read().decode()
    encoded = base64.urlsafe_b64encode(raw).decode()
    assert "-" in encoded or "_" in encoded
    assert f'"raw":"{encoded}"' in body.replace(" ", "")
    assert "threadId" not in body


async def test_error_text_echoing_the_token_is_scrubbed():
    token = "ya29.very-secret"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": 400, "message": f"bad {token}"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ProviderError) as info:
            await GmailClient(http, "https://gmail.test").get_profile(token)
    assert_no_token(info.value, token)
