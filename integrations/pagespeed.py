"""PageSpeed Insights v5 (providers.md 9): one Lighthouse run of a page, read into our model.

``GET {base}/pagespeedonline/v5/runPagespeed`` with ``url``, ``strategy``, ``category`` (each
of ``CATEGORIES``) and ``key``. A run takes tens of seconds, so a request may take
``TIMEOUT_S``. The client runs on an injected ``httpx.AsyncClient`` and never retries; every
failure is a ``TransientProviderError`` (429 with its ``Retry-After``, 5xx, timeouts) or a
``PermanentProviderError`` (other 4xx, such as a key Google does not accept). The key travels
in the query string, so no URL of a request and no text holding the key goes into an error.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from integrations.errors import (
    AUTHENTICATION_FAILED,
    INVALID_CONFIGURATION,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    send,
    status_error,
)

PROVIDER = "pagespeed"
PATH = "/pagespeedonline/v5/runPagespeed"
CATEGORIES = ("performance", "seo", "accessibility", "best-practices")
STRATEGIES = ("mobile", "desktop")
# Lighthouse runs take tens of seconds, sometimes close to a minute.
TIMEOUT_S = 90.0
MAX_SERVER_TEXT = 200


class PageSpeedResult(BaseModel):
    """What an audit keeps of one run: category scores and the core lab metrics."""

    model_config = ConfigDict(frozen=True)

    final_url: str
    strategy: str
    # Category id ("performance", "seo", "accessibility", "best-practices") -> 0..100.
    scores: dict[str, int]
    largest_contentful_paint_ms: float | None = None
    cumulative_layout_shift: float | None = None
    total_blocking_time_ms: float | None = None
    # CrUX field data for the page ("FAST", "AVERAGE", "SLOW"); None when Google has none.
    field_overall_category: str | None = None


class PageSpeedClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key

    @property
    def configured(self) -> bool:
        return bool(self._api_key)

    async def run(self, url: str, *, strategy: str = "mobile") -> PageSpeedResult:
        """Run Lighthouse on ``url`` through PageSpeed Insights."""
        if not self._api_key:
            raise PermanentProviderError(
                PROVIDER, "PAGESPEED_API_KEY is not set", error_type=INVALID_CONFIGURATION
            )
        if strategy not in STRATEGIES:
            raise PermanentProviderError(PROVIDER, f"unknown strategy {strategy[:20]!r}")
        params: list[tuple[str, str]] = [("url", url), ("strategy", strategy)]
        params += [("category", category) for category in CATEGORIES]
        params.append(("key", self._api_key))
        response = await send(
            self._http,
            PROVIDER,
            "run pagespeed",
            "GET",
            self._base_url + PATH,
            params=params,
            timeout=httpx.Timeout(TIMEOUT_S, connect=10.0),
        )
        if not response.is_success:
            raise self._status_error(response)
        try:
            body = response.json()
        except ValueError:
            raise TransientProviderError(PROVIDER, "run pagespeed: malformed response") from None
        result = _result(body, url, strategy)
        if result is None:
            raise TransientProviderError(PROVIDER, "run pagespeed: malformed response")
        return result

    def _status_error(self, response: httpx.Response) -> ProviderError:
        # Google's errors: {"error": {"code", "message", "status", "errors": [...]}}.
        message = ""
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                message = f"{error.get('status', '')}: {error.get('message', '')}".strip(": ")
        except ValueError:
            pass
        # The server may echo the request (and so the key) in its text: never pass it on.
        message = message.replace(self._api_key, "[key]")[:MAX_SERVER_TEXT]
        text = f"run pagespeed: {message}" if message else "run pagespeed"
        if response.status_code == 400 and "API key not valid" in message:
            # Google answers a bad key with a plain 400: name it for what it is.
            return PermanentProviderError(
                PROVIDER, text, status_code=400, error_type=AUTHENTICATION_FAILED
            )
        return status_error(
            PROVIDER, response.status_code, text, response.headers.get("retry-after")
        )


def _number(audits: dict[str, Any], audit_id: str) -> float | None:
    audit = audits.get(audit_id)
    value = audit.get("numericValue") if isinstance(audit, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _result(body: Any, url: str, strategy: str) -> PageSpeedResult | None:
    """The run's result, or None when the answer has no Lighthouse result."""
    lighthouse = body.get("lighthouseResult") if isinstance(body, dict) else None
    if not isinstance(lighthouse, dict):
        return None
    categories = lighthouse.get("categories")
    scores: dict[str, int] = {}
    for key, category in (categories if isinstance(categories, dict) else {}).items():
        score = category.get("score") if isinstance(category, dict) else None
        # A category Lighthouse could not score has a null score: leave it out.
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            scores[str(category.get("id") or key)] = round(float(score) * 100)
    audits = lighthouse.get("audits")
    audits = audits if isinstance(audits, dict) else {}
    experience = body.get("loadingExperience")
    overall = experience.get("overall_category") if isinstance(experience, dict) else None
    # finalUrl is deprecated in Lighthouse 10 in favour of finalDisplayedUrl / mainDocumentUrl.
    final = next(
        (
            value
            for name in ("finalUrl", "finalDisplayedUrl", "mainDocumentUrl", "requestedUrl")
            if isinstance(value := lighthouse.get(name), str) and value
        ),
        url,
    )
    return PageSpeedResult(
        final_url=final,
        strategy=strategy,
        scores=scores,
        largest_contentful_paint_ms=_number(audits, "largest-contentful-paint"),
        cumulative_layout_shift=_number(audits, "cumulative-layout-shift"),
        total_blocking_time_ms=_number(audits, "total-blocking-time"),
        field_overall_category=overall if isinstance(overall, str) else None,
    )
