"""A loopback PageSpeed Insights v5 API (providers.md 9) with deterministic Lighthouse results.

``GET /pagespeedonline/v5/runPagespeed?url=...&strategy=...&category=...&key=...`` answers
like Google: ``lighthouseResult`` (``finalUrl``, ``categories.<id>.score`` 0..1 for each
category asked for, performance alone when none is, ``audits`` with the lab metrics'
``numericValue``), ``loadingExperience`` (CrUX ``metrics`` and ``overall_category``, or only
``initial_url`` for a URL in ``state.no_field_data``) and ``analysisUTCTimestamp``. Scores and
metrics come from a hash of the URL and strategy (``lab_result``), so a test knows them. A key
not in ``state.keys`` answers 400 as Google does; no key at all is served (Google's keyless
quota). Runs take ``state.run_s``; ``state.calls`` records each request and ``state.faults``
injects answers for route ``pagespeed.run`` (``rate_limited`` gives Google's 429).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.server import Fault, Faults

DEFAULT_API_KEY = "pagespeed-emulator-key"
RUN_PATH = "/pagespeedonline/v5/runPagespeed"
CATEGORY_TITLES = {
    "performance": "Performance",
    "seo": "SEO",
    "accessibility": "Accessibility",
    "best-practices": "Best Practices",
}
STRATEGIES = ("mobile", "desktop")


@dataclass(frozen=True)
class PageSpeedCall:
    url: str
    strategy: str
    categories: tuple[str, ...]
    key: str | None


@dataclass
class PageSpeedState:
    keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    # Seconds a run takes (the real API takes tens of them).
    run_s: float = 0.0
    # URLs CrUX has no field data for: loadingExperience carries only initial_url.
    no_field_data: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)
    calls: list[PageSpeedCall] = field(default_factory=list)


@dataclass(frozen=True)
class LabResult:
    """The emulator's deterministic result for one URL and strategy."""

    scores: dict[str, int]
    largest_contentful_paint_ms: float
    cumulative_layout_shift: float
    total_blocking_time_ms: float
    overall_category: str


def lab_result(url: str, strategy: str) -> LabResult:
    digest = hashlib.sha256(f"{strategy} {url}".encode()).digest()
    scores = {cat: 40 + digest[n] % 61 for n, cat in enumerate(CATEGORY_TITLES)}
    lcp = 800.0 + int.from_bytes(digest[4:6], "big") % 4000
    cls = (digest[6] % 40) / 100
    tbt = float(int.from_bytes(digest[7:9], "big") % 900)
    category = "FAST" if lcp < 2500 else "AVERAGE" if lcp < 4000 else "SLOW"
    return LabResult(scores, lcp, cls, tbt, category)


def _error(
    code: int, status: str, message: str, *, reason: str = "badRequest", details: Any = None
) -> Response:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": status,
    }
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, code)


def _bad_key() -> Response:
    return _error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "pagespeedonline.googleapis.com"},
            }
        ],
    )


def _audit(audit_id: str, title: str, value: float, unit: str, display: str) -> dict[str, Any]:
    return {
        "id": audit_id,
        "title": title,
        "score": 1 if unit == "unitless" and value < 0.1 else 0.5,
        "scoreDisplayMode": "numeric",
        "numericValue": value,
        "numericUnit": unit,
        "displayValue": display,
    }


def _body(url: str, strategy: str, categories: tuple[str, ...], field_data: bool) -> Any:
    lab = lab_result(url, strategy)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    experience: dict[str, Any] = {"initial_url": url}
    if field_data:
        experience = {
            "id": url,
            "metrics": {
                "LARGEST_CONTENTFUL_PAINT_MS": {
                    "percentile": round(lab.largest_contentful_paint_ms),
                    "category": lab.overall_category,
                },
                "CUMULATIVE_LAYOUT_SHIFT_SCORE": {
                    "percentile": round(lab.cumulative_layout_shift * 100),
                    "category": "FAST" if lab.cumulative_layout_shift < 0.1 else "AVERAGE",
                },
            },
            "overall_category": lab.overall_category,
            "initial_url": url,
        }
    return {
        "captchaResult": "CAPTCHA_NOT_NEEDED",
        "kind": "pagespeedonline#result",
        "id": url,
        "loadingExperience": experience,
        "lighthouseResult": {
            "requestedUrl": url,
            "finalUrl": url,
            "finalDisplayedUrl": url,
            "mainDocumentUrl": url,
            "lighthouseVersion": "12.6.0",
            "fetchTime": now,
            "configSettings": {
                "formFactor": strategy,
                "locale": "en-US",
                "onlyCategories": list(categories),
            },
            "categories": {
                cat: {"id": cat, "title": CATEGORY_TITLES[cat], "score": lab.scores[cat] / 100}
                for cat in categories
            },
            "audits": {
                "largest-contentful-paint": _audit(
                    "largest-contentful-paint",
                    "Largest Contentful Paint",
                    lab.largest_contentful_paint_ms,
                    "millisecond",
                    f"{lab.largest_contentful_paint_ms / 1000:.1f} s",
                ),
                "cumulative-layout-shift": _audit(
                    "cumulative-layout-shift",
                    "Cumulative Layout Shift",
                    lab.cumulative_layout_shift,
                    "unitless",
                    f"{lab.cumulative_layout_shift:.3f}",
                ),
                "total-blocking-time": _audit(
                    "total-blocking-time",
                    "Total Blocking Time",
                    lab.total_blocking_time_ms,
                    "millisecond",
                    f"{lab.total_blocking_time_ms:,.0f} ms",
                ),
            },
        },
        "analysisUTCTimestamp": now,
    }


def create_app(state: PageSpeedState | None = None) -> FastAPI:
    state = state or PageSpeedState()
    app = FastAPI(title="PageSpeed Insights emulator", openapi_url=None, docs_url=None)

    @app.get(RUN_PATH)
    async def run(request: Request) -> Response:
        query = request.query_params
        url, key = query.get("url"), query.get("key")
        strategy = (query.get("strategy") or "desktop").lower()
        categories = tuple(c.lower().replace("_", "-") for c in query.getlist("category"))
        state.calls.append(PageSpeedCall(url or "", strategy, categories, key))
        if fault := state.faults.next("pagespeed.run"):
            await asyncio.sleep(fault.delay_s)
            body = fault.body or {
                "error": {"code": fault.status, "message": "injected", "status": "INTERNAL"}
            }
            return JSONResponse(body, fault.status, headers=fault.headers)
        if key is not None and key not in state.keys:
            return _bad_key()
        if not url:
            return _error(400, "INVALID_ARGUMENT", "Invalid value for field 'url': required")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            return _error(400, "INVALID_ARGUMENT", f"Invalid value '{url[:100]}' for url")
        if strategy not in STRATEGIES:
            return _error(400, "INVALID_ARGUMENT", f"Invalid value '{strategy}' for strategy")
        unknown = [c for c in categories if c not in CATEGORY_TITLES]
        if unknown:
            return _error(400, "INVALID_ARGUMENT", f"Invalid value '{unknown[0]}' for category")
        if state.run_s:
            await asyncio.sleep(state.run_s)
        body = _body(url, strategy, categories or ("performance",), url not in state.no_field_data)
        return JSONResponse(body)

    return app


def rate_limited(retry_after_s: int = 1) -> Fault:
    """Google's answer when the per-minute quota is used up."""
    message = (
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service "
        "'pagespeedonline.googleapis.com'."
    )
    return Fault(
        status=429,
        headers={"Retry-After": str(retry_after_s)},
        body={
            "error": {
                "code": 429,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": "rateLimitExceeded"}],
                "status": "RESOURCE_EXHAUSTED",
            }
        },
    )
