"""Email reply drafts from the Anthropic Messages API.

``build_prompt`` is a pure function of its inputs, so a retried job sends the same system prompt,
tone and settings as its first attempt. ``DraftWriter`` turns every SDK failure into a
``TransientProviderError`` or ``PermanentProviderError`` from ``integrations.errors``; the owner
builds its ``AsyncAnthropic`` with ``max_retries=0`` so Temporal sees (and spaces) every attempt.

No ``temperature`` is sent: ``messages.create`` of the anthropic 2.x SDK has no such
parameter, so the model's default sampling applies to every attempt alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic
from anthropic.types import MessageParam
from pydantic import BaseModel, ConfigDict

from integrations.errors import (
    MAX_RETRY_AFTER_S,
    RATE_LIMITED,
    SPEND_LIMIT_REACHED,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    parse_retry_after,
    status_error,
)

PROVIDER = "anthropic"

# The rules of each tone, stated verbatim in the system prompt (EmailDraftJobData.tone).
TONE_RULES: dict[str, str] = {
    "professional": (
        "Courteous, clear and concise. Use complete sentences, a polite greeting and a formal "
        "sign-off. No slang, no emoji, no exclamation marks."
    ),
    "casual": (
        "Relaxed and direct, like a quick note to a colleague. Short sentences, contractions "
        "are fine, a light greeting. No emoji, no forced enthusiasm."
    ),
    "friendly": (
        "Warm and personable. Open with a kind greeting, acknowledge the sender, keep a "
        "positive note throughout and close warmly. At most one exclamation mark, no emoji."
    ),
}

_SYSTEM_TEMPLATE = """You write replies to email threads on behalf of the user.
Tone: {tone}. {rules}
Reply to the most recent message in the thread; do not invent facts, dates or commitments that \
the thread does not support.
Output only the reply body: no subject line, no quoted thread, no notes or explanations \
about the draft.{signature}"""

SPEND_LIMIT_ERROR_CODE = "enforced_spend_limit_reached"


def build_prompt(
    *, context: str, tone: str, sender_name: str | None = None
) -> tuple[str, list[MessageParam]]:
    """The system prompt and messages for one draft; the same inputs always give the same pair.

    Raises:
        ValueError: ``tone`` is not one of ``TONE_RULES``.
    """
    rules = TONE_RULES.get(tone)
    if rules is None:
        raise ValueError(f"unknown tone {tone!r}; expected one of {', '.join(TONE_RULES)}")
    signature = f"\nSign the reply as {sender_name.strip()}." if sender_name else ""
    system = _SYSTEM_TEMPLATE.format(tone=tone, rules=rules, signature=signature)
    # The thread sits in its own tags so instructions inside an email read as quoted data.
    user = f"Write a reply to this email thread.\n\n<thread>\n{context}\n</thread>"
    return system, [{"role": "user", "content": user}]


class Draft(BaseModel):
    """One generated reply and what it cost."""

    model_config = ConfigDict(frozen=True)

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    request_id: str | None


class DraftWriter:
    """Writes reply drafts with an injected ``AsyncAnthropic`` (built with ``max_retries=0``)."""

    def __init__(self, client: anthropic.AsyncAnthropic, *, model: str, max_tokens: int) -> None:
        self._client = client
        self._model = model
        self._max_tokens = max_tokens

    async def write(
        self,
        *,
        context: str,
        tone: str,
        sender_name: str | None = None,
    ) -> Draft:
        """Draft a reply to ``context`` in ``tone``.

        Raises:
            TransientProviderError: rate limit, overload, 5xx, timeout or connection failure.
            PermanentProviderError: bad request, bad key, no permission, spend limit reached,
                or the model produced no draft (refusal or empty text).
        """
        system, messages = build_prompt(context=context, tone=tone, sender_name=sender_name)
        try:
            message = await self._client.messages.create(
                model=self._model,
                max_tokens=self._max_tokens,
                system=system,
                messages=messages,
            )
        except anthropic.APIError as exc:
            # `from None`: the SDK exception holds the request (x-api-key header) and the
            # provider's body, neither of which may reach Temporal history or logs.
            raise classify(exc) from None

        text = "".join(block.text for block in message.content if block.type == "text").strip()
        if message.stop_reason == "refusal" or not text:
            raise PermanentProviderError(
                PROVIDER, f"no draft produced (stop_reason={message.stop_reason})"
            )
        return Draft(
            text=text,
            model=message.model,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            stop_reason=message.stop_reason,
            request_id=getattr(message, "_request_id", None),
        )


def classify(exc: anthropic.APIError) -> ProviderError:
    """The provider error for an SDK exception; messages carry only status, type and request id."""
    if isinstance(exc, anthropic.APITimeoutError):
        return TransientProviderError(PROVIDER, "request timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        return TransientProviderError(PROVIDER, "connection failed")
    if not isinstance(exc, anthropic.APIStatusError):
        # A response the SDK could not parse: the same request may well succeed next time.
        return TransientProviderError(PROVIDER, "unreadable response")

    status = exc.status_code
    error = _error_object(exc.body)
    error_type = error.get("type") if isinstance(error.get("type"), str) else "unknown_error"
    request_id = exc.response.headers.get("request-id")
    message = f"{error_type} (request_id={request_id})"
    details = error.get("details")
    error_code = details.get("error_code") if isinstance(details, dict) else None

    if status == 429 and error_code == SPEND_LIMIT_ERROR_CODE:
        # Waiting does not lift a spend limit; someone has to raise it.
        return PermanentProviderError(
            PROVIDER, message, status_code=status, error_type=SPEND_LIMIT_REACHED
        )
    if status == 429:
        return TransientProviderError(
            PROVIDER,
            message,
            status_code=status,
            retry_after=_retry_after(exc.response.headers),
            error_type=RATE_LIMITED,
        )
    if status == 409:
        # The API's conflict_error is a race on its side; the SDK itself would retry it.
        return TransientProviderError(PROVIDER, message, status_code=status)
    # 529 overloaded and other 5xx are transient; 400/401/403/404/413 permanent.
    return status_error(PROVIDER, status, message, exc.response.headers.get("retry-after"))


def _error_object(body: object) -> dict[str, Any]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return error
    return {}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    # retry-after-ms is finer grained than retry-after; the SDK prefers it too.
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return min(max(float(millis), 0.0) / 1000.0, MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


__all__ = ["TONE_RULES", "Draft", "DraftWriter", "build_prompt", "classify"]
