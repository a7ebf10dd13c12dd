"""Fixtures of the integration tests: a loopback webhook receiver that checks signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from emulators.webhook_receiver import WebhookReceiver, new_secret


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(secret=new_secret()) as server:
        yield server
