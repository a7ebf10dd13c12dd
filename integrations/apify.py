"""The Apify API v2 (providers.md 6): start an actor run, wait for it, read its dataset.

The client runs on an injected ``httpx.AsyncClient`` and never retries; every failure is a
``TransientProviderError`` (429 with its ``Retry-After``, 408, 5xx, timeouts, a run that
timed out) or a ``PermanentProviderError`` (400, 401, 402, 403, 404, a run that failed).
Lead-enrichment actors have no standard output, so ``FieldMapping`` turns an item into our
own ``EnrichedLead`` by dotted paths that come from configuration (``APIFY_FIELD_MAPPING``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from integrations.errors import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    send,
    status_error,
)

PROVIDER = "apify"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})
# The longest wait the API allows per request (waitForFinish, seconds).
MAX_WAIT_S = 60
PAGE_SIZE = 1000
MAX_SERVER_TEXT = 200
# Seconds a request may take beyond the time the API was asked to wait.
REQUEST_MARGIN_S = 15

# Our field -> dotted path in an actor's dataset item. The defaults read items shaped like
# {"leadId", "person": {...}, "company": {...}} (the emulator's, and a common actor shape).
DEFAULT_FIELD_MAPPING: dict[str, str] = {
    "lead_id": "leadId",
    "person_name": "person.name",
    "person_title": "person.title",
    "person_email": "person.email",
    "person_phone": "person.phone",
    "person_linkedin": "person.linkedinUrl",
    "company_name": "company.name",
    "company_domain": "company.domain",
    "company_size": "company.size",
    "company_industry": "company.industry",
    "error": "error",
}


class EnrichedLead(BaseModel):
    """One lead's enrichment in our own schema."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    person_name: str | None = None
    person_title: str | None = None
    person_email: str | None = None
    person_phone: str | None = None
    person_linkedin: str | None = None
    company_name: str | None = None
    company_domain: str | None = None
    company_size: str | None = None
    company_industry: str | None = None
    # What the actor reported for a lead it could not enrich.
    error: str | None = None

    @property
    def found_anything(self) -> bool:
        return any(
            value is not None
            for name, value in self.model_dump(exclude={"lead_id", "error"}).items()
        )


class FieldMapping:
    """Reads our fields out of an actor's items by dotted paths."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        unknown = set(paths) - set(EnrichedLead.model_fields)
        if unknown:
            raise ValueError(f"unknown fields in the mapping: {', '.join(sorted(unknown))}")
        if "lead_id" not in paths:
            raise ValueError("the mapping must say where the lead id is (lead_id)")
        self.paths = dict(paths)

    @classmethod
    def from_setting(cls, text: str) -> FieldMapping:
        """``APIFY_FIELD_MAPPING``: a JSON object merged over the defaults ('' for none)."""
        if not text.strip():
            return cls(DEFAULT_FIELD_MAPPING)
        try:
            overrides = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(overrides, dict) or not all(
            isinstance(v, str) for v in overrides.values()
        ):
            raise ValueError("must be a JSON object of field -> dotted path")
        return cls({**DEFAULT_FIELD_MAPPING, **overrides})

    def read(self, item: Mapping[str, Any]) -> EnrichedLead | None:
        """The lead an item describes; None when it names no lead."""
        values: dict[str, str] = {}
        for name, path in self.paths.items():
            value: Any = item
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is not None and not isinstance(value, (dict, list)):
                values[name] = str(value)
        if not values.get("lead_id"):
            return None
        return EnrichedLead.model_validate(values)


class ActorRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: str
    dataset_id: str | None = None
    status_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class ApifyClient:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, token: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._token = token

    @property
    def configured(self) -> bool:
        return bool(self._token)

    async def start_run(
        self, actor_id: str, actor_input: dict[str, Any], *, wait_s: int = MAX_WAIT_S
    ) -> ActorRun:
        """Start the actor (``POST /v2/acts/{id}/runs``), waiting up to ``wait_s`` for it."""
        wait = min(max(wait_s, 0), MAX_WAIT_S)
        response = await self._send(
            "start run",
            "POST",
            f"/v2/acts/{actor_id.replace('/', '~')}/runs",
            params={"waitForFinish": wait},
            json=actor_input,
            timeout=_waiting(wait),
        )
        return _run(response, "start run")

    async def get_run(self, run_id: str, *, wait_s: int = MAX_WAIT_S) -> ActorRun:
        wait = min(max(wait_s, 0), MAX_WAIT_S)
        response = await self._send(
            "get run",
            "GET",
            f"/v2/actor-runs/{run_id}",
            params={"waitForFinish": wait},
            timeout=_waiting(wait),
        )
        return _run(response, "get run")

    async def items(self, dataset_id: str, *, offset: int = 0, limit: int = PAGE_SIZE) -> list[Any]:
        """One page of a dataset's items (a bare JSON array)."""
        response = await self._send(
            "list items",
            "GET",
            f"/v2/datasets/{dataset_id}/items",
            params={"format": "json", "clean": "true", "offset": offset, "limit": limit},
            timeout=_waiting(0),
        )
        try:
            body = response.json()
        except ValueError:
            raise TransientProviderError(PROVIDER, "list items: malformed response") from None
        if not isinstance(body, list):
            raise TransientProviderError(PROVIDER, "list items: malformed response")
        return body

    async def all_items(self, dataset_id: str) -> list[Any]:
        items: list[Any] = []
        while True:
            page = await self.items(dataset_id, offset=len(items))
            items.extend(page)
            if len(page) < PAGE_SIZE:
                return items

    async def _send(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self._token:
            raise PermanentProviderError(
                PROVIDER, "APIFY_TOKEN is not set", error_type="InvalidConfiguration"
            )
        headers = {"Authorization": f"Bearer {self._token}"}
        url = f"{self._base_url}{path}"
        response = await send(
            self._http, PROVIDER, operation, method, url, headers=headers, **kwargs
        )
        if response.is_success:
            return response
        raise _status_error(operation, response)


def _waiting(wait_s: int) -> httpx.Timeout:
    """The API holds the answer up to ``wait_s``: read for that long and a margin more."""
    return httpx.Timeout(wait_s + REQUEST_MARGIN_S, connect=5.0)


def run_error(run: ActorRun) -> ProviderError:
    """The error of a run that ended without succeeding: a time-out may pass, a failure not."""
    message = f"actor run {run.status}: {(run.status_message or '')[:MAX_SERVER_TEXT]}".rstrip(": ")
    if run.status == "TIMED-OUT":
        return TransientProviderError(PROVIDER, message)
    return PermanentProviderError(PROVIDER, message)


def _run(response: httpx.Response, operation: str) -> ActorRun:
    try:
        data = response.json()["data"]
        return ActorRun(
            id=data["id"],
            status=data["status"],
            dataset_id=data.get("defaultDatasetId"),
            status_message=data.get("statusMessage"),
        )
    except (ValueError, KeyError, TypeError):
        raise TransientProviderError(PROVIDER, f"{operation}: malformed response") from None


def _status_error(operation: str, response: httpx.Response) -> ProviderError:
    message = ""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = f"{error.get('type', '')}: {error.get('message', '')}"[:MAX_SERVER_TEXT]
    except ValueError:
        pass
    text = f"{operation}: {message}" if message else operation
    return status_error(PROVIDER, response.status_code, text, response.headers.get("retry-after"))
