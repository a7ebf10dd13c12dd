"""MetaAdsClient and GoogleAdsClient against the ads emulator: rows equal the seeded truth
over many pages and a date range, entities with their budgets, pauses and budget changes
applied and recorded (repeating one is harmless), dead tokens need a reconnect, 429 with
Retry-After, 5xx, slow answers and Meta's rate-limit codes are transient, budgets where the
level holds none are refused, and no token ever shows in an error's text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
import pytest_asyncio

from core.ads import AdRow, Level
from core.config import load_settings
from core.errors import INVALID_CONFIGURATION, RATE_LIMITED, REAUTH_REQUIRED, RESOURCE_NOT_FOUND
from emulators import ads as emulator
from emulators.ads import Change
from emulators.endpoints import ads_settings
from emulators.server import Fault, serve
from integrations.ads import (
    AdsAdapter,
    GoogleAdsClient,
    MetaAdsClient,
    _purchases,
    build_ads_adapters,
)
from integrations.errors import (
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
    TransientProviderError,
)

META_TOKEN = emulator.DEFAULT_META_TOKEN
GOOGLE_TOKEN = emulator.DEFAULT_GOOGLE_TOKEN
META_ACCOUNT = emulator.META_ACCOUNT
CUSTOMER = emulator.GOOGLE_CUSTOMER
SECRETS = (
    META_TOKEN,
    GOOGLE_TOKEN,
    emulator.DEFAULT_DEVELOPER_TOKEN,
    emulator.EXPIRED_TOKEN,
    "not-a-token",
)


@dataclass
class Emulator:
    state: emulator.AdsState
    meta: MetaAdsClient
    google: GoogleAdsClient
    url: str
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def ads() -> AsyncIterator[Emulator]:
    state = emulator.AdsState()
    async with serve(emulator.create_app(state)) as url, httpx.AsyncClient(timeout=5) as http:
        meta = MetaAdsClient(http, url)
        google = GoogleAdsClient(http, url, developer_token=emulator.DEFAULT_DEVELOPER_TOKEN)
        yield Emulator(state, meta, google, url, http)


def no_secret_in(exc: BaseException) -> None:
    text = f"{exc} {exc!r}"
    for secret in SECRETS:
        assert secret not in text


async def read(adapter: AdsAdapter, account: str, token: str) -> list[AdRow]:
    """Every row of the seeded window (30 days to today)."""
    today = emulator.AdsState().today
    since = today - timedelta(days=29)
    return [row async for row in adapter.rows(account, since, today, token=token)]


def ordered(rows: list[AdRow]) -> list[AdRow]:
    return sorted(rows, key=lambda r: (r.day, r.ad_id))


async def test_meta_rows_are_the_seeded_truth_read_over_every_page(ads: Emulator) -> None:
    rows = await read(ads.meta, META_ACCOUNT, META_TOKEN)
    truth = ads.state.meta_rows()
    assert len(truth) == 11 * 30  # the paused ad never delivered
    assert ordered(rows) == ordered(truth)
    assert ads.state.requests["meta.insights"] == -(-len(truth) // ads.state.page_size)
    # A range inside the window, the account named without its act_ prefix.
    until = ads.state.today - timedelta(days=3)
    since = until - timedelta(days=6)
    part = [r async for r in ads.meta.rows("1001", since, until, token=META_TOKEN)]
    assert ordered(part) == ordered(ads.state.meta_rows(since=since, until=until))
    assert {r.day for r in part} == {since + timedelta(days=n) for n in range(7)}


def test_meta_purchases_take_the_first_type_present_never_their_sum() -> None:
    actions = [
        {"action_type": "link_click", "value": "40"},
        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"},
        {"action_type": "purchase", "value": "3"},
        {"action_type": "omni_purchase", "value": "3"},
    ]
    assert _purchases(actions) == 3
    assert _purchases(actions[:3]) == 3
    assert _purchases(actions[:2]) == 2
    assert _purchases([{"action_type": "link_click", "value": "4"}]) == 0
    assert _purchases(None) == 0


async def test_the_seeded_data_has_outliers_to_find(ads: Emulator) -> None:
    def totals(rows: list[AdRow]) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        sums: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        for r in rows:
            spend, conversions, revenue = sums.get(r.ad_id, (Decimal(0),) * 3)
            sums[r.ad_id] = (spend + r.spend, conversions + r.conversions, revenue + r.revenue)
        return sums

    for rows, ad_ids in (
        (ads.state.meta_rows(), emulator.META_ADS),
        (ads.state.google_rows(), emulator.GOOGLE_ADS),
    ):
        sums = totals(rows)
        cpa = {ad: s / c for ad, (s, c, _) in sums.items() if c}
        roas = {ad: r / s for ad, (s, _, r) in sums.items()}
        assert max(cpa, key=cpa.__getitem__) == ad_ids[emulator.EXPENSIVE_AD]
        assert max(roas, key=roas.__getitem__) == ad_ids[emulator.BEST_ROAS_AD]
        others = sorted(v for ad, v in cpa.items() if ad != ad_ids[emulator.EXPENSIVE_AD])
        assert cpa[ad_ids[emulator.EXPENSIVE_AD]] > 10 * others[len(others) // 2]
        assert sums[ad_ids[emulator.NO_CONVERSIONS_AD]][1] == 0
        assert ad_ids[emulator.PAUSED_AD] not in sums


async def test_google_rows_are_the_seeded_truth_with_exact_micros(ads: Emulator) -> None:
    rows = await read(ads.google, "123-456-7890", GOOGLE_TOKEN)
    truth = ads.state.google_rows()
    assert ordered(rows) == ordered(truth)
    assert ads.state.requests["google.search"] == -(-len(truth) // ads.state.page_size)
    # Micros below the cent and half conversions come through exactly.
    assert any(r.spend.as_tuple().exponent == -6 and r.spend % Decimal("0.01") for r in rows)
    assert any(r.conversions % 1 == Decimal("0.5") for r in rows)
    since = ads.state.today - timedelta(days=1)
    part = [r async for r in ads.google.rows(CUSTOMER, since, ads.state.today, token=GOOGLE_TOKEN)]
    assert ordered(part) == ordered(ads.state.google_rows(since=since))


async def test_entities_with_statuses_and_budgets_where_the_level_holds_them(
    ads: Emulator,
) -> None:
    meta = await ads.meta.entities(META_ACCOUNT, token=META_TOKEN)
    google = await ads.google.entities(CUSTOMER, token=GOOGLE_TOKEN)
    assert meta == ads.state.entities(META_ACCOUNT)
    assert google == ads.state.entities(CUSTOMER)
    for found in (meta, google):
        assert [sum(e.level == level for e in found) for level in Level] == [3, 6, 12]
    # Seeded where each platform keeps them: Meta on ad sets, Google on campaigns.
    assert {e.level for e in meta if e.daily_budget is not None} == {Level.AD_SET}
    assert {e.level for e in google if e.daily_budget is not None} == {Level.CAMPAIGN}
    assert {e.id: e.daily_budget for e in meta}["6101"] == Decimal("50")
    assert {e.id: e.daily_budget for e in google}["7002"] == Decimal("220")
    assert {e.id: e.status for e in google}[emulator.GOOGLE_ADS[emulator.PAUSED_AD]] == "paused"
    # Deleted / removed entities are left out.
    ads.state.account(META_ACCOUNT).entities["6212"].status = "removed"
    ads.state.account(CUSTOMER).entities["7106"].status = "removed"
    assert "6212" not in {e.id for e in await ads.meta.entities("1001", token=META_TOKEN)}
    assert "7106" not in {e.id for e in await ads.google.entities(CUSTOMER, token=GOOGLE_TOKEN)}


async def test_meta_pause_and_budget_change_are_applied_and_recorded(ads: Emulator) -> None:
    expensive = emulator.META_ADS[emulator.EXPENSIVE_AD]
    await ads.meta.pause(META_ACCOUNT, Level.AD, expensive, token=META_TOKEN)
    await ads.meta.set_daily_budget(
        META_ACCOUNT, Level.AD_SET, "6102", Decimal("65.505"), token=META_TOKEN
    )
    # Absolute: the same change again leaves the budget where it is.
    await ads.meta.set_daily_budget(
        "1001", Level.AD_SET, "6102", Decimal("65.51"), token=META_TOKEN
    )
    assert ads.state.changes == [
        Change("meta", Level.AD, expensive, "status", "active", "paused"),
        Change("meta", Level.AD_SET, "6102", "daily_budget", Decimal(40), Decimal("65.51")),
        Change("meta", Level.AD_SET, "6102", "daily_budget", Decimal("65.51"), Decimal("65.51")),
    ]
    after = {e.id: e for e in await ads.meta.entities(META_ACCOUNT, token=META_TOKEN)}
    assert after[expensive].status == "paused" and after["6102"].daily_budget == Decimal("65.51")


async def test_meta_budgets_follow_the_accounts_currency(ads: Emulator) -> None:
    ads.state.account(META_ACCOUNT).currency = "JPY"
    await ads.meta.set_daily_budget(
        META_ACCOUNT, Level.AD_SET, "6101", Decimal("5000.4"), token=META_TOKEN
    )
    assert ads.state.changes[-1].after == Decimal(5000)
    found = {e.id: e for e in await ads.meta.entities(META_ACCOUNT, token=META_TOKEN)}
    assert found["6101"].daily_budget == Decimal(5000)


async def test_google_pause_and_budget_change_are_applied_and_recorded(ads: Emulator) -> None:
    expensive = emulator.GOOGLE_ADS[emulator.EXPENSIVE_AD]
    # Fresh client, nothing read before: the ad's ad group is looked up.
    await ads.google.pause("123-456-7890", Level.AD, expensive, token=GOOGLE_TOKEN)
    await ads.google.pause(CUSTOMER, Level.AD_SET, "7105", token=GOOGLE_TOKEN)
    await ads.google.pause(CUSTOMER, Level.CAMPAIGN, "7003", token=GOOGLE_TOKEN)
    for _ in range(2):
        await ads.google.set_daily_budget(
            CUSTOMER, Level.CAMPAIGN, "7001", Decimal("175.25"), token=GOOGLE_TOKEN
        )
    assert ads.state.changes == [
        Change("google", Level.AD, expensive, "status", "active", "paused"),
        Change("google", Level.AD_SET, "7105", "status", "active", "paused"),
        Change("google", Level.CAMPAIGN, "7003", "status", "active", "paused"),
        Change("google", Level.CAMPAIGN, "7001", "daily_budget", Decimal(150), Decimal("175.25")),
        Change(
            "google", Level.CAMPAIGN, "7001", "daily_budget", Decimal("175.25"), Decimal("175.25")
        ),
    ]
    after = {e.id: e for e in await ads.google.entities(CUSTOMER, token=GOOGLE_TOKEN)}
    assert [after[i].status for i in (expensive, "7105", "7003")] == ["paused"] * 3
    assert after["7001"].daily_budget == Decimal("175.25")


async def test_budgets_where_the_level_holds_none_are_refused(ads: Emulator) -> None:
    with pytest.raises(PermanentProviderError, match="ad group holds no budget") as group:
        await ads.google.set_daily_budget(
            CUSTOMER, Level.AD_SET, "7101", Decimal(10), token=GOOGLE_TOKEN
        )
    assert not group.value.retryable
    with pytest.raises(PermanentProviderError, match="ad holds no budget"):
        await ads.meta.set_daily_budget(
            META_ACCOUNT, Level.AD, emulator.META_ADS[0], Decimal(10), token=META_TOKEN
        )
    with pytest.raises(PermanentProviderError, match="positive"):
        await ads.meta.set_daily_budget(
            META_ACCOUNT, Level.AD_SET, "6101", Decimal("0.001"), token=META_TOKEN
        )
    # A shared Google budget pays for other campaigns too.
    ads.state.account(CUSTOMER).entities["7002"].shared_budget = True
    with pytest.raises(PermanentProviderError, match="shared budget"):
        await ads.google.set_daily_budget(
            CUSTOMER, Level.CAMPAIGN, "7002", Decimal(10), token=GOOGLE_TOKEN
        )
    with pytest.raises(PermanentProviderError) as missing:
        await ads.google.pause(CUSTOMER, Level.AD, "999999", token=GOOGLE_TOKEN)
    assert missing.value.error_type == RESOURCE_NOT_FOUND
    with pytest.raises(PermanentProviderError, match="digits"):
        await ads.meta.pause("act_../1001", Level.AD, "6201", token=META_TOKEN)
    assert ads.state.changes == []
    assert ads.state.requests["google.mutate"] == 0 and ads.state.requests["meta.update"] == 0


async def test_dead_tokens_need_a_reconnect(ads: Emulator) -> None:
    expired = emulator.EXPIRED_TOKEN
    calls: list[Callable[[str], Awaitable[object]]] = [
        lambda token: read(ads.meta, META_ACCOUNT, token),
        lambda token: ads.meta.entities(META_ACCOUNT, token=token),
        lambda token: ads.meta.pause(META_ACCOUNT, Level.AD, "6201", token=token),
        lambda token: read(ads.google, CUSTOMER, token),
        lambda token: ads.google.pause(CUSTOMER, Level.CAMPAIGN, "7001", token=token),
    ]
    for call in calls:
        for token in (expired, "not-a-token"):
            with pytest.raises(ReauthRequired) as dead:
                await call(token)
            assert dead.value.error_type == REAUTH_REQUIRED and not dead.value.retryable
            no_secret_in(dead.value)
    assert ads.state.changes == []


async def test_a_bad_developer_token_is_our_configuration(ads: Emulator) -> None:
    client = GoogleAdsClient(ads.http, ads.url, developer_token="not-a-token")
    with pytest.raises(PermanentProviderError) as bad:
        await client.entities(CUSTOMER, token=GOOGLE_TOKEN)
    assert not isinstance(bad.value, ReauthRequired)
    assert bad.value.error_type == INVALID_CONFIGURATION
    no_secret_in(bad.value)


async def test_rate_limits_and_server_errors_are_transient(ads: Emulator) -> None:
    faults = ads.state.faults
    faults.add("meta.insights", emulator.rate_limited(7), Fault(status=502))
    faults.add("google.search", emulator.google_rate_limited(9), Fault(status=503))
    faults.add("meta.update", Fault(status=500))
    faults.add("google.mutate", emulator.rate_limited(4))
    limited: list[ProviderError] = []
    for call, retry_after in (
        (lambda: read(ads.meta, META_ACCOUNT, META_TOKEN), 7),
        (lambda: read(ads.meta, META_ACCOUNT, META_TOKEN), None),
        (lambda: read(ads.google, CUSTOMER, GOOGLE_TOKEN), 9),
        (lambda: read(ads.google, CUSTOMER, GOOGLE_TOKEN), None),
        (lambda: ads.meta.pause(META_ACCOUNT, Level.AD, "6201", token=META_TOKEN), None),
        (lambda: ads.google.pause(CUSTOMER, Level.CAMPAIGN, "7001", token=GOOGLE_TOKEN), 4),
    ):
        with pytest.raises(TransientProviderError) as failed:
            await call()
        assert failed.value.retry_after == retry_after
        no_secret_in(failed.value)
        limited.append(failed.value)
    rate_limited = [e.error_type == RATE_LIMITED for e in limited]
    assert rate_limited == [True, False, True, False, False, True]
    assert ads.state.changes == []


async def test_meta_rate_limit_codes_on_http_400_are_transient(ads: Emulator) -> None:
    ads.state.faults.add(
        "meta.insights",
        emulator.meta_rate_limited(17),
        emulator.meta_rate_limited(80004, regain_minutes=2),
    )
    ads.state.faults.add(
        "meta.update", Fault(status=403, body=emulator.meta_error(613, "(#613) Calls exceeded"))
    )
    with pytest.raises(TransientProviderError) as user_limit:
        await read(ads.meta, META_ACCOUNT, META_TOKEN)
    assert user_limit.value.error_type == RATE_LIMITED and user_limit.value.status_code == 400
    assert user_limit.value.retry_after is None and "#17" in str(user_limit.value)
    with pytest.raises(TransientProviderError) as account_limit:
        await read(ads.meta, META_ACCOUNT, META_TOKEN)
    assert account_limit.value.retry_after == 120
    with pytest.raises(TransientProviderError) as call_limit:
        await ads.meta.pause(META_ACCOUNT, Level.AD, "6201", token=META_TOKEN)
    assert call_limit.value.error_type == RATE_LIMITED


async def test_a_failure_on_a_later_page_is_raised_from_the_iteration(ads: Emulator) -> None:
    ads.state.faults.add("meta.insights", Fault(status=200), Fault(status=503))
    ads.state.faults.add("google.search", Fault(status=200), Fault(status=500))
    for adapter, account, token in (
        (ads.meta, META_ACCOUNT, META_TOKEN),
        (ads.google, CUSTOMER, GOOGLE_TOKEN),
    ):
        seen: list[AdRow] = []
        with pytest.raises(TransientProviderError):
            async for row in adapter.rows(
                account, ads.state.first_day, ads.state.today, token=token
            ):
                seen.append(row)
        assert len(seen) == ads.state.page_size


async def test_slow_answers_time_out_as_transient(ads: Emulator) -> None:
    ads.state.faults.add("meta.insights", Fault(status=200, delay_s=1.0))
    ads.state.faults.add("google.mutate", Fault(status=200, delay_s=1.0))
    async with httpx.AsyncClient(timeout=0.2) as quick:
        meta = MetaAdsClient(quick, ads.url)
        google = GoogleAdsClient(quick, ads.url, developer_token=emulator.DEFAULT_DEVELOPER_TOKEN)
        with pytest.raises(TransientProviderError, match="timed out"):
            await read(meta, META_ACCOUNT, META_TOKEN)
        with pytest.raises(TransientProviderError, match="timed out"):
            await google.pause(CUSTOMER, Level.CAMPAIGN, "7001", token=GOOGLE_TOKEN)


async def test_server_text_that_echoes_a_token_is_scrubbed(ads: Emulator) -> None:
    echo = f"bad request with access_token={META_TOKEN} in it"
    ads.state.faults.add(
        "meta.entities", Fault(status=400, body=emulator.meta_error(100, echo, kind="Oops"))
    )
    google_echo = f"token {GOOGLE_TOKEN} and {emulator.DEFAULT_DEVELOPER_TOKEN} refused"
    ads.state.faults.add(
        "google.search",
        Fault(status=400, body=emulator.google_error(400, google_echo, ("requestError", "X"))),
    )
    with pytest.raises(PermanentProviderError) as meta:
        await ads.meta.entities(META_ACCOUNT, token=META_TOKEN)
    with pytest.raises(PermanentProviderError) as google:
        await ads.google.entities(CUSTOMER, token=GOOGLE_TOKEN)
    for error in (meta.value, google.value):
        no_secret_in(error)
        assert "***" in str(error)


async def test_the_emulator_refuses_queries_it_does_not_know(ads: Emulator) -> None:
    headers = {
        "Authorization": f"Bearer {GOOGLE_TOKEN}",
        "developer-token": emulator.DEFAULT_DEVELOPER_TOKEN,
    }
    url = f"{ads.url}/v18/customers/{CUSTOMER}/googleAds:search"
    for query in (
        "SELECT campaign.id FROM keyword_view",
        "SELECT campaign.shoe_size FROM campaign",
        "SELECT metrics.clicks, ad_group_ad.ad.id FROM ad_group_ad",
        "DELETE FROM campaign",
    ):
        answer = await ads.http.post(url, json={"query": query}, headers=headers)
        assert answer.status_code == 400, query


async def test_the_adapters_built_from_settings_reach_the_emulator(ads: Emulator) -> None:
    settings = load_settings(ads_settings(ads.url))
    adapters = build_ads_adapters(settings, ads.http)
    assert {name: a.provider for name, a in adapters.items()} == {
        "meta": "meta",
        "google": "google",
    }
    assert len(await adapters["meta"].entities(META_ACCOUNT, token=META_TOKEN)) == 21
    assert len(await adapters["google"].entities(CUSTOMER, token=GOOGLE_TOKEN)) == 21
    assert adapters["meta"].holds_budget(Level.AD_SET)
    assert not adapters["google"].holds_budget(Level.AD_SET)


async def test_meta_next_links_are_followed_only_on_the_api_host_without_the_token() -> None:
    row = {"date_start": "2025-01-01", "campaign_id": "1", "adset_id": "2", "ad_id": "3"}
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params.get("page") == "2":
            nxt = "https://elsewhere.example/v21.0/act_1/insights?page=3"
            return httpx.Response(200, json={"data": [row], "paging": {"next": nxt}})
        nxt = "https://graph.example/v21.0/act_1/insights?page=2&access_token=leaked"
        return httpx.Response(200, json={"data": [row], "paging": {"next": nxt}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = MetaAdsClient(http, "https://graph.example")
        rows: list[AdRow] = []
        with pytest.raises(TransientProviderError, match="malformed"):
            async for r in client.rows("1", date(2025, 1, 1), date(2025, 1, 1), token=META_TOKEN):
                rows.append(r)
    assert len(rows) == 2 and [r.url.host for r in seen] == ["graph.example"] * 2
    for request in seen:
        assert "access_token" not in str(request.url) and META_TOKEN not in str(request.url)
        assert request.headers["authorization"] == f"Bearer {META_TOKEN}"
