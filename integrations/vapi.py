"""The Vapi calls API (providers.md 4): create an outbound call, read it, end it.

The client runs on an injected ``httpx.AsyncClient`` and never retries; every failure is a
``TransientProviderError`` or ``PermanentProviderError``. ``outcome_of`` maps Vapi's ended
reasons onto the job's outcomes, in the one place that decides which endings are worth
another attempt. Phone numbers and the API key never reach an exception message.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from integrations.errors import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    send,
    status_error,
)

PROVIDER = "vapi"
MAX_SERVER_TEXT = 200
# Anything that looks like a phone number in a server's text (it may echo the customer's).
_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")

# Business outcomes: the call reached the line and ended the way it did; no retry.
_BUSINESS_OUTCOMES: dict[str, str] = {
    "customer-did-not-answer": "no_answer",
    "customer-busy": "busy",
    "voicemail": "voicemail",
}
_COMPLETED = frozenset(
    {
        "customer-ended-call",
        "assistant-ended-call",
        "assistant-said-end-call-phrase",
        "assistant-forwarded-call",
        "assistant-ended-call-after-message-spoken",
        "silence-timed-out",
        "exceeded-max-duration",
    }
)
# The call failed to connect for a reason on the carrier's or Vapi's side: another attempt
# may get through (providers.md: *-error-*, *providerfault*, worker-*).
_RETRYABLE_FAILURES = (
    "twilio-failed-to-connect-call",
    "sip-outbound-*",
    "*-error-*",
    "*providerfault*",
    "worker-*",
)


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: str  # completed, failed, no_answer, busy or voicemail
    retryable: bool


def outcome_of(ended_reason: str | None) -> Outcome:
    """The job outcome of a call that ended with ``ended_reason``."""
    reason = (ended_reason or "").strip().lower()
    if reason in _BUSINESS_OUTCOMES:
        return Outcome(outcome=_BUSINESS_OUTCOMES[reason], retryable=False)
    if reason in _COMPLETED:
        return Outcome(outcome="completed", retryable=False)
    if any(fnmatch.fnmatchcase(reason, pattern) for pattern in _RETRYABLE_FAILURES):
        return Outcome(outcome="failed", retryable=True)
    return Outcome(outcome="failed", retryable=False)


class VapiCall(BaseModel):
    """The fields of Vapi's ``Call`` the jobs use."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: str
    ended_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cost: float | None = None
    transcript: str | None = None
    recording_url: str | None = None
    control_url: str | None = None

    @property
    def ended(self) -> bool:
        return self.status == "ended"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.started_at).total_seconds() * 1000))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_call(body: Any) -> VapiCall:
    """A ``Call`` object from Vapi's JSON (raises ValueError when it is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ValueError("not a call object")
    artifact = _object(body.get("artifact"))
    monitor = _object(body.get("monitor"))
    try:
        return VapiCall(
            id=body["id"],
            status=str(body.get("status") or "queued"),
            ended_reason=body.get("endedReason"),
            started_at=body.get("startedAt"),
            ended_at=body.get("endedAt"),
            cost=body.get("cost"),
            transcript=artifact.get("transcript") or body.get("transcript"),
            recording_url=artifact.get("recordingUrl") or body.get("recordingUrl"),
            control_url=monitor.get("controlUrl"),
        )
    except ValidationError as exc:
        raise ValueError("malformed call object") from exc


class VapiClient:
    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, api_key: str, timeout_s: float = 15.0
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))

    def check_configured(self) -> None:
        """Raise the configuration error before anything is marked or sent."""
        self._headers()

    def _headers(self) -> dict[str, str]:
        if not self._api_key:
            raise PermanentProviderError(
                PROVIDER, "VAPI_API_KEY is not set", error_type="InvalidConfiguration"
            )
        return {"Authorization": f"Bearer {self._api_key}"}

    async def create_call(
        self,
        *,
        assistant_id: str,
        phone_number_id: str,
        customer_number: str,
        metadata: dict[str, Any],
    ) -> VapiCall:
        """Place an outbound call (``POST /call``)."""
        body = {
            "assistantId": assistant_id,
            "phoneNumberId": phone_number_id,
            "customer": {"number": customer_number},
            "assistantOverrides": {"metadata": metadata},
        }
        response = await self._send("create call", "POST", "/call", json=body)
        return _call(response, "create call")

    async def get_call(self, call_id: str) -> VapiCall:
        response = await self._send("get call", "GET", f"/call/{call_id}")
        return _call(response, "get call")

    async def end_call(self, call: VapiCall) -> None:
        """End a live call through its control URL; a call that already ended is left alone."""
        if call.ended:
            return
        url = call.control_url or f"{self._base_url}/call/{call.id}/control"
        await self._send("end call", "POST", url, json={"type": "end-call"})

    async def _send(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("http") else f"{self._base_url}{path}"
        headers = self._headers()
        kwargs.setdefault("timeout", self._timeout)
        response = await send(
            self._http, PROVIDER, operation, method, url, headers=headers, **kwargs
        )
        if response.is_success:
            return response
        raise _status_error(operation, response)


def _call(response: httpx.Response, operation: str) -> VapiCall:
    try:
        return parse_call(response.json())
    except ValueError:
        # An unreadable 2xx is more often a proxy or outage symptom than a contract change.
        raise TransientProviderError(PROVIDER, f"{operation}: malformed response") from None


def _status_error(operation: str, response: httpx.Response) -> ProviderError:
    message = _server_message(response)
    text = f"{operation}: {message}" if message else operation
    return status_error(PROVIDER, response.status_code, text, response.headers.get("retry-after"))


def _server_message(response: httpx.Response) -> str:
    """Vapi's NestJS-style ``message`` (a string or a list), cut short; never the request."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    return _PHONE_LIKE.sub("[number]", str(message))[:MAX_SERVER_TEXT] if message else ""
