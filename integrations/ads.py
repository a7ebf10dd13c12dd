"""Ad performance data and ad changes from Meta (Marketing API) and Google Ads (REST API),
behind one ``AdsAdapter`` interface for the AD_ANALYSIS and AD_AUTOMATION jobs
(providers.md 9).

Both clients run on an injected ``httpx.AsyncClient``, take the user's access token per call
and never retry: every failure is a ``TransientProviderError`` (timeouts, 5xx, rate limits,
``Retry-After`` honoured) or a ``PermanentProviderError`` (``ReauthRequired`` for a dead
token). Tokens travel only in the ``Authorization`` header (Graph accepts a bearer token, so
none is put in a URL that httpx logs) and are scrubbed from any server text we quote.

Money comes back as ``Decimal`` currency units: Meta reports spend as strings and budgets in
the currency's minor units (its "offset": 100 for most currencies, 1 for JPY, KRW, ...),
Google in micros. ``set_daily_budget`` takes an absolute amount, rounded half-up to the
currency's smallest unit, so repeating it changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from core.ads import AdRow, EntityState, Level
from core.config import Settings
from integrations.errors import (
    INVALID_CONFIGURATION,
    MAX_RETRY_AFTER_S,
    PERMISSION_DENIED,
    RATE_LIMITED,
    REQUEST_REJECTED,
    RESOURCE_NOT_FOUND,
    PermanentProviderError,
    ProviderError,
    ReauthRequired,
    TransientProviderError,
    parse_retry_after,
    send,
    status_error,
)

META = "meta"
GOOGLE = "google"
MAX_SERVER_TEXT = 200
# Rows per insights or edge page we ask Meta for (it may send fewer).
META_PAGE_SIZE = 500

META_INSIGHT_FIELDS = (
    "campaign_id,campaign_name,adset_id,adset_name,ad_id,ad_name,impressions,clicks,spend,"
    "actions,action_values,date_start"
)
# (level, edge, fields): the Ad node has no daily_budget field, asking for it is an error.
META_EDGES = (
    (Level.CAMPAIGN, "campaigns", "id,name,status,daily_budget"),
    (Level.AD_SET, "adsets", "id,name,status,daily_budget,campaign_id"),
    (Level.AD, "ads", "id,name,status,campaign_id,adset_id"),
)
# Meta counts one purchase under several action types at once (the cross-channel "omni"
# total, the generic one, the pixel's): the first present in this order is the figure, and
# they are never added up, which would count each purchase two or three times.
PURCHASE_ACTIONS = ("omni_purchase", "purchase", "offsite_conversion.fb_pixel_purchase")
# Throttling: app (4), user (17), page (32), per-call (613) and the business-use-case limits
# (80000 ads insights ... 80004 ads management ... 80014). Meta answers them with HTTP 400
# or 403 and no Retry-After.
META_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# An invalid, expired or revoked user token (190) or session (102): the user must reconnect.
META_REAUTH_CODES = frozenset({102, 190})
# "Unknown error" and "service temporarily unavailable": Meta's own advice is to retry.
META_TRANSIENT_CODES = frozenset({1, 2})
# Currencies Meta keeps budgets of in whole units (developers.facebook.com, "Currencies").
META_WHOLE_UNIT_CURRENCIES = frozenset(
    {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"}
)
META_STATUS = {"ACTIVE": "active", "PAUSED": "paused"}
META_GONE = frozenset({"DELETED", "ARCHIVED"})

GOOGLE_ROWS_QUERY = (
    "SELECT campaign.id, campaign.name, ad_group.id, ad_group.name, ad_group_ad.ad.id, "
    "ad_group_ad.ad.name, metrics.impressions, metrics.clicks, metrics.cost_micros, "
    "metrics.conversions, metrics.conversions_value, segments.date FROM ad_group_ad "
    "WHERE segments.date BETWEEN '{since}' AND '{until}'"
)
GOOGLE_CAMPAIGNS_QUERY = (
    "SELECT campaign.id, campaign.name, campaign.status, campaign.campaign_budget, "
    "campaign_budget.amount_micros, campaign_budget.period FROM campaign "
    "WHERE campaign.status != 'REMOVED'"
)
GOOGLE_AD_GROUPS_QUERY = (
    "SELECT ad_group.id, ad_group.name, ad_group.status, campaign.id FROM ad_group "
    "WHERE ad_group.status != 'REMOVED'"
)
GOOGLE_ADS_QUERY = (
    "SELECT ad_group_ad.ad.id, ad_group_ad.ad.name, ad_group_ad.status, ad_group.id "
    "FROM ad_group_ad WHERE ad_group_ad.status != 'REMOVED'"
)
# An ad's resource name carries its ad group (adGroupAds/{adGroupId}~{adId}).
GOOGLE_AD_GROUP_OF_AD_QUERY = (
    "SELECT ad_group.id, ad_group_ad.ad.id FROM ad_group_ad "
    "WHERE ad_group_ad.ad.id = {ad_id} AND ad_group_ad.status != 'REMOVED'"
)
GOOGLE_BUDGET_QUERY = (
    "SELECT campaign.id, campaign.campaign_budget, campaign_budget.period, "
    "campaign_budget.explicitly_shared FROM campaign "
    "WHERE campaign.id = {campaign_id} AND campaign.status != 'REMOVED'"
)
GOOGLE_STATUS = {"ENABLED": "active", "PAUSED": "paused"}
# Mutate service (and resource collection) per level.
GOOGLE_SERVICES = {Level.CAMPAIGN: "campaigns", Level.AD_SET: "adGroups", Level.AD: "adGroupAds"}
GOOGLE_LEVEL_NAMES = {Level.CAMPAIGN: "campaign", Level.AD_SET: "ad group", Level.AD: "ad"}
MICROS = 1_000_000
# Google budgets must be a multiple of the currency's smallest unit; cents suit most.
GOOGLE_BUDGET_STEP = Decimal("0.01")

_DIGITS = re.compile(r"^\d{1,20}$")
_RETRY_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


class AdsAdapter(Protocol):
    """One ad platform, as the ad jobs see it; the user's access token is passed per call."""

    provider: str

    def rows(
        self, account_id: str, since: date, until: date, *, token: str
    ) -> AsyncIterator[AdRow]:
        """Ad-level daily rows from ``since`` to ``until`` (inclusive), every page."""
        ...

    async def entities(self, account_id: str, *, token: str) -> list[EntityState]:
        """Every campaign, ad set (ad group) and ad that is not deleted."""
        ...

    async def pause(self, account_id: str, level: Level, entity_id: str, *, token: str) -> None:
        """Pause one entity (pausing a paused one is harmless)."""
        ...

    async def set_daily_budget(
        self, account_id: str, level: Level, entity_id: str, amount: Decimal, *, token: str
    ) -> None:
        """Set the daily budget to ``amount`` currency units (absolute, so repeatable)."""
        ...

    def holds_budget(self, level: Level) -> bool:
        """Whether entities of ``level`` carry a daily budget on this platform."""
        ...


class MetaAdsClient:
    """The Meta Marketing API (Graph). ``account_id`` may come with or without ``act_``."""

    provider = META

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_version: str = "v21.0") -> None:
        self._http = http
        self._base = f"{base_url.rstrip('/')}/{api_version.strip('/')}"
        self._origin = urlsplit(self._base)[:2]
        # Minor units per currency unit, per account: an ad account's currency is fixed.
        self._units: dict[str, int] = {}

    def holds_budget(self, level: Level) -> bool:
        return level in (Level.CAMPAIGN, Level.AD_SET)

    async def rows(
        self, account_id: str, since: date, until: date, *, token: str
    ) -> AsyncIterator[AdRow]:
        account = _meta_account(account_id)
        _check_range(META, since, until)
        params = {
            "level": "ad",
            "time_increment": "1",
            "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}),
            "fields": META_INSIGHT_FIELDS,
            "limit": str(META_PAGE_SIZE),
        }
        async for item in self._pages("insights", f"/act_{account}/insights", params, token):
            yield _meta_row(item)

    async def entities(self, account_id: str, *, token: str) -> list[EntityState]:
        account = _meta_account(account_id)
        units = await self._minor_units(account, token)
        found: list[EntityState] = []
        for level, edge, fields in META_EDGES:
            params = {"fields": fields, "limit": str(META_PAGE_SIZE)}
            async for item in self._pages(f"list {edge}", f"/act_{account}/{edge}", params, token):
                entity = _meta_entity(level, item, units, edge)
                if entity is not None:
                    found.append(entity)
        return found

    async def pause(self, account_id: str, level: Level, entity_id: str, *, token: str) -> None:
        # Graph updates an object by its id alone; the account is checked for form only.
        _meta_account(account_id)
        entity = _digits(META, f"{level} id", entity_id)
        await self._update("pause", entity, {"status": "PAUSED"}, token)

    async def set_daily_budget(
        self, account_id: str, level: Level, entity_id: str, amount: Decimal, *, token: str
    ) -> None:
        if not self.holds_budget(level):
            raise PermanentProviderError(
                META, f"set daily budget: a Meta {level} holds no budget (campaigns and ad sets do)"
            )
        account = _meta_account(account_id)
        entity = _digits(META, f"{level} id", entity_id)
        units = await self._minor_units(account, token)
        minor = _in_steps(META, amount, Decimal(1) / units) * units
        await self._update("set daily budget", entity, {"daily_budget": str(int(minor))}, token)

    async def _minor_units(self, account: str, token: str) -> int:
        if account not in self._units:
            body = await self._call(
                "read account", "GET", f"{self._base}/act_{account}", token,
                params={"fields": "currency"},
            )  # fmt: skip
            currency = body.get("currency")
            if not isinstance(currency, str) or not currency:
                raise _malformed(META, "read account")
            self._units[account] = 1 if currency.upper() in META_WHOLE_UNIT_CURRENCIES else 100
        return self._units[account]

    async def _update(
        self, operation: str, entity: str, fields: dict[str, str], token: str
    ) -> None:
        body = await self._call(operation, "POST", f"{self._base}/{entity}", token, data=fields)
        if body.get("success") is not True:
            raise _malformed(META, operation)

    async def _pages(
        self, operation: str, path: str, params: dict[str, str], token: str
    ) -> AsyncIterator[dict[str, Any]]:
        url, query = f"{self._base}{path}", dict(params)
        seen: set[str] = set()
        while True:
            body = await self._call(operation, "GET", url, token, params=query)
            data = body.get("data")
            if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                raise _malformed(META, operation)
            for item in data:
                yield item
            paging = body.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            link = paging.get("next")
            # Meta sends cursors on the last page too: only "next" says there is more.
            if not link:
                return
            if not isinstance(link, str) or link in seen:
                raise _malformed(META, operation)
            seen.add(link)
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if isinstance(after, str) and after:
                query = {**params, "after": after}
            else:
                url, query = self._following(link, operation)

    def _following(self, link: str, operation: str) -> tuple[str, dict[str, str]]:
        """A ``paging.next`` link, followed only on the API's own host (it gets our bearer
        token) and without any ``access_token`` it may carry."""
        parts = urlsplit(link)
        if (parts.scheme, parts.netloc) != self._origin:
            raise _malformed(META, operation)
        query = {k: v for k, v in parse_qsl(parts.query) if k != "access_token"}
        return f"{parts.scheme}://{parts.netloc}{parts.path}", query

    async def _call(
        self, operation: str, method: str, url: str, token: str, **kwargs: Any
    ) -> dict[str, Any]:
        if not token:
            raise ReauthRequired(META, f"{operation}: no access token")
        headers = {"Authorization": f"Bearer {token}"}
        response = await send(self._http, META, operation, method, url, headers=headers, **kwargs)
        if not response.is_success:
            raise _meta_error(operation, response, token)
        return _json_object(META, operation, response)


class GoogleAdsClient:
    """The Google Ads API over REST. Customer ids may come with dashes (123-456-7890)."""

    provider = GOOGLE

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        developer_token: str,
        login_customer_id: str | None = None,
        api_version: str = "v18",
    ) -> None:
        self._http = http
        self._base = f"{base_url.rstrip('/')}/{api_version.strip('/')}"
        self._developer_token = developer_token
        self._login_customer_id = (login_customer_id or "").replace("-", "").strip() or None

    def holds_budget(self, level: Level) -> bool:
        return level == Level.CAMPAIGN

    async def rows(
        self, account_id: str, since: date, until: date, *, token: str
    ) -> AsyncIterator[AdRow]:
        customer = _customer(account_id)
        _check_range(GOOGLE, since, until)
        query = GOOGLE_ROWS_QUERY.format(since=since.isoformat(), until=until.isoformat())
        async for result in self._search("search ad rows", customer, query, token):
            yield _google_row(result)

    async def entities(self, account_id: str, *, token: str) -> list[EntityState]:
        customer = _customer(account_id)
        found: list[EntityState] = []
        operation = "list campaigns"
        async for result in self._search(operation, customer, GOOGLE_CAMPAIGNS_QUERY, token):
            entity = _google_entity(Level.CAMPAIGN, result, operation)
            if entity is not None:
                found.append(entity)
        operation = "list ad groups"
        async for result in self._search(operation, customer, GOOGLE_AD_GROUPS_QUERY, token):
            entity = _google_entity(Level.AD_SET, result, operation)
            if entity is not None:
                found.append(entity)
        operation = "list ads"
        async for result in self._search(operation, customer, GOOGLE_ADS_QUERY, token):
            entity = _google_entity(Level.AD, result, operation)
            if entity is not None:
                found.append(entity)
        return found

    async def pause(self, account_id: str, level: Level, entity_id: str, *, token: str) -> None:
        customer = _customer(account_id)
        entity = _digits(GOOGLE, f"{level} id", entity_id)
        service = GOOGLE_SERVICES[Level(level)]
        if level == Level.AD:
            groups = await self._ad_groups_of(customer, entity, token)
            names = [f"customers/{customer}/adGroupAds/{group}~{entity}" for group in groups]
        else:
            names = [f"customers/{customer}/{service}/{entity}"]
        operations = [
            {"update": {"resourceName": name, "status": "PAUSED"}, "updateMask": "status"}
            for name in names
        ]
        await self._mutate("pause", customer, service, operations, token)

    async def set_daily_budget(
        self, account_id: str, level: Level, entity_id: str, amount: Decimal, *, token: str
    ) -> None:
        if not self.holds_budget(level):
            name = GOOGLE_LEVEL_NAMES[Level(level)]
            raise PermanentProviderError(
                GOOGLE,
                f"set daily budget: a Google Ads {name} holds no budget; budgets belong to "
                "campaigns",
            )
        customer = _customer(account_id)
        campaign = _digits(GOOGLE, "campaign id", entity_id)
        micros = int(_in_steps(GOOGLE, amount, GOOGLE_BUDGET_STEP) * MICROS)
        budget = await self._budget_of(customer, campaign, token)
        operation = {
            "update": {"resourceName": budget, "amountMicros": str(micros)},
            "updateMask": "amount_micros",
        }
        await self._mutate("set daily budget", customer, "campaignBudgets", [operation], token)

    async def _ad_groups_of(self, customer: str, ad_id: str, token: str) -> list[str]:
        """The ad groups an ad is in (its resource name needs one): looked up, not cached, so
        a long-lived worker holds no per-account state."""
        operation = "find ad"
        query = GOOGLE_AD_GROUP_OF_AD_QUERY.format(ad_id=ad_id)
        groups: list[str] = []
        async for result in self._search(operation, customer, query, token):
            try:
                groups.append(_digits(GOOGLE, "ad group id", str(result["adGroup"]["id"])))
            except (KeyError, TypeError):
                raise _malformed(GOOGLE, operation) from None
        if not groups:
            raise PermanentProviderError(
                GOOGLE, f"pause: no ad {ad_id} in customer {customer}",
                error_type=RESOURCE_NOT_FOUND,
            )  # fmt: skip
        return groups

    async def _budget_of(self, customer: str, campaign: str, token: str) -> str:
        """The resource name of a campaign's own daily budget."""
        operation = "find budget"
        query = GOOGLE_BUDGET_QUERY.format(campaign_id=campaign)
        results = [r async for r in self._search(operation, customer, query, token)]
        if not results:
            raise PermanentProviderError(
                GOOGLE, f"set daily budget: no campaign {campaign} in customer {customer}",
                error_type=RESOURCE_NOT_FOUND,
            )  # fmt: skip
        result = results[0]
        try:
            name = result["campaign"]["campaignBudget"]
            budget = result.get("campaignBudget") or {}
            shared, period = budget.get("explicitlyShared"), budget.get("period")
        except (KeyError, TypeError, AttributeError):
            raise _malformed(GOOGLE, operation) from None
        if not isinstance(name, str) or not re.fullmatch(
            rf"customers/{customer}/campaignBudgets/\d+", name
        ):
            raise _malformed(GOOGLE, operation)
        # A shared budget pays for other campaigns too: changing it would change them all.
        if shared is True:
            raise PermanentProviderError(
                GOOGLE, f"set daily budget: campaign {campaign} uses a shared budget"
            )
        if period not in (None, "DAILY"):
            raise PermanentProviderError(
                GOOGLE, f"set daily budget: campaign {campaign} has no daily budget ({period})"
            )
        return name

    async def _search(
        self, operation: str, customer: str, query: str, token: str
    ) -> AsyncIterator[dict[str, Any]]:
        body: dict[str, Any] = {"query": query}
        seen: set[str] = set()
        while True:
            page = await self._post(operation, customer, "googleAds:search", body, token)
            results = page.get("results", [])  # absent when nothing matched
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise _malformed(GOOGLE, operation)
            for result in results:
                yield result
            page_token = page.get("nextPageToken")
            if not page_token:
                return
            if not isinstance(page_token, str) or page_token in seen:
                raise _malformed(GOOGLE, operation)
            seen.add(page_token)
            body = {"query": query, "pageToken": page_token}

    async def _mutate(
        self,
        operation: str,
        customer: str,
        service: str,
        operations: list[dict[str, Any]],
        token: str,
    ) -> None:
        body = {"operations": operations}
        answer = await self._post(operation, customer, f"{service}:mutate", body, token)
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(operations):
            raise _malformed(GOOGLE, operation)

    async def _post(
        self, operation: str, customer: str, method: str, body: dict[str, Any], token: str
    ) -> dict[str, Any]:
        if not self._developer_token:
            raise PermanentProviderError(
                GOOGLE, "GOOGLE_ADS_DEVELOPER_TOKEN is not set", error_type=INVALID_CONFIGURATION
            )
        if not token:
            raise ReauthRequired(GOOGLE, f"{operation}: no access token")
        headers = {"Authorization": f"Bearer {token}", "developer-token": self._developer_token}
        if self._login_customer_id:
            headers["login-customer-id"] = self._login_customer_id
        url = f"{self._base}/customers/{customer}/{method}"
        response = await send(
            self._http, GOOGLE, operation, "POST", url, headers=headers, json=body
        )
        if not response.is_success:
            raise _google_error(operation, response, (token, self._developer_token))
        # Doubles (conversions, values) parsed as Decimal: no binary rounding on the way in.
        return _json_object(GOOGLE, operation, response, parse_float=Decimal)


def build_ads_adapters(settings: Settings, http: httpx.AsyncClient) -> dict[str, AdsAdapter]:
    """The adapter of each ad platform, on the worker's shared HTTP client."""
    return {
        META: MetaAdsClient(http, settings.meta_api_base_url, settings.meta_api_version),
        GOOGLE: GoogleAdsClient(
            http,
            settings.google_ads_api_base_url,
            developer_token=settings.google_ads_developer_token,
            login_customer_id=settings.google_ads_login_customer_id or None,
            api_version=settings.google_ads_api_version,
        ),
    }


# --- reading answers ---------------------------------------------------------------------


def _meta_row(item: Mapping[str, Any]) -> AdRow:
    try:
        return AdRow(
            day=date.fromisoformat(str(item["date_start"])),
            campaign_id=str(item["campaign_id"]),
            campaign_name=str(item.get("campaign_name") or ""),
            ad_set_id=str(item["adset_id"]),
            ad_set_name=str(item.get("adset_name") or ""),
            ad_id=str(item["ad_id"]),
            ad_name=str(item.get("ad_name") or ""),
            impressions=int(item.get("impressions") or 0),
            clicks=int(item.get("clicks") or 0),
            spend=_decimal(item.get("spend") or 0),
            conversions=_purchases(item.get("actions")),
            revenue=_purchases(item.get("action_values")),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError):
        raise _malformed(META, "insights") from None


def _purchases(actions: Any) -> Decimal:
    """The purchase figure of an ``actions`` / ``action_values`` list (see PURCHASE_ACTIONS)."""
    if actions is None:
        return Decimal(0)
    if not isinstance(actions, list):
        raise TypeError("actions is not a list")
    values = {a.get("action_type"): a.get("value") for a in actions if isinstance(a, dict)}
    for action_type in PURCHASE_ACTIONS:
        if action_type in values:
            return _decimal(values[action_type])
    return Decimal(0)


def _meta_entity(
    level: Level, item: Mapping[str, Any], units: int, edge: str
) -> EntityState | None:
    try:
        status = str(item.get("status") or "")
        if status in META_GONE:
            return None
        raw_budget = item.get("daily_budget")
        # Absent or "0": the budget lives at the other level (or is a lifetime budget).
        budget = int(str(raw_budget)) if raw_budget not in (None, "") else 0
        return EntityState(
            level=level,
            id=_digits(META, f"{level} id", str(item["id"])),
            name=str(item.get("name") or ""),
            status=META_STATUS.get(status, status.lower()),
            daily_budget=Decimal(budget) / units if budget > 0 else None,
        )
    except (KeyError, TypeError, ValueError, PermanentProviderError):
        raise _malformed(META, f"list {edge}") from None


def _google_row(result: Mapping[str, Any]) -> AdRow:
    try:
        campaign, group = result["campaign"], result["adGroup"]
        ad = result["adGroupAd"]["ad"]
        # proto3 JSON leaves zero metrics out.
        metrics = result.get("metrics") or {}
        return AdRow(
            day=date.fromisoformat(str(result["segments"]["date"])),
            campaign_id=str(campaign["id"]),
            campaign_name=str(campaign.get("name") or ""),
            ad_set_id=str(group["id"]),
            ad_set_name=str(group.get("name") or ""),
            ad_id=str(ad["id"]),
            ad_name=str(ad.get("name") or ""),
            impressions=int(metrics.get("impressions") or 0),
            clicks=int(metrics.get("clicks") or 0),
            # int64 micros as a string: exact, scaled by a power of ten.
            spend=Decimal(int(metrics.get("costMicros") or 0)).scaleb(-6),
            conversions=_decimal(metrics.get("conversions") or 0),
            revenue=_decimal(metrics.get("conversionsValue") or 0),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError):
        raise _malformed(GOOGLE, "search ad rows") from None


def _google_entity(level: Level, result: Mapping[str, Any], operation: str) -> EntityState | None:
    try:
        if level == Level.CAMPAIGN:
            node, name = result["campaign"], result["campaign"].get("name")
        elif level == Level.AD_SET:
            node, name = result["adGroup"], result["adGroup"].get("name")
        else:
            node, name = result["adGroupAd"], result["adGroupAd"]["ad"].get("name")
        status = str(node.get("status") or "")
        if status == "REMOVED":
            return None
        entity_id = result["adGroupAd"]["ad"]["id"] if level == Level.AD else node["id"]
        budget: Decimal | None = None
        if level == Level.CAMPAIGN:
            held = result.get("campaignBudget") or {}
            micros = int(held.get("amountMicros") or 0)
            # A total (custom-period) budget is not a daily one.
            if micros > 0 and held.get("period") in (None, "DAILY"):
                budget = Decimal(micros).scaleb(-6)
        return EntityState(
            level=level,
            id=_digits(GOOGLE, f"{level} id", str(entity_id)),
            name=str(name or ""),
            status=GOOGLE_STATUS.get(status, status.lower()),
            daily_budget=budget,
        )
    except (KeyError, TypeError, ValueError, AttributeError, PermanentProviderError):
        raise _malformed(GOOGLE, operation) from None


def _json_object(
    provider: str, operation: str, response: httpx.Response, **loads: Any
) -> dict[str, Any]:
    try:
        body = response.json(**loads)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _malformed(provider, operation)
    return body


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise TypeError("not a number")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError("not a finite number")
    return number


# --- checking arguments ------------------------------------------------------------------


def _digits(provider: str, what: str, value: str) -> str:
    """Ids go into URL paths and GAQL: digits only, nothing that could change either."""
    text = value.strip()
    if not _DIGITS.match(text):
        raise PermanentProviderError(
            provider, f"{what} must be digits, got {text[:40]!r}", error_type=REQUEST_REJECTED
        )
    return text


def _meta_account(account_id: str) -> str:
    text = account_id.strip()
    return _digits(META, "ad account id", text[4:] if text.startswith("act_") else text)


def _customer(account_id: str) -> str:
    return _digits(GOOGLE, "customer id", account_id.replace("-", ""))


def _check_range(provider: str, since: date, until: date) -> None:
    if since > until:
        raise PermanentProviderError(
            provider, f"date range {since} .. {until} ends before it starts",
            error_type=REQUEST_REJECTED,
        )  # fmt: skip


def _in_steps(provider: str, amount: Decimal, step: Decimal) -> Decimal:
    """``amount`` rounded half-up to ``step`` (the currency's smallest unit), refused when
    that is not a positive number."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise PermanentProviderError(
            provider, "set daily budget: the amount must be a finite Decimal"
        )
    rounded = amount.quantize(step, rounding=ROUND_HALF_UP)
    if rounded <= 0:
        raise PermanentProviderError(
            provider, f"set daily budget: the amount must be positive, got {amount}"
        )
    return rounded


# --- classifying errors ------------------------------------------------------------------


def _malformed(provider: str, operation: str) -> TransientProviderError:
    return TransientProviderError(provider, f"{operation}: malformed response")


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # Cut after scrubbing, so no partial secret survives at the end.
    return text[:MAX_SERVER_TEXT]


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _meta_error(operation: str, response: httpx.Response, token: str) -> ProviderError:
    """Meta's ``{"error": {message, type, code, error_subcode, fbtrace_id}}`` by its code: the
    HTTP status says little (throttling comes as 400 or 403)."""
    status = response.status_code
    error = _error_object(response)
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    text = _scrub(str(error.get("message") or ""), (token,))
    kind = _scrub(str(error.get("type") or ""), (token,))[:40]
    label = f"#{code}" + (f"/{subcode}" if subcode else "") if code is not None else ""
    message = f"{operation} failed"
    if label or kind:
        message += f" ({' '.join(p for p in (label, kind) if p)})"
    if text:
        message += f": {text}"
    trace = error.get("fbtrace_id")
    if isinstance(trace, str) and trace.isalnum():
        message += f" [fbtrace_id {trace[:40]}]"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retry_after is None:
        retry_after = _meta_regain_s(response.headers)
    if code in META_REAUTH_CODES:
        return ReauthRequired(META, message, status_code=status)
    if code in META_RATE_LIMIT_CODES or status == 429:
        return TransientProviderError(
            META, message, status_code=status, retry_after=retry_after, error_type=RATE_LIMITED
        )
    if code in META_TRANSIENT_CODES or error.get("is_transient") is True or status >= 500:
        return TransientProviderError(META, message, status_code=status, retry_after=retry_after)
    if code is not None and (code == 10 or 200 <= code <= 299):
        return PermanentProviderError(
            META, message, status_code=status, error_type=PERMISSION_DENIED
        )
    if code == 100 and subcode == 33:
        return PermanentProviderError(
            META, message, status_code=status, error_type=RESOURCE_NOT_FOUND
        )
    return status_error(META, status, message, response.headers.get("retry-after"))


def _meta_regain_s(headers: httpx.Headers) -> float | None:
    """``X-Business-Use-Case-Usage``'s ``estimated_time_to_regain_access`` (minutes), the
    nearest thing to a Retry-After that Meta's throttling sends."""
    try:
        usage = json.loads(headers.get("x-business-use-case-usage") or "null")
    except ValueError:
        return None
    if not isinstance(usage, dict):
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in usage.values()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    waits = [float(m) for m in minutes if isinstance(m, int | float) and not isinstance(m, bool)]
    longest = max(waits, default=0.0)
    return min(longest * 60, MAX_RETRY_AFTER_S) if longest > 0 else None


def _google_error(
    operation: str, response: httpx.Response, secrets: tuple[str, ...]
) -> ProviderError:
    """Google's ``{"error": {code, message, status, details}}``; the GoogleAdsFailure in
    ``details`` names each error (``{"authenticationError": "OAUTH_TOKEN_EXPIRED"}``)."""
    status = response.status_code
    error = _error_object(response)
    codes: list[str] = []
    for detail in error.get("details") or []:
        for item in (detail.get("errors") or []) if isinstance(detail, dict) else []:
            error_code = item.get("errorCode") if isinstance(item, dict) else None
            if isinstance(error_code, dict):
                codes += [f"{k}.{v}" for k, v in error_code.items() if isinstance(v, str)]
    rpc_status = str(error.get("status") or "")
    text = _scrub(str(error.get("message") or ""), secrets)
    message = f"{operation} failed"
    named = [rpc_status] if rpc_status else []
    named += [_scrub(code, secrets)[:80] for code in codes[:3]]
    if named:
        message += f" ({', '.join(named)})"
    if text:
        message += f": {text}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retry_after is None:
        retry_after = _google_retry_delay(error)
    if any("DEVELOPER_TOKEN" in code for code in codes):
        # Our configuration, not the user's connection.
        return PermanentProviderError(
            GOOGLE, message, status_code=status, error_type=INVALID_CONFIGURATION
        )
    if status == 401:
        return ReauthRequired(GOOGLE, message, status_code=status)
    if status == 429:
        return TransientProviderError(
            GOOGLE, message, status_code=status, retry_after=retry_after, error_type=RATE_LIMITED
        )
    if status >= 500 or status in (408, 425):
        return TransientProviderError(GOOGLE, message, status_code=status, retry_after=retry_after)
    return status_error(GOOGLE, status, message)


def _google_retry_delay(error: Mapping[str, Any]) -> float | None:
    """A ``retryDelay`` ("30s") from the failure's details (RetryInfo, quotaErrorDetails)."""
    stack: list[Any] = [error.get("details")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            delay = node.get("retryDelay")
            if isinstance(delay, str) and (match := _RETRY_DELAY.match(delay)):
                return min(float(match[1]), MAX_RETRY_AFTER_S)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None
