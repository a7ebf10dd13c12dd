"""The Microsoft token and Graph mail clients against the loopback emulator.

Transport failures that the emulator cannot produce (a refused connection, a foreign paging
link) run against an ``httpx.MockTransport``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from core.errors import AUTHENTICATION_FAILED, RESOURCE_NOT_FOUND
from emulators.microsoft import GRAPH_PREFIX, TOKEN_PATH, MicrosoftState, create_app
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
from integrations.microsoft import DeltaPage, GraphMailClient, GraphMessage, MicrosoftOAuth

USER = "ada@example.com"
START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@dataclass
class Env:
    state: MicrosoftState
    base: str
    oauth: MicrosoftOAuth
    graph: GraphMailClient
    access: str
    refresh: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.access, self.refresh, self.state.client_secret)


@pytest_asyncio.fixture
async def env() -> AsyncIterator[Env]:
    state = MicrosoftState()
    access, refresh = state.issue_tokens(USER)
    async with serve(create_app(state)) as base, httpx.AsyncClient(timeout=10.0) as http:
        yield Env(
            state=state,
            base=base,
            oauth=MicrosoftOAuth(http, base + TOKEN_PATH, state.client_id, state.client_secret),
            graph=GraphMailClient(http, base + GRAPH_PREFIX),
            access=access,
            refresh=refresh,
        )


def assert_no_secret(exc: BaseException, secrets: tuple[str, ...]) -> None:
    text = f"{exc} {exc!r} {exc.args!r}"
    for secret in secrets:
        assert secret not in text


async def drain_delta(env: Env, link: str | None = None, page_size: int = 100) -> list[DeltaPage]:
    pages = [await env.graph.delta(env.access, link=link, page_size=page_size)]
    while pages[-1].next_link is not None:
        pages.append(await env.graph.delta(env.access, link=pages[-1].next_link))
    return pages


# --- token refresh ---------------------------------------------------------------------------


async def test_refresh_rotates_and_the_old_refresh_token_needs_reauth(env: Env) -> None:
    before = datetime.now(UTC)
    grant = await env.oauth.refresh(env.refresh)

    assert grant.refresh_token not in (env.refresh, "")
    assert grant.scope == "offline_access Mail.ReadWrite"
    assert grant.expires_at > before + timedelta(minutes=59)
    assert grant.access_token not in repr(grant) and grant.refresh_token not in repr(grant)
    assert (await env.graph.list_inbox(grant.access_token)).messages == []

    with pytest.raises(ReauthRequired) as caught:
        await env.oauth.refresh(env.refresh)
    assert caught.value.error_type == REAUTH_REQUIRED
    assert "invalid_grant" in str(caught.value)
    assert_no_secret(caught.value, env.secrets)
    # The rotated token keeps working, and rotates in turn.
    assert (await env.oauth.refresh(grant.refresh_token)).refresh_token != grant.refresh_token


async def test_a_revoked_refresh_token_needs_reauth(env: Env) -> None:
    env.state.revoke(env.refresh)
    with pytest.raises(ReauthRequired):
        await env.oauth.refresh(env.refresh)


@pytest.mark.parametrize(
    ("status", "error", "expected", "retryable"),
    [
        (400, "interaction_required", ReauthRequired, False),
        (400, "consent_required", ReauthRequired, False),
        (400, "temporarily_unavailable", TransientProviderError, True),
        (503, "server_error", TransientProviderError, True),
        (401, "invalid_client", PermanentProviderError, False),
        (400, "invalid_scope", PermanentProviderError, False),
    ],
)
async def test_token_errors_are_classified(
    env: Env, status: int, error: str, expected: type[ProviderError], retryable: bool
) -> None:
    body = {"error": error, "error_description": f"AADSTS1: {env.refresh}", "error_codes": [1]}
    env.state.faults.add("token", Fault(status=status, body=body))
    with pytest.raises(ProviderError) as caught:
        await env.oauth.refresh(env.refresh)
    assert type(caught.value) is expected
    assert caught.value.retryable is retryable
    assert error in str(caught.value)
    assert_no_secret(caught.value, env.secrets)


async def test_wrong_client_secret_is_permanent_not_reauth(env: Env) -> None:
    async with httpx.AsyncClient() as http:
        oauth = MicrosoftOAuth(http, env.base + TOKEN_PATH, env.state.client_id, "wrong-secret")
        with pytest.raises(PermanentProviderError) as caught:
            await oauth.refresh(env.refresh)
    assert not isinstance(caught.value, ReauthRequired)
    assert caught.value.status_code == 401
    assert_no_secret(caught.value, (*env.secrets, "wrong-secret"))


async def test_slow_token_endpoint_is_transient(env: Env) -> None:
    env.state.faults.add("token", Fault(status=200, delay_s=1.0))
    async with httpx.AsyncClient(timeout=0.3) as http:
        oauth = MicrosoftOAuth(http, env.base + TOKEN_PATH, env.state.client_id, "s")
        with pytest.raises(TransientProviderError, match="ReadTimeout"):
            await oauth.refresh(env.refresh)


async def test_unreachable_token_endpoint_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        oauth = MicrosoftOAuth(http, "https://login.example/token", "id", "client-secret-1")
        with pytest.raises(TransientProviderError) as caught:
            await oauth.refresh("refresh-token-1")
    assert_no_secret(caught.value, ("refresh-token-1", "client-secret-1"))


# --- inbox listing ---------------------------------------------------------------------------


async def test_pagination_yields_every_message_exactly_once(env: Env) -> None:
    seeded = env.state.seed_mailbox(USER, 2345, start=START, high_importance_every=7)

    seen: list[GraphMessage] = []
    page = await env.graph.list_inbox(env.access, page_size=100)
    pages = 1
    seen.extend(page.messages)
    while page.next_link is not None:
        page = await env.graph.list_inbox(env.access, next_link=page.next_link)
        seen.extend(page.messages)
        pages += 1

    ids = [message.id for message in seen]
    assert len(ids) == len(set(ids)) == 2345
    assert set(ids) == set(seeded)
    assert pages == 24
    # Newest first, like Graph's default order.
    assert seen[0].received_at == START + timedelta(minutes=2344)
    assert sum(message.importance == "high" for message in seen) == 2345 // 7
    first = next(message for message in seen if message.id == seeded[0])
    assert first.subject == "Message 1" and first.from_address == "sender0@example.com"
    assert first.received_at.tzinfo is not None and first.conversation_id
    assert first.internet_message_id and first.body_preview == "Preview of message 1"


async def test_received_since_filters_the_listing(env: Env) -> None:
    seeded = env.state.seed_mailbox(USER, 30, start=START)
    page = await env.graph.list_inbox(
        env.access, page_size=1000, received_since=START + timedelta(minutes=20)
    )
    assert [m.id for m in page.messages] == seeded[20:][::-1]
    assert page.next_link is None


async def test_twenty_thousand_messages_in_pages_of_a_thousand(env: Env) -> None:
    env.state.seed_mailbox(USER, 20_000, start=START)
    page = await env.graph.list_inbox(env.access, page_size=1000)
    count, pages = len(page.messages), 1
    while page.next_link is not None:
        page = await env.graph.list_inbox(env.access, next_link=page.next_link)
        count, pages = count + len(page.messages), pages + 1
    assert (count, pages) == (20_000, 20)


# --- delta -----------------------------------------------------------------------------------


async def test_delta_first_pass_then_only_new_messages(env: Env) -> None:
    seeded = env.state.seed_mailbox(USER, 250, start=START)

    first = await drain_delta(env, page_size=100)
    assert [len(p.messages) for p in first] == [100, 100, 50]
    assert all(p.delta_link is None for p in first[:-1]) and first[-1].delta_link
    assert sorted(m.id for p in first for m in p.messages) == sorted(seeded)

    added = [
        env.state.add_message(USER, subject=f"new {i}", received_at=START + timedelta(days=1))
        for i in range(3)
    ]
    second = await drain_delta(env, first[-1].delta_link)
    assert [m.id for p in second for m in p.messages] == added
    assert second[-1].delta_link

    third = await drain_delta(env, second[-1].delta_link)
    assert [m for p in third for m in p.messages] == [] and third[-1].delta_link


async def test_removed_messages_appear_in_removed_ids(env: Env) -> None:
    seeded = env.state.seed_mailbox(USER, 5, start=START)
    first = await drain_delta(env)
    env.state.remove_message(USER, seeded[1])
    env.state.remove_message(USER, seeded[3], reason="changed")

    pages = await drain_delta(env, first[-1].delta_link)
    assert [i for p in pages for i in p.removed_ids] == [seeded[1], seeded[3]]
    assert [m for p in pages for m in p.messages] == []


async def test_expired_delta_link_raises_cursor_expired(env: Env) -> None:
    env.state.seed_mailbox(USER, 3, start=START)
    link = (await drain_delta(env))[-1].delta_link
    env.state.expire_delta_links()

    with pytest.raises(CursorExpired) as caught:
        await env.graph.delta(env.access, link=link)
    assert_no_secret(caught.value, env.secrets)
    # A fresh sync starts over with the whole inbox.
    assert len((await drain_delta(env))[0].messages) == 3


# --- Graph errors ----------------------------------------------------------------------------


async def test_429_with_retry_after_is_transient(env: Env) -> None:
    env.state.faults.add("messages", Fault(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(TransientProviderError) as caught:
        await env.graph.list_inbox(env.access)
    assert caught.value.retry_after == 7.0
    assert caught.value.error_type == RATE_LIMITED
    assert "TooManyRequests" in str(caught.value)


@pytest.mark.parametrize("status", [503, 504, 509])
async def test_unavailable_is_transient_and_honours_retry_after(env: Env, status: int) -> None:
    env.state.faults.add("delta", Fault(status=status, headers={"Retry-After": "3"}))
    with pytest.raises(TransientProviderError) as caught:
        await env.graph.delta(env.access)
    assert caught.value.status_code == status and caught.value.retry_after == 3.0


async def test_403_is_permanent(env: Env) -> None:
    env.state.faults.add("messages", Fault(status=403))
    with pytest.raises(PermanentProviderError) as caught:
        await env.graph.list_inbox(env.access)
    assert caught.value.error_type == PERMISSION_DENIED and not caught.value.retryable


async def test_reply_to_unknown_message_is_permanent_404(env: Env) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        await env.graph.create_reply_draft(env.access, "AAMk-missing=", "Thanks!")
    assert caught.value.error_type == RESOURCE_NOT_FOUND and caught.value.status_code == 404


async def test_slow_graph_response_beyond_client_timeout_is_transient(env: Env) -> None:
    env.state.faults.add("messages", Fault(status=200, delay_s=1.0))
    async with httpx.AsyncClient(timeout=0.3) as http:
        graph = GraphMailClient(http, env.base + GRAPH_PREFIX)
        with pytest.raises(TransientProviderError, match="ReadTimeout") as caught:
            await graph.list_inbox(env.access)
    assert_no_secret(caught.value, env.secrets)


async def test_expired_access_token_is_401_authentication_failed(env: Env) -> None:
    env.state.expire_access_token(env.access)
    with pytest.raises(PermanentProviderError) as caught:
        await env.graph.list_inbox(env.access)
    assert caught.value.status_code == 401
    assert caught.value.error_type == AUTHENTICATION_FAILED
    assert "InvalidAuthenticationToken" in str(caught.value)


async def test_provider_echoing_the_token_is_redacted(env: Env) -> None:
    body = {"error": {"code": "BadRequest", "message": f"bad header Bearer {env.access}"}}
    env.state.faults.add("createReply", Fault(status=400, body=body))
    with pytest.raises(PermanentProviderError) as caught:
        await env.graph.create_reply_draft(env.access, "any", "hi")
    assert "[redacted]" in str(caught.value)
    assert_no_secret(caught.value, env.secrets)


async def test_transport_error_is_transient_and_foreign_links_are_refused() -> None:
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        graph = GraphMailClient(http, "https://graph.example/v1.0")
        with pytest.raises(TransientProviderError):
            await graph.delta("access-token-1")
        assert len(sent) == 1
        assert sent[0].headers["Prefer"] == "odata.maxpagesize=100"
        # The bearer token must never travel to a host other than Graph's.
        with pytest.raises(PermanentProviderError):
            await graph.list_inbox("access-token-1", next_link="https://evil.example/v1.0/x")
        assert len(sent) == 1


# --- reply drafts ----------------------------------------------------------------------------


async def test_create_reply_returns_the_draft_id_and_the_emulator_records_it(env: Env) -> None:
    message_id = env.state.add_message(USER, subject="Quote request")
    draft_id = await env.graph.create_reply_draft(env.access, message_id, "Happy to help.")

    [draft] = env.state.drafts_for(message_id)
    assert draft.id == draft_id and draft.comment == "Happy to help." and draft.user == USER
