"""Fixtures of the integration tests: a loopback webhook receiver that checks signatures, the
Google, Microsoft and Anthropic emulators, and the Vapi emulator with the HTTP API receiving
its server messages, the Apify emulator, and the fixture website with the Browserbase
emulator for browser workflows, each with settings pointing at them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.app import create_app as create_api
from api.vapi import PATH as VAPI_MESSAGES_PATH
from client.queue import JobQueue
from core.config import Settings
from emulators import anthropic as anthropic_emulator
from emulators import apify as apify_emulator
from emulators import browserbase as browserbase_emulator
from emulators import fixture_site
from emulators import google as google_emulator
from emulators import microsoft as microsoft_emulator
from emulators import vapi as vapi_emulator
from emulators.endpoints import (
    apify_settings,
    browserbase_settings,
    email_provider_settings,
    vapi_settings,
)
from emulators.server import serve
from emulators.webhook_receiver import WebhookReceiver, new_secret
from tests.support import free_slots_of, terminate_open_jobs


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(secret=new_secret()) as server:
        yield server


API_KEY = "sk-ant-emulator-key"


@dataclass(frozen=True)
class Mailbox:
    """A seeded emulator mailbox, connected as a user's account."""

    user: str
    address: str
    provider: str
    account_id: str
    access: str
    refresh: str
    message_ids: list[str]


@dataclass
class Providers:
    google: google_emulator.GoogleState
    microsoft: microsoft_emulator.MicrosoftState
    anthropic: anthropic_emulator.AnthropicState
    settings: Settings
    # The same configuration as environment variables, for worker processes.
    env: dict[str, str]

    async def mailbox(
        self,
        queue: JobQueue,
        provider: str = "gmail",
        *,
        messages: int = 0,
        important_every: int = 0,
        expires_in: timedelta = timedelta(hours=1),
        revoked: bool = False,
        start: datetime | None = None,
    ) -> Mailbox:
        """A new mailbox of ``messages`` seeded messages (every ``important_every``-th one
        important), connected through ``queue`` with tokens that expire in ``expires_in``
        (negative: already expired) and, with ``revoked``, a refresh token the provider
        no longer accepts."""
        tag = uuid.uuid4().hex[:8]
        address, user = f"box-{tag}@example.com", f"user-{tag}"
        if provider == "gmail":
            state: Any = self.google
            ids = self.google.seed_mailbox(
                address, messages, important_every=important_every, **_start(start)
            )
        else:
            state = self.microsoft
            ids = self.microsoft.seed_mailbox(
                address,
                messages,
                start=start or datetime.now(UTC) - timedelta(days=2),
                high_importance_every=important_every,
            )
        access, refresh = state.issue_tokens(address)
        if revoked:
            state.revoke(refresh)
        account_id = await queue.connect_email_account(
            user, provider, address, access, refresh, datetime.now(UTC) + expires_in
        )
        return Mailbox(user, address, provider, account_id, access, refresh, ids)


def _start(start: datetime | None) -> dict[str, datetime]:
    return {} if start is None else {"start": start}


@pytest.fixture
async def providers(settings: Settings) -> AsyncIterator[Providers]:
    google = google_emulator.GoogleState()
    microsoft = microsoft_emulator.MicrosoftState()
    claude = anthropic_emulator.AnthropicState(api_keys={API_KEY})
    async with (
        serve(google_emulator.create_app(google)) as google_url,
        serve(microsoft_emulator.create_app(microsoft)) as microsoft_url,
        serve(anthropic_emulator.create_app(claude)) as anthropic_url,
    ):
        endpoints = email_provider_settings(
            google_url=google_url,
            microsoft_url=microsoft_url,
            anthropic_url=anthropic_url,
            anthropic_key=API_KEY,
        )
        configured = settings.model_copy(update={k.lower(): v for k, v in endpoints.items()})
        await terminate_open_jobs(settings, "email")
        try:
            yield Providers(google, microsoft, claude, configured, endpoints)
        finally:
            await terminate_open_jobs(settings, "email")


@dataclass
class Voice:
    """The Vapi emulator, posting server messages to the HTTP API, and settings for both."""

    vapi: vapi_emulator.VapiState
    api_url: str
    settings: Settings
    env: dict[str, str]


@pytest.fixture
async def voice(settings: Settings, session_env: dict[str, str]) -> AsyncIterator[Voice]:
    state = vapi_emulator.VapiState()
    async with serve(vapi_emulator.create_app(state)) as vapi_url:
        endpoints = vapi_settings(vapi_url)
        configured = settings.model_copy(update={k.lower(): v for k, v in endpoints.items()})
        async with serve(create_api(configured), lifespan="on") as api_url:
            state.server_url = api_url + VAPI_MESSAGES_PATH
            await terminate_open_jobs(settings, "voice")
            try:
                yield Voice(state, api_url, configured, {**session_env, **endpoints})
            finally:
                await terminate_open_jobs(settings, "voice")


@dataclass
class Enrichment:
    apify: apify_emulator.ApifyState
    settings: Settings
    env: dict[str, str]


@pytest.fixture
async def enrichment(settings: Settings, session_env: dict[str, str]) -> AsyncIterator[Enrichment]:
    state = apify_emulator.ApifyState()
    async with serve(apify_emulator.create_app(state)) as url:
        endpoints = apify_settings(url)
        configured = settings.model_copy(update={k.lower(): v for k, v in endpoints.items()})
        await terminate_open_jobs(settings, "enrichment")
        try:
            yield Enrichment(state, configured, {**session_env, **endpoints})
        finally:
            await terminate_open_jobs(settings, "enrichment")


@dataclass
class Browsers:
    """The fixture website, a Browserbase emulator, and settings for local Chromium whose
    profiles live in a directory of this test's own (so its process checks see only its
    browsers)."""

    site: fixture_site.SiteState
    site_url: str
    browserbase: browserbase_emulator.BrowserbaseState
    profiles_dir: str
    settings: Settings
    env: dict[str, str]
    # The same, with Browserbase as the provider.
    remote_settings: Settings
    remote_env: dict[str, str]


@pytest.fixture
async def browsers(
    settings: Settings, session_env: dict[str, str], tmp_path: Any
) -> AsyncIterator[Browsers]:
    site = fixture_site.SiteState()
    remote = browserbase_emulator.BrowserbaseState()
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    async with (
        serve(fixture_site.create_app(site)) as site_url,
        serve(browserbase_emulator.create_app(remote)) as browserbase_url,
    ):
        local = {"BROWSER_PROVIDER": "local", "BROWSER_PROFILES_DIR": str(profiles)}
        endpoints = {**local, **browserbase_settings(browserbase_url)}
        configured = settings.model_copy(update={k.lower(): v for k, v in local.items()})
        remote_configured = settings.model_copy(update={k.lower(): v for k, v in endpoints.items()})
        await terminate_open_jobs(settings, "workflow")
        await free_slots_of(settings, "browser-sessions")
        try:
            yield Browsers(
                site,
                site_url,
                remote,
                str(profiles),
                configured,
                {**session_env, **local},
                remote_configured,
                {**session_env, **endpoints},
            )
        finally:
            await terminate_open_jobs(settings, "workflow")
            await remote.close()
