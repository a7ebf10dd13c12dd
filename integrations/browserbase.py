"""The Browserbase sessions API (providers.md 7): create a session, read it, list the running
ones, release one with ``REQUEST_RELEASE``.

The client runs on an injected ``httpx.AsyncClient`` and never retries; 429 (too many
concurrent browsers, or sessions created per minute) and 5xx are transient. The API key
never reaches an exception message.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import INVALID_CONFIGURATION
from integrations.errors import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    send,
    status_error,
)

PROVIDER = "browserbase"
# Sessions end on their own after this long even if nobody releases them (60..21600 s).
SESSION_TIMEOUT_S = 1800


class BrowserbaseSession(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str
    status: str
    connect_url: str | None = Field(default=None, alias="connectUrl")
    user_metadata: dict[str, Any] = Field(default_factory=dict, alias="userMetadata")


class BrowserbaseClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        project_id: str,
        timeout_s: float = 30.0,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._project_id = project_id
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))

    def _headers(self) -> dict[str, str]:
        if not self._api_key:
            raise PermanentProviderError(
                PROVIDER, "BROWSERBASE_API_KEY is not set", error_type=INVALID_CONFIGURATION
            )
        return {"X-BB-API-Key": self._api_key}

    async def create_session(self, user_metadata: dict[str, str]) -> BrowserbaseSession:
        body: dict[str, Any] = {"timeout": SESSION_TIMEOUT_S, "userMetadata": user_metadata}
        if self._project_id:
            body["projectId"] = self._project_id
        response = await self._send("create session", "POST", "/v1/sessions", json=body)
        session = _session(response, "create session")
        if not session.connect_url:
            raise TransientProviderError(PROVIDER, "create session: no connectUrl in the answer")
        return session

    async def get_session(self, session_id: str) -> BrowserbaseSession:
        response = await self._send("get session", "GET", f"/v1/sessions/{session_id}")
        return _session(response, "get session")

    async def running_sessions(self) -> list[BrowserbaseSession]:
        response = await self._send(
            "list sessions", "GET", "/v1/sessions", params={"status": "RUNNING"}
        )
        try:
            body = response.json()
            return [BrowserbaseSession.model_validate(item) for item in body]
        except (ValueError, TypeError, ValidationError):
            raise TransientProviderError(PROVIDER, "list sessions: malformed response") from None

    async def release_session(self, session_id: str) -> None:
        """Ask Browserbase to end the session now (a session already ended is fine)."""
        body: dict[str, Any] = {"status": "REQUEST_RELEASE"}
        if self._project_id:
            body["projectId"] = self._project_id
        try:
            await self._send("release session", "POST", f"/v1/sessions/{session_id}", json=body)
        except PermanentProviderError as exc:
            if exc.status_code not in (404, 409, 410):
                raise

    async def _send(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers()
        kwargs.setdefault("timeout", self._timeout)
        response = await send(
            self._http, PROVIDER, operation, method, f"{self._base_url}{path}",
            headers=headers, **kwargs,
        )  # fmt: skip
        if response.is_success:
            return response
        raise _status_error(operation, response)


def _session(response: httpx.Response, operation: str) -> BrowserbaseSession:
    try:
        return BrowserbaseSession.model_validate(response.json())
    except (ValueError, ValidationError):
        raise TransientProviderError(PROVIDER, f"{operation}: malformed response") from None


def _status_error(operation: str, response: httpx.Response) -> ProviderError:
    return status_error(
        PROVIDER,
        response.status_code,
        f"{operation} failed",
        response.headers.get("retry-after"),
    )
