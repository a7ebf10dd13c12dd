"""VapiClient against the Vapi emulator: calls placed, read and ended; every fault classified
(429 with Retry-After and 5xx transient, 4xx permanent, a refused connection known to have
placed nothing, a timeout left unknown); no phone number or key in any error text."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from core.errors import AUTHENTICATION_FAILED, RATE_LIMITED, RESOURCE_NOT_FOUND
from emulators import vapi as emulator
from emulators.server import Fault, serve
from integrations.errors import (
    ConnectFailed,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    request_was_refused,
)
from integrations.vapi import VapiClient, outcome_of

NUMBER = "+14155550123"


@dataclass
class Emulator:
    state: emulator.VapiState
    url: str
    http: httpx.AsyncClient

    def client(self, api_key: str = emulator.DEFAULT_API_KEY) -> VapiClient:
        return VapiClient(self.http, base_url=self.url, api_key=api_key, timeout_s=2)


@pytest_asyncio.fixture
async def vapi() -> AsyncIterator[Emulator]:
    state = emulator.VapiState()
    async with serve(emulator.create_app(state)) as url, httpx.AsyncClient(timeout=2) as http:
        yield Emulator(state, url, http)


async def place(client: VapiClient, number: str = NUMBER) -> str:
    call = await client.create_call(
        assistant_id=emulator.DEFAULT_ASSISTANT_ID,
        phone_number_id=emulator.DEFAULT_PHONE_NUMBER_ID,
        customer_number=number,
        metadata={"jobId": "job-1", "callId": "call-1"},
    )
    return call.id


async def wait_ended(client: VapiClient, call_id: str) -> None:
    for _ in range(200):
        if (await client.get_call(call_id)).ended:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the call never ended")


async def test_a_call_is_placed_and_followed_to_its_end(vapi: Emulator) -> None:
    client = vapi.client()
    call_id = await place(client)
    sent = vapi.state.calls[call_id].body
    assert sent["customer"] == {"number": NUMBER}
    assert sent["assistantOverrides"] == {"metadata": {"jobId": "job-1", "callId": "call-1"}}
    await wait_ended(client, call_id)
    call = await client.get_call(call_id)
    assert call.ended_reason == "customer-ended-call"
    assert call.transcript and call.recording_url and call.cost == emulator.COMPLETED.cost
    assert call.duration_ms is not None and call.duration_ms >= 150
    assert outcome_of(call.ended_reason).outcome == "completed"


async def test_a_live_call_is_ended_through_its_control_url(vapi: Emulator) -> None:
    vapi.state.scripts[NUMBER] = emulator.NEVER_ENDS
    client = vapi.client()
    call_id = await place(client)
    await asyncio.sleep(0.2)
    live = await client.get_call(call_id)
    assert live.status == "in-progress" and live.control_url
    await client.end_call(live)
    ended = await client.get_call(call_id)
    assert ended.ended and ended.ended_reason == "manually-canceled"
    await client.end_call(ended)  # ending an ended call is a no-op


@pytest.mark.parametrize(
    ("reason", "outcome", "retryable"),
    [
        ("customer-ended-call", "completed", False),
        ("assistant-said-end-call-phrase", "completed", False),
        ("customer-did-not-answer", "no_answer", False),
        ("customer-busy", "busy", False),
        ("voicemail", "voicemail", False),
        ("twilio-failed-to-connect-call", "failed", True),
        ("sip-outbound-call-failed-to-connect", "failed", True),
        ("pipeline-error-openai-llm-failed", "failed", True),
        ("call.in-progress.error-providerfault-transport-never-connected", "failed", True),
        ("worker-shutdown", "failed", True),
        ("manually-canceled", "failed", False),
        (None, "failed", False),
    ],
)
def test_ended_reasons_map_to_outcomes(reason: str | None, outcome: str, retryable: bool) -> None:
    ending = outcome_of(reason)
    assert (ending.outcome, ending.retryable) == (outcome, retryable)


async def test_rate_limit_is_transient_with_its_retry_after(vapi: Emulator) -> None:
    vapi.state.faults.add("call.create", Fault(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(TransientProviderError) as limited:
        await place(vapi.client())
    assert limited.value.error_type == RATE_LIMITED and limited.value.retry_after == 7
    assert request_was_refused(limited.value)
    assert await place(vapi.client())  # the next request goes through


async def test_server_errors_are_transient(vapi: Emulator) -> None:
    vapi.state.faults.add("call.get", Fault(status=503))
    call_id = await place(vapi.client())
    with pytest.raises(TransientProviderError):
        await vapi.client().get_call(call_id)


async def test_bad_requests_are_permanent_and_never_echo_the_number(vapi: Emulator) -> None:
    with pytest.raises(PermanentProviderError) as bad:
        await place(vapi.client(), number="+1 (415) 555-0199 ext")
    assert "customer.number" in str(bad.value) and "555" not in str(bad.value)
    with pytest.raises(PermanentProviderError) as unknown:
        await vapi.client().get_call("no-such-call")
    assert unknown.value.error_type == RESOURCE_NOT_FOUND
    with pytest.raises(PermanentProviderError) as key:
        await place(vapi.client(api_key="wrong-key-0123"))
    assert key.value.error_type == AUTHENTICATION_FAILED and "wrong-key" not in str(key.value)


async def test_a_slow_answer_times_out_and_leaves_the_placement_unknown(vapi: Emulator) -> None:
    vapi.state.faults.add("call.create", Fault(status=201, delay_s=3))
    with pytest.raises(TransientProviderError) as slow:
        await place(vapi.client())
    assert "timed out" in str(slow.value) and not request_was_refused(slow.value)


async def test_no_connection_is_known_to_place_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(timeout=2) as http:
        client = VapiClient(http, base_url=f"http://127.0.0.1:{port}", api_key="k")
        with pytest.raises(ProviderError) as refused:
            await place(client)
    assert isinstance(refused.value, ConnectFailed) and request_was_refused(refused.value)


async def test_a_missing_key_is_a_configuration_error(vapi: Emulator) -> None:
    with pytest.raises(PermanentProviderError) as missing:
        await place(vapi.client(api_key=""))
    assert "VAPI_API_KEY" in str(missing.value)
    assert vapi.state.create_requests == 0
