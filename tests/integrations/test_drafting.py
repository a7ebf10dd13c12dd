"""DraftWriter against the Anthropic emulator, through the real AsyncAnthropic client.

The client runs with ``max_retries=0`` as in production, so every fault reaches the classifier
and the emulator's request log shows whether the SDK retried on its own.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anthropic
import httpx
import pytest
import pytest_asyncio

from core.errors import AUTHENTICATION_FAILED
from emulators.anthropic import (
    AnthropicState,
    api_error,
    canned,
    create_app,
    overloaded,
    rate_limited,
    slow,
    spend_limit_reached,
)
from emulators.server import serve
from integrations.drafting import TONE_RULES, Draft, DraftWriter, build_prompt
from integrations.errors import (
    PROVIDER_UNAVAILABLE,
    RATE_LIMITED,
    REQUEST_REJECTED,
    SPEND_LIMIT_REACHED,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

API_KEY = "sk-ant-emulator-secret-0123456789"
MODEL = "claude-sonnet-4-6"
CONTEXT = (
    "From: Dana Whitfield\nSubject: Quarterly invoice 4471\n\n"
    "Hi, could you confirm the revised delivery date for the pallet order before Friday?"
)


@dataclass
class Emulator:
    state: AnthropicState
    url: str

    def client(self, *, api_key: str = API_KEY, timeout: float = 10.0) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key, base_url=self.url, max_retries=0, timeout=timeout
        )


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Emulator]:
    state = AnthropicState(api_keys={API_KEY})
    async with serve(create_app(state)) as url:
        yield Emulator(state, url)


@pytest_asyncio.fixture
async def writer(emulator: Emulator) -> AsyncIterator[DraftWriter]:
    client = emulator.client()
    try:
        yield DraftWriter(client, model=MODEL, max_tokens=512)
    finally:
        await client.close()


def assert_no_secrets(exc: ProviderError) -> None:
    # The SDK exception (request headers, provider body) must not ride along as the cause.
    assert exc.__cause__ is None
    for text in (str(exc), repr(exc)):
        assert API_KEY not in text
        assert "Dana" not in text
        assert "pallet" not in text


# --- build_prompt -------------------------------------------------------------------------


def test_prompt_is_deterministic_and_states_tone_and_output_rule() -> None:
    first = build_prompt(context=CONTEXT, tone="friendly", sender_name="Sam")
    second = build_prompt(context=CONTEXT, tone="friendly", sender_name="Sam")
    assert first == second
    system, messages = first
    assert "Tone: friendly." in system
    assert TONE_RULES["friendly"] in system
    assert "Output only the reply body" in system
    assert "Sign the reply as Sam." in system
    assert messages == [
        {
            "role": "user",
            "content": f"Write a reply to this email thread.\n\n<thread>\n{CONTEXT}\n</thread>",
        }
    ]


def test_prompt_keeps_context_out_of_the_system_prompt() -> None:
    system, _ = build_prompt(context=CONTEXT, tone="casual")
    assert "pallet" not in system
    assert "Sign the reply" not in system


def test_unknown_tone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tone 'sarcastic'"):
        build_prompt(context=CONTEXT, tone="sarcastic")


# --- DraftWriter against the emulator -----------------------------------------------------


async def test_draft_has_text_model_and_usage(emulator: Emulator, writer: DraftWriter) -> None:
    draft = await writer.write(context=CONTEXT, tone="professional")

    assert isinstance(draft, Draft)
    assert draft.text.startswith("Thank you for your message.")
    assert 'Regarding "From: Dana Whitfield Subject: Quarterly invoice 4471 Hi,"' in draft.text
    assert draft.model == MODEL
    assert draft.input_tokens > 20
    assert draft.output_tokens > 5
    assert draft.stop_reason == "end_turn"
    assert draft.request_id is not None and draft.request_id.startswith("req_emu_")
    [request] = emulator.state.requests
    assert request.model == MODEL
    assert request.body["max_tokens"] == 512
    # API version 2026-10-21 (sent by anthropic 2.x) answers 400 to any sampling parameter.
    assert request.temperature is None


async def test_each_tone_sends_its_own_system_prompt(
    emulator: Emulator, writer: DraftWriter
) -> None:
    drafts = [await writer.write(context=CONTEXT, tone=tone) for tone in TONE_RULES]

    systems = [request.system for request in emulator.state.requests]
    assert len(set(systems)) == 3
    for tone, system in zip(TONE_RULES, systems, strict=True):
        assert system == build_prompt(context=CONTEXT, tone=tone)[0]
    assert len({draft.text.split(" Regarding")[0] for draft in drafts}) == 3


async def test_same_inputs_send_identical_requests(emulator: Emulator, writer: DraftWriter) -> None:
    # A retried job must keep its tone and settings: the two bodies are byte-for-byte equal.
    await writer.write(context=CONTEXT, tone="casual", sender_name="Sam")
    await writer.write(context=CONTEXT, tone="casual", sender_name="Sam")

    first, second = emulator.state.requests
    assert first.body == second.body
    assert "Tone: casual." in first.system


async def test_rate_limit_is_transient_with_retry_after_and_sent_once(
    emulator: Emulator, writer: DraftWriter
) -> None:
    emulator.state.faults.add("messages", rate_limited(retry_after_s=17))

    with pytest.raises(TransientProviderError) as caught:
        await writer.write(context=CONTEXT, tone="professional")

    assert caught.value.error_type == RATE_LIMITED
    assert caught.value.retry_after == 17.0
    assert caught.value.status_code == 429
    # The emulator says x-should-retry: true; one request proves the SDK's retries are off.
    assert len(emulator.state.requests) == 1
    assert_no_secrets(caught.value)


async def test_spend_limit_is_permanent(emulator: Emulator, writer: DraftWriter) -> None:
    emulator.state.faults.add("messages", spend_limit_reached())

    with pytest.raises(PermanentProviderError) as caught:
        await writer.write(context=CONTEXT, tone="professional")

    assert caught.value.error_type == SPEND_LIMIT_REACHED
    assert caught.value.retry_after is None
    assert_no_secrets(caught.value)


@pytest.mark.parametrize(("fault", "status"), [(overloaded(), 529), (api_error(), 500)])
async def test_overload_and_server_error_are_transient(
    emulator: Emulator, writer: DraftWriter, fault, status
) -> None:
    emulator.state.faults.add("messages", fault)

    with pytest.raises(TransientProviderError) as caught:
        await writer.write(context=CONTEXT, tone="friendly")

    assert caught.value.error_type == PROVIDER_UNAVAILABLE
    assert caught.value.status_code == status
    assert len(emulator.state.requests) == 1
    assert_no_secrets(caught.value)


async def test_wrong_api_key_is_permanent_authentication_failure(emulator: Emulator) -> None:
    wrong_key = "sk-ant-wrong-key-9876543210"
    client = emulator.client(api_key=wrong_key)
    try:
        with pytest.raises(PermanentProviderError) as caught:
            await DraftWriter(client, model=MODEL, max_tokens=512).write(
                context=CONTEXT, tone="casual"
            )
    finally:
        await client.close()

    assert caught.value.error_type == AUTHENTICATION_FAILED
    assert caught.value.status_code == 401
    assert wrong_key not in str(caught.value)
    assert_no_secrets(caught.value)


async def test_invalid_request_is_permanent(emulator: Emulator) -> None:
    client = emulator.client()
    try:
        with pytest.raises(PermanentProviderError) as caught:
            # max_tokens=0 is refused by the API with invalid_request_error.
            await DraftWriter(client, model=MODEL, max_tokens=0).write(
                context=CONTEXT, tone="casual"
            )
    finally:
        await client.close()

    assert caught.value.error_type == REQUEST_REJECTED
    assert caught.value.status_code == 400
    assert_no_secrets(caught.value)


async def test_slow_response_times_out_as_transient(emulator: Emulator) -> None:
    emulator.state.faults.add("messages", slow(delay_s=5.0))
    client = emulator.client(timeout=0.5)
    try:
        with pytest.raises(TransientProviderError) as caught:
            await DraftWriter(client, model=MODEL, max_tokens=512).write(
                context=CONTEXT, tone="professional"
            )
    finally:
        await client.close()

    assert str(caught.value) == "anthropic: request timed out"
    assert len(emulator.state.requests) == 1
    assert_no_secrets(caught.value)


async def test_unreachable_api_is_transient() -> None:
    with socket.socket() as sock:  # a port nothing listens on once the socket closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = anthropic.AsyncAnthropic(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0
    )
    try:
        with pytest.raises(TransientProviderError) as caught:
            await DraftWriter(client, model=MODEL, max_tokens=512).write(
                context=CONTEXT, tone="professional"
            )
    finally:
        await client.close()

    assert str(caught.value) == "anthropic: connection failed"
    assert_no_secrets(caught.value)


@pytest.mark.parametrize(
    "message",
    [
        {"stop_reason": "refusal", "content": []},
        {"stop_reason": "end_turn", "content": [{"type": "text", "text": "  "}]},
    ],
)
async def test_refusal_or_empty_text_is_permanent(
    emulator: Emulator, writer: DraftWriter, message
) -> None:
    emulator.state.faults.add(
        "messages",
        canned(
            {
                "id": "msg_canned",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "stop_sequence": None,
                "usage": {"input_tokens": 40, "output_tokens": 0},
                **message,
            }
        ),
    )

    with pytest.raises(PermanentProviderError) as caught:
        await writer.write(context=CONTEXT, tone="friendly")

    assert "no draft produced" in str(caught.value)
    assert_no_secrets(caught.value)


# --- the emulator's own contract ----------------------------------------------------------


async def test_emulator_requires_version_header_and_key(emulator: Emulator) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        no_key = await http.post("/v1/messages", json=body, headers={"anthropic-version": "x"})
        no_version = await http.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
        old_api = await http.post(
            "/v1/messages",
            json={**body, "temperature": 0.3},
            headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        )
        new_api = await http.post(
            "/v1/messages",
            json={**body, "temperature": 0.3},
            headers={"x-api-key": API_KEY, "anthropic-version": "2026-10-21"},
        )

    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert old_api.status_code == 200
    assert old_api.headers["anthropic-ratelimit-requests-limit"] == "50"
    assert old_api.headers["request-id"].startswith("req_emu_")
    assert new_api.status_code == 400
    assert "temperature" in new_api.json()["error"]["message"]
    assert [request.temperature for request in emulator.state.requests] == [None, None, 0.3, 0.3]
