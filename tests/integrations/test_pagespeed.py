"""PageSpeedClient against the PageSpeed Insights emulator: the request's parameters, the
result read into our model (absent metrics and field data as None), 429 with Retry-After and
5xx transient, a bad key and other 4xx permanent, and the key in no error text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from core.config import Settings
from core.errors import AUTHENTICATION_FAILED, INVALID_CONFIGURATION, RATE_LIMITED
from emulators import pagespeed as emulator
from emulators.endpoints import pagespeed_settings
from emulators.server import Fault, serve
from integrations.errors import PermanentProviderError, TransientProviderError
from integrations.pagespeed import CATEGORIES, TIMEOUT_S, PageSpeedClient

PAGE = "https://shop.example.com/products/espresso"


@dataclass
class Emulator:
    state: emulator.PageSpeedState
    url: str
    http: httpx.AsyncClient

    def client(self, key: str = emulator.DEFAULT_API_KEY) -> PageSpeedClient:
        return PageSpeedClient(self.http, self.url, key)


@pytest_asyncio.fixture
async def pagespeed() -> AsyncIterator[Emulator]:
    state = emulator.PageSpeedState()
    async with serve(emulator.create_app(state)) as url, httpx.AsyncClient(timeout=5) as http:
        yield Emulator(state, url, http)


async def test_a_run_asks_for_every_category_and_reads_scores_and_metrics(
    pagespeed: Emulator,
) -> None:
    result = await pagespeed.client().run(PAGE)
    call = pagespeed.state.calls[-1]
    assert (call.url, call.strategy, call.key) == (PAGE, "mobile", emulator.DEFAULT_API_KEY)
    assert call.categories == CATEGORIES
    lab = emulator.lab_result(PAGE, "mobile")
    assert result.final_url == PAGE and result.strategy == "mobile"
    assert result.scores == lab.scores
    assert set(result.scores) == {"performance", "seo", "accessibility", "best-practices"}
    assert all(0 <= score <= 100 for score in result.scores.values())
    assert result.largest_contentful_paint_ms == lab.largest_contentful_paint_ms
    assert result.cumulative_layout_shift == lab.cumulative_layout_shift
    assert result.total_blocking_time_ms == lab.total_blocking_time_ms
    assert result.field_overall_category == lab.overall_category
    desktop = await pagespeed.client().run(PAGE, strategy="desktop")
    assert (
        desktop.strategy == "desktop"
        and desktop.scores == emulator.lab_result(PAGE, "desktop").scores
    )
    with pytest.raises(ValidationError, match="frozen"):
        result.scores = {}  # type: ignore[misc]


async def test_absent_field_data_and_metrics_read_as_none(pagespeed: Emulator) -> None:
    pagespeed.state.no_field_data.add(PAGE)
    assert (await pagespeed.client().run(PAGE)).field_overall_category is None
    body = {
        "lighthouseResult": {
            "finalUrl": "https://shop.example.com/",
            "categories": {"performance": {"id": "performance", "score": 0.456}, "seo": {}},
            "audits": {"largest-contentful-paint": {"id": "largest-contentful-paint"}},
        }
    }
    pagespeed.state.faults.add("pagespeed.run", Fault(status=200, body=body))
    result = await pagespeed.client().run(PAGE)
    assert result.final_url == "https://shop.example.com/"
    assert result.scores == {"performance": 46}  # an unscored category is left out
    assert result.largest_contentful_paint_ms is None and result.total_blocking_time_ms is None
    assert result.cumulative_layout_shift is None and result.field_overall_category is None
    pagespeed.state.faults.add("pagespeed.run", Fault(status=200, body={"kind": "x"}))
    with pytest.raises(TransientProviderError, match="malformed"):
        await pagespeed.client().run(PAGE)


async def test_rate_limits_and_server_errors_are_transient(pagespeed: Emulator) -> None:
    pagespeed.state.faults.add("pagespeed.run", emulator.rate_limited(30), Fault(status=503))
    with pytest.raises(TransientProviderError) as limited:
        await pagespeed.client().run(PAGE)
    assert limited.value.error_type == RATE_LIMITED and limited.value.retry_after == 30
    assert "RESOURCE_EXHAUSTED" in str(limited.value)
    with pytest.raises(TransientProviderError) as unavailable:
        await pagespeed.client().run(PAGE)
    assert unavailable.value.status_code == 503


async def test_a_bad_key_and_bad_requests_are_permanent_and_never_show_the_key(
    pagespeed: Emulator,
) -> None:
    secret = "AIzaSy-not-a-real-key-0123456789"
    with pytest.raises(PermanentProviderError) as bad_key:
        await pagespeed.client(secret).run(PAGE)
    assert bad_key.value.status_code == 400 and bad_key.value.error_type == AUTHENTICATION_FAILED
    assert "API key not valid" in str(bad_key.value) and secret not in str(bad_key.value)
    with pytest.raises(PermanentProviderError) as bad_url:
        await pagespeed.client().run("not a url")
    assert bad_url.value.status_code == 400 and "INVALID_ARGUMENT" in str(bad_url.value)
    # A server that echoes the request's query back still never puts the key in our text.
    echo = {"error": {"code": 403, "message": f"denied for key={emulator.DEFAULT_API_KEY}"}}
    pagespeed.state.faults.add("pagespeed.run", Fault(status=403, body=echo))
    with pytest.raises(PermanentProviderError) as denied:
        await pagespeed.client().run(PAGE)
    assert emulator.DEFAULT_API_KEY not in str(denied.value) and "[key]" in str(denied.value)
    with pytest.raises(PermanentProviderError):
        await pagespeed.client().run(PAGE, strategy="tablet")


async def test_transport_failures_and_timeouts_never_show_the_key() -> None:
    secret = "AIzaSy-transport-key"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    def stall(request: httpx.Request) -> httpx.Response:
        assert request.extensions["timeout"]["read"] == TIMEOUT_S  # a long run is waited for
        raise httpx.ReadTimeout(f"timed out: {request.url}", request=request)

    for handler in (refuse, stall):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            with pytest.raises(TransientProviderError) as failed:
                await PageSpeedClient(http, "https://www.googleapis.com", secret).run(PAGE)
        assert secret not in str(failed.value) and "googleapis" not in str(failed.value)


async def test_without_a_key_the_client_is_not_configured(pagespeed: Emulator) -> None:
    client = pagespeed.client("")
    assert not client.configured and pagespeed.client().configured
    with pytest.raises(PermanentProviderError) as missing:
        await client.run(PAGE)
    assert missing.value.error_type == INVALID_CONFIGURATION
    assert pagespeed.state.calls == []


def test_the_settings_point_at_the_emulator() -> None:
    defaults = Settings.model_fields
    assert defaults["pagespeed_api_base_url"].default == "https://www.googleapis.com"
    assert defaults["pagespeed_api_key"].default == ""
    settings = Settings.model_validate(
        {k.lower(): v for k, v in pagespeed_settings("http://127.0.0.1:9").items()}
    )
    assert settings.pagespeed_api_base_url == "http://127.0.0.1:9"
    assert settings.pagespeed_api_key == emulator.DEFAULT_API_KEY
