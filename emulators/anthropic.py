"""A loopback Anthropic Messages API: ``POST /v1/messages`` with deterministic replies.

It checks the API key (``x-api-key`` or, as the 2.x SDK sends it, ``Authorization: Bearer``),
requires ``anthropic-version``, validates the body like the real API and answers with a reply
built from the system prompt's tone and the last user message. Every request is recorded, and
``state.faults`` (route ``"messages"``) injects rate limits, spend limits, overloads, 500s and
slow answers, each with the ``x-should-retry`` header the real API sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Fault, Faults

ROUTE = "messages"
# 2026-10-21 is what anthropic 2.x sends; it has no sampling parameters.
API_VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
RATE_LIMIT_REQUESTS = 50
RATE_LIMIT_TOKENS = 100_000

GREETINGS = {
    "professional": "Thank you for your message.",
    "casual": "Hey, thanks for the note.",
    "friendly": "Hi there, it is so good to hear from you!",
}
_TONE = re.compile(r"Tone:\s*(\w+)")
_THREAD = re.compile(r"<thread>\s*(.*?)\s*</thread>", re.DOTALL)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (parsed fields plus the whole JSON body)."""

    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system(self) -> Any:
        return self.body.get("system")

    @property
    def messages(self) -> Any:
        return self.body.get("messages")

    @property
    def model(self) -> Any:
        return self.body.get("model")

    @property
    def temperature(self) -> Any:
        return self.body.get("temperature")


@dataclass
class AnthropicState:
    """Accepted API keys, injected faults and every request received."""

    api_keys: set[str]
    faults: Faults = field(default_factory=Faults)
    requests: list[RecordedRequest] = field(default_factory=list)


def rate_limited(retry_after_s: int = 30) -> Fault:
    return Fault(
        status=429,
        headers={"retry-after": str(retry_after_s), "x-should-retry": "true"},
        body=_error_body("rate_limit_error", "Number of requests has exceeded your rate limit."),
    )


def spend_limit_reached() -> Fault:
    # No retry-after: waiting does not lift a spend limit.
    body = _error_body("rate_limit_error", "You have reached your specified API usage limits.")
    body["error"]["details"] = {"error_code": "enforced_spend_limit_reached"}
    return Fault(status=429, headers={"x-should-retry": "false"}, body=body)


def overloaded() -> Fault:
    return Fault(
        status=529,
        headers={"x-should-retry": "true"},
        body=_error_body("overloaded_error", "Overloaded"),
    )


def api_error() -> Fault:
    return Fault(
        status=500,
        headers={"x-should-retry": "true"},
        body=_error_body("api_error", "Internal server error"),
    )


def slow(delay_s: float) -> Fault:
    """A normal answer, held back ``delay_s`` (or until the client gives up)."""
    return Fault(status=200, delay_s=delay_s)


def canned(message: dict[str, Any]) -> Fault:
    """Answer 200 with exactly ``message`` (e.g. a refusal)."""
    return Fault(status=200, body=message)


def create_app(state: AnthropicState) -> FastAPI:
    app = FastAPI(title="Anthropic emulator")

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        request_id = f"req_emu_{uuid.uuid4().hex[:24]}"
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        state.requests.append(RecordedRequest(headers=dict(request.headers), body=body))

        key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization", "")
        if key is None and authorization.startswith("Bearer "):
            key = authorization.removeprefix("Bearer ")
        if key is None or key not in state.api_keys:
            return _error(401, "authentication_error", "invalid x-api-key", request_id)
        version = request.headers.get("anthropic-version")
        if version is None:
            return _error(
                400, "invalid_request_error", "anthropic-version: header is required", request_id
            )

        fault = state.faults.next(ROUTE)
        if fault is not None:
            if fault.delay_s > 0 and await _client_left(request, fault.delay_s):
                return Response(status_code=499)
            if fault.status >= 400:
                error = fault.body or _error_body("api_error", "Internal server error")
                return JSONResponse(
                    {**error, "request_id": request_id},
                    status_code=fault.status,
                    headers={"request-id": request_id, **fault.headers},
                )
            if fault.body is not None:
                return JSONResponse(fault.body, headers={"request-id": request_id, **fault.headers})

        if not isinstance(parsed, dict):
            return _error(400, "invalid_request_error", "body must be a JSON object", request_id)
        problem = _validate(body, version)
        if problem is not None:
            return _error(400, "invalid_request_error", problem, request_id)
        return JSONResponse(
            _reply(body), headers={"request-id": request_id, **_ratelimit_headers()}
        )

    return app


def _validate(body: dict[str, Any], version: str) -> str | None:
    """The first problem the real API would report, or None."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return "max_tokens: Field required"
    if max_tokens < 1:
        return "max_tokens: must be greater than or equal to 1"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        if _text(message.get("content")) is None:
            return f"messages.{index}.content: Input should be a string or a list of blocks"
    system = body.get("system")
    if system is not None and _text(system) is None:
        return "system: Input should be a string or a list of text blocks"
    for name in SAMPLING_PARAMS:
        if name not in body:
            continue
        if version != "2023-06-01":
            return f"{name}: Extra inputs are not permitted"
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: Input should be a number"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0.0 <= temperature <= 1.0:
        return "temperature: Input should be between 0 and 1"
    return None


def _text(content: Any) -> str | None:
    """The text of a string or a list of text blocks; None when the shape is invalid."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return None
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                return None
            parts.append(block["text"])
    return "\n".join(parts)


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    system = _text(body.get("system")) or ""
    tone_match = _TONE.search(system)
    tone = tone_match.group(1) if tone_match else ""
    greeting = GREETINGS.get(tone, "Thank you for writing.")
    last_user = next(
        (_text(m["content"]) or "" for m in reversed(body["messages"]) if m["role"] == "user"),
        "",
    )
    thread = _THREAD.search(last_user)
    quoted = " ".join((thread.group(1) if thread else last_user).split()[:8])
    text = f'{greeting} Regarding "{quoted}": I will get back to you shortly.'

    prompt = " ".join([system, *(_text(m["content"]) or "" for m in body["messages"])])
    return {
        "id": f"msg_emu_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": _tokens(prompt),
            "output_tokens": _tokens(text),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _ratelimit_headers() -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    headers: dict[str, str] = {}
    limits = {
        "requests": RATE_LIMIT_REQUESTS,
        "tokens": RATE_LIMIT_TOKENS,
        "input-tokens": RATE_LIMIT_TOKENS,
        "output-tokens": RATE_LIMIT_TOKENS,
    }
    for name, limit in limits.items():
        headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(limit - 1)
        headers[f"anthropic-ratelimit-{name}-reset"] = reset
    return headers


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _error(status: int, error_type: str, message: str, request_id: str) -> JSONResponse:
    # The real API tells its SDKs not to retry client errors.
    return JSONResponse(
        {**_error_body(error_type, message), "request_id": request_id},
        status_code=status,
        headers={"request-id": request_id, "x-should-retry": "false"},
    )


async def _client_left(request: Request, delay_s: float) -> bool:
    """Wait ``delay_s``; True as soon as the client disconnects (so shutdown is not held up)."""
    try:
        async with asyncio.timeout(delay_s):
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Loopback Anthropic Messages API emulator")
    parser.add_argument("--port", type=int, default=8298)
    parser.add_argument("--api-key", required=True, help="the API key clients must send")
    args = parser.parse_args(argv)
    app = create_app(AnthropicState(api_keys={args.api_key}))
    print(f"anthropic emulator listening on http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
