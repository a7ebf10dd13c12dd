"""A loopback Meta Marketing API and Google Ads API (REST) for the ad jobs (providers.md 9),
in one app under the real paths.

Meta (``/v21.0``): ``GET /act_{id}/insights`` (``level=ad``, ``time_increment=1``,
``time_range``; cursor paging with ``paging.next``), ``GET /act_{id}/campaigns|adsets|ads``,
``GET /act_{id}?fields=currency`` and ``POST /{entity_id}`` with ``status`` or
``daily_budget`` (minor units). Google (``/v18``): ``POST /customers/{cid}/googleAds:search``
(the few GAQL shapes the adapter sends: a ``FROM`` resource, known fields, ``segments.date
BETWEEN``, ``=`` / ``!=`` conditions; anything else is a 400) and
``campaigns|adGroups|adGroupAds|campaignBudgets:mutate`` (``update`` operations).

Seeded (``AdsState()``): Meta account ``act_1001`` and Google customer ``1234567890``, each
3 campaigns x 2 ad sets (ad groups) x 2 ads, with ``days`` of daily metrics per ad ending at
``today``, from a fixed formula per ad profile (``PROFILES``): ad ``EXPENSIVE_AD`` costs far
the most per conversion, ``BEST_ROAS_AD`` has far the best ROAS, ``NO_CONVERSIONS_AD``
spends and never converts, ``PAUSED_AD`` is paused and never delivered. Meta budgets sit on
ad sets, Google's on campaigns. ``state.meta_rows()`` / ``state.google_rows()`` are what the
adapters should read, ``state.entities(account)`` the current entities; every change
received is applied and appended to ``state.changes``.

``state.faults`` injects answers per route (``meta.insights``, ``meta.entities``,
``meta.account``, ``meta.update``, ``google.search``, ``google.mutate``): a fault whose
status is below 400 only delays the normal answer; others answer with their status, headers
and body (a provider-shaped error when the fault has none).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from core.ads import AdRow, EntityState, Level
from emulators.server import Fault, Faults

META_VERSION = "v21.0"
GOOGLE_VERSION = "v18"
DEFAULT_META_TOKEN = "meta-emulator-token"
DEFAULT_GOOGLE_TOKEN = "google-ads-emulator-token"
DEFAULT_DEVELOPER_TOKEN = "google-ads-emulator-developer-token"
# Answered as expired (Meta #190/463, Google 401 OAUTH_TOKEN_EXPIRED).
EXPIRED_TOKEN = "ads-emulator-expired-token"
META_ACCOUNT = "act_1001"
GOOGLE_CUSTOMER = "1234567890"
DEFAULT_PAGE_SIZE = 25
MAX_META_LIMIT = 5000

CAMPAIGN_NAMES = ("Prospecting", "Retargeting", "Brand")


@dataclass(frozen=True)
class Profile:
    """How one ad performs: a typical day's impressions, then rates (per mille) and prices."""

    impressions: int
    ctr_permille: int  # clicks per 1,000 impressions
    cpc_cents: int
    cvr_permille: int  # conversions per 1,000 clicks
    aov_cents: int  # revenue per conversion


# Ad i is the (i % 2 + 1)-th ad of ad set i // 2, of campaign i // 4.
PROFILES = (
    Profile(4000, 18, 85, 40, 6500),
    Profile(3200, 25, 70, 55, 5800),
    Profile(2500, 42, 45, 90, 14000),  # best ROAS (about 28): cheap clicks, big baskets
    Profile(3800, 12, 110, 30, 5200),
    Profile(5000, 9, 95, 25, 4800),
    Profile(2900, 30, 60, 45, 6100),
    Profile(4200, 15, 120, 35, 7000),
    Profile(3500, 22, 240, 4, 5000),  # dear clicks that rarely convert: CPA about 600
    Profile(6000, 6, 50, 20, 3900),  # lowest CTR (0.6 %)
    Profile(2700, 35, 65, 60, 6600),
    Profile(3100, 20, 80, 0, 0),  # spends, never converts
    Profile(3000, 20, 80, 40, 6000),  # paused from the start: no delivery
)
BEST_ROAS_AD = 2
EXPENSIVE_AD = 7
LOWEST_CTR_AD = 8
NO_CONVERSIONS_AD = 10
PAUSED_AD = 11
# Daily budgets in currency units: Meta's per ad set, Google's per campaign.
META_AD_SET_BUDGETS = ("50", "40", "75", "120", "30", "25")
GOOGLE_CAMPAIGN_BUDGETS = ("150", "220", "60")

# Ids by index: campaigns c, ad sets / ad groups s, ads i (and Google budgets per campaign).
META_CAMPAIGNS = tuple(f"60{c + 1:02d}" for c in range(3))
META_AD_SETS = tuple(f"61{s + 1:02d}" for s in range(6))
META_ADS = tuple(f"62{i + 1:02d}" for i in range(12))
GOOGLE_CAMPAIGNS = tuple(f"70{c + 1:02d}" for c in range(3))
GOOGLE_AD_GROUPS = tuple(f"71{s + 1:02d}" for s in range(6))
GOOGLE_ADS = tuple(f"72{i + 1:02d}" for i in range(12))
GOOGLE_BUDGETS = tuple(f"73{c + 1:02d}" for c in range(3))

Provider = Literal["meta", "google"]


@dataclass(frozen=True)
class DayMetrics:
    """One ad's day as the emulator knows it; each API reports it in its own units."""

    day: date
    impressions: int
    clicks: int
    spend_cents: int
    # Google's extra micros below the cent (0..9999), so spend is not a round figure.
    spend_micros_extra: int
    # Google reports fractional conversions (in halves here), Meta whole purchases; each
    # averages to the profile's rate.
    conversion_halves: int
    revenue_cents: int
    purchases: int
    purchase_revenue_cents: int


@dataclass
class Entity:
    level: Level
    id: str
    name: str
    # Ours: "active", "paused" or "removed" (the APIs hide removed ones from the adapter).
    status: str
    campaign_id: str
    ad_set_id: str | None = None
    daily_budget: Decimal | None = None
    # Google: the campaign's budget resource and whether other campaigns share it.
    budget_id: str | None = None
    shared_budget: bool = False
    profile: int | None = None


@dataclass
class AdsAccount:
    provider: Provider
    # Meta's without "act_".
    id: str
    currency: str = "USD"
    entities: dict[str, Entity] = field(default_factory=dict)

    def of_level(self, level: Level) -> list[Entity]:
        return [e for e in self.entities.values() if e.level == level]


@dataclass(frozen=True)
class Change:
    """One change received: status as "active"/"paused", budgets in currency units."""

    provider: Provider
    level: Level
    id: str
    field: str
    before: str | Decimal | None
    after: str | Decimal | None


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass
class AdsState:
    today: date = field(default_factory=_today)
    days: int = 30
    # Rows per page of every listing (Meta's limit is capped by it, Google has no page size).
    page_size: int = DEFAULT_PAGE_SIZE
    meta_tokens: set[str] = field(default_factory=lambda: {DEFAULT_META_TOKEN})
    google_tokens: set[str] = field(default_factory=lambda: {DEFAULT_GOOGLE_TOKEN})
    developer_tokens: set[str] = field(default_factory=lambda: {DEFAULT_DEVELOPER_TOKEN})
    expired_tokens: set[str] = field(default_factory=lambda: {EXPIRED_TOKEN})
    faults: Faults = field(default_factory=Faults)
    changes: list[Change] = field(default_factory=list)
    # Requests received per route name (pages read, lookups made).
    requests: Counter[str] = field(default_factory=Counter)
    accounts: dict[str, AdsAccount] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.accounts:
            self.accounts = {
                META_ACCOUNT.removeprefix("act_"): _seed("meta"),
                GOOGLE_CUSTOMER: _seed("google"),
            }

    @property
    def first_day(self) -> date:
        return self.today - timedelta(days=self.days - 1)

    def account(self, account_id: str) -> AdsAccount:
        return self.accounts[account_id.removeprefix("act_").replace("-", "")]

    def metrics(self, ad: Entity) -> Iterator[DayMetrics]:
        """The ad's days with delivery, oldest first."""
        if ad.profile is None or ad.profile == PAUSED_AD:
            return
        for offset in range(self.days):
            day = self.first_day + timedelta(days=offset)
            metrics = day_metrics(ad.profile, offset, day)
            if metrics.impressions:
                yield metrics

    def meta_rows(
        self, account: str = META_ACCOUNT, since: date | None = None, until: date | None = None
    ) -> list[AdRow]:
        """What Meta's insights report for the range (the whole seeded window by default)."""
        return [self._row(ad, m, "meta") for ad, m in self.deliveries(account, since, until)]

    def google_rows(
        self, customer: str = GOOGLE_CUSTOMER, since: date | None = None, until: date | None = None
    ) -> list[AdRow]:
        return [self._row(ad, m, "google") for ad, m in self.deliveries(customer, since, until)]

    def entities(self, account: str) -> list[EntityState]:
        """The account's entities as the adapter should read them now (removed ones hidden)."""
        return [
            EntityState(
                level=e.level, id=e.id, name=e.name, status=e.status, daily_budget=e.daily_budget
            )
            for e in self.account(account).entities.values()
            if e.status != "removed"
        ]

    def deliveries(
        self, account: str, since: date | None = None, until: date | None = None
    ) -> list[tuple[Entity, DayMetrics]]:
        """(ad, day) pairs with delivery in the range, as both APIs order them."""
        since, until = since or self.first_day, until or self.today
        found = [
            (ad, m)
            for ad in self.account(account).of_level(Level.AD)
            for m in self.metrics(ad)
            if since <= m.day <= until
        ]
        # Oldest day first, then the ads in seed order: both APIs answer in this order.
        return sorted(found, key=lambda pair: pair[1].day)

    def _row(self, ad: Entity, m: DayMetrics, provider: Provider) -> AdRow:
        account = self.account(META_ACCOUNT if provider == "meta" else GOOGLE_CUSTOMER)
        entities = account.entities
        ad_set = entities[ad.ad_set_id or ""]
        campaign = entities[ad.campaign_id]
        if provider == "meta":
            spend = Decimal(m.spend_cents).scaleb(-2)
            conversions = Decimal(m.purchases)
            revenue = Decimal(m.purchase_revenue_cents).scaleb(-2)
        else:
            spend = Decimal(google_cost_micros(m)).scaleb(-6)
            conversions = Decimal(m.conversion_halves) / 2
            revenue = Decimal(m.revenue_cents).scaleb(-2)
        return AdRow(
            day=m.day,
            campaign_id=campaign.id,
            campaign_name=campaign.name,
            ad_set_id=ad_set.id,
            ad_set_name=ad_set.name,
            ad_id=ad.id,
            ad_name=ad.name,
            impressions=m.impressions,
            clicks=m.clicks,
            spend=spend,
            conversions=conversions,
            revenue=revenue,
        )


def day_metrics(profile: int, offset: int, day: date) -> DayMetrics:
    """Day ``offset`` of ad profile ``profile``: a fixed formula, with offsets that vary
    each figure a little from day to day and average to the profile's rates."""
    p = PROFILES[profile]
    impressions = p.impressions * (85 + (offset * 37 + profile * 17) % 31) // 100
    clicks = (impressions * p.ctr_permille + (offset * 613 + profile * 271) % 1000) // 1000
    spend_cents = clicks * p.cpc_cents * (95 + (offset * 11 + profile * 5) % 11) // 100
    dither = (offset * 389 + profile * 97) % 1000
    conversion_halves = (2 * clicks * p.cvr_permille + dither) // 1000
    purchases = (clicks * p.cvr_permille + dither) // 1000
    basket_cents = p.aov_cents * (90 + (offset * 13 + profile * 7) % 21) // 100
    return DayMetrics(
        day=day,
        impressions=impressions,
        clicks=clicks,
        spend_cents=spend_cents,
        spend_micros_extra=(offset * 7919 + profile * 104729) % 10_000 if spend_cents else 0,
        conversion_halves=conversion_halves,
        revenue_cents=conversion_halves * basket_cents // 2,
        purchases=purchases,
        purchase_revenue_cents=purchases * basket_cents,
    )


def google_cost_micros(m: DayMetrics) -> int:
    return m.spend_cents * 10_000 + m.spend_micros_extra


def _seed(provider: Provider) -> AdsAccount:
    meta = provider == "meta"
    campaigns = META_CAMPAIGNS if meta else GOOGLE_CAMPAIGNS
    ad_sets = META_AD_SETS if meta else GOOGLE_AD_GROUPS
    ads = META_ADS if meta else GOOGLE_ADS
    account = AdsAccount(provider, META_ACCOUNT.removeprefix("act_") if meta else GOOGLE_CUSTOMER)
    for c, name in enumerate(CAMPAIGN_NAMES):
        account.entities[campaigns[c]] = Entity(
            Level.CAMPAIGN,
            campaigns[c],
            name,
            "active",
            campaigns[c],
            daily_budget=None if meta else Decimal(GOOGLE_CAMPAIGN_BUDGETS[c]),
            budget_id=None if meta else GOOGLE_BUDGETS[c],
        )
    for s in range(6):
        campaign = account.entities[campaigns[s // 2]]
        account.entities[ad_sets[s]] = Entity(
            Level.AD_SET,
            ad_sets[s],
            f"{campaign.name} - {'ad set' if meta else 'ad group'} {s + 1}",
            "active",
            campaign.id,
            daily_budget=Decimal(META_AD_SET_BUDGETS[s]) if meta else None,
        )
    for i in range(12):
        ad_set = account.entities[ad_sets[i // 2]]
        account.entities[ads[i]] = Entity(
            Level.AD,
            ads[i],
            f"{ad_set.name} - ad {i + 1}",
            "paused" if i == PAUSED_AD else "active",
            ad_set.campaign_id,
            ad_set_id=ad_set.id,
            profile=i,
        )
    return account


# --- Meta ----------------------------------------------------------------------------------

META_STATUS = {"active": "ACTIVE", "paused": "PAUSED", "removed": "DELETED"}
META_INSIGHT_FIELDS = frozenset(
    {
        "account_id", "campaign_id", "campaign_name", "adset_id", "adset_name", "ad_id",
        "ad_name", "impressions", "clicks", "spend", "actions", "action_values", "ctr", "cpc",
        "date_start", "date_stop",
    }
)  # fmt: skip
META_EDGE_LEVELS = {"campaigns": Level.CAMPAIGN, "adsets": Level.AD_SET, "ads": Level.AD}
META_EDGE_FIELDS = {
    "campaigns": frozenset({"id", "name", "status", "effective_status", "daily_budget"}),
    "adsets": frozenset(
        {"id", "name", "status", "effective_status", "daily_budget", "campaign_id"}
    ),
    "ads": frozenset({"id", "name", "status", "effective_status", "campaign_id", "adset_id"}),
}
META_NODE_TYPES = {"campaigns": "Campaign", "adsets": "AdSet", "ads": "Ad"}
# The offset of currencies Meta keeps budgets of in whole units; 100 for the rest.
META_WHOLE_UNIT_CURRENCIES = frozenset(
    {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"}
)


def meta_error(
    code: int,
    message: str,
    *,
    kind: str = "OAuthException",
    subcode: int | None = None,
    transient: bool = False,
) -> dict[str, Any]:
    """Graph's error body."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    error["fbtrace_id"] = uuid.uuid4().hex[:22]
    return {"error": error}


def meta_rate_limited(code: int = 17, *, regain_minutes: int | None = None) -> Fault:
    """Meta's throttling: HTTP 400 with a rate-limit code and no Retry-After (only, at best,
    the minutes until access returns in ``X-Business-Use-Case-Usage``)."""
    messages = {
        4: "Application request limit reached",
        17: "User request limit reached",
        32: "Page request limit reached",
        613: "Calls to this api have exceeded the rate limit.",
        80004: "There have been too many calls to this ad-account. Wait a bit and try again.",
    }
    headers: dict[str, str] = {}
    if regain_minutes is not None:
        usage = {
            META_ACCOUNT.removeprefix("act_"): [
                {
                    "type": "ads_management",
                    "call_count": 100,
                    "total_cputime": 30,
                    "total_time": 40,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
        headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
    message = f"(#{code}) {messages.get(code, 'Rate limit reached')}"
    return Fault(
        status=400,
        headers=headers,
        body=meta_error(code, message, subcode=2446079 if code == 17 else None, transient=True),
    )


def _meta_minor_units(account: AdsAccount) -> int:
    return 1 if account.currency in META_WHOLE_UNIT_CURRENCIES else 100


def _meta_action_lists(
    m: DayMetrics, profile: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``actions`` and ``action_values`` as Meta reports them: the same purchases under
    several action types (which ones varies by ad), beside actions that are not purchases.
    Where the omni total is present, the pixel's own count misses one purchase on some days,
    so an adapter reading the wrong type (or adding them up) gets a different answer."""
    purchases, revenue = m.purchases, m.purchase_revenue_cents
    actions = [{"action_type": "link_click", "value": str(m.clicks)}]
    values: list[dict[str, str]] = []
    if purchases:
        if profile % 3 == 0:
            types = {"omni_purchase": 0, "purchase": 0, "offsite_conversion.fb_pixel_purchase": 1}
        elif profile % 3 == 1:
            types = {"purchase": 0, "offsite_conversion.fb_pixel_purchase": 0}
        else:
            types = {"offsite_conversion.fb_pixel_purchase": 0}
        per_purchase = revenue // purchases
        for action_type, misses in types.items():
            missed = misses if purchases > 1 and m.day.toordinal() % 2 == 0 else 0
            actions.append({"action_type": action_type, "value": str(purchases - missed)})
            cents = revenue - missed * per_purchase
            values.append({"action_type": action_type, "value": _money(cents)})
        actions.append({"action_type": "add_to_cart", "value": str(purchases * 3)})
    return actions, values


def _money(cents: int) -> str:
    return f"{Decimal(cents).scaleb(-2):f}"


def _meta_insight(account: AdsAccount, ad: Entity, m: DayMetrics) -> dict[str, Any]:
    ad_set = account.entities[ad.ad_set_id or ""]
    campaign = account.entities[ad.campaign_id]
    actions, values = _meta_action_lists(m, ad.profile or 0)
    row: dict[str, Any] = {
        "account_id": account.id,
        "campaign_id": campaign.id,
        "campaign_name": campaign.name,
        "adset_id": ad_set.id,
        "adset_name": ad_set.name,
        "ad_id": ad.id,
        "ad_name": ad.name,
        "impressions": str(m.impressions),
        "clicks": str(m.clicks),
        "spend": _money(m.spend_cents),
        "ctr": f"{Decimal(m.clicks * 100) / m.impressions:.6f}",
        "cpc": f"{Decimal(m.spend_cents) / 100 / m.clicks:.6f}" if m.clicks else "0",
        "date_start": m.day.isoformat(),
        "date_stop": m.day.isoformat(),
        "actions": actions,
    }
    if values:  # Graph leaves out what it has nothing for
        row["action_values"] = values
    return row


def _meta_entity_json(account: AdsAccount, entity: Entity) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entity.id,
        "name": entity.name,
        "status": META_STATUS[entity.status],
        "effective_status": META_STATUS[entity.status],
    }
    if entity.daily_budget is not None:
        item["daily_budget"] = str(int(entity.daily_budget * _meta_minor_units(account)))
    if entity.level != Level.CAMPAIGN:
        item["campaign_id"] = entity.campaign_id
    if entity.level == Level.AD:
        item["adset_id"] = entity.ad_set_id
    return item


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int | None:
    """The offset a cursor stands for; None for a cursor we never gave."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None


# --- Google --------------------------------------------------------------------------------

GOOGLE_STATUS = {"active": "ENABLED", "paused": "PAUSED", "removed": "REMOVED"}
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_GOOGLE_MESSAGES = {
    401: "Request had invalid authentication credentials.",
    429: "Too many requests. Retry in 30 seconds.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
# The fields each resource's rows carry (GAQL names), besides the metrics of dated rows.
GOOGLE_RESOURCE_FIELDS = {
    "campaign": frozenset(
        {
            "campaign.resource_name", "campaign.id", "campaign.name", "campaign.status",
            "campaign.campaign_budget", "campaign_budget.resource_name", "campaign_budget.id",
            "campaign_budget.amount_micros", "campaign_budget.period",
            "campaign_budget.explicitly_shared",
        }
    ),
    "ad_group": frozenset(
        {
            "ad_group.resource_name", "ad_group.id", "ad_group.name", "ad_group.status",
            "ad_group.campaign", "campaign.resource_name", "campaign.id", "campaign.name",
        }
    ),
    "ad_group_ad": frozenset(
        {
            "ad_group_ad.resource_name", "ad_group_ad.status", "ad_group_ad.ad.id",
            "ad_group_ad.ad.name", "ad_group_ad.ad_group", "ad_group.resource_name",
            "ad_group.id", "ad_group.name", "campaign.resource_name", "campaign.id",
            "campaign.name",
        }
    ),
}  # fmt: skip
GOOGLE_METRIC_FIELDS = frozenset(
    {
        "metrics.impressions", "metrics.clicks", "metrics.cost_micros", "metrics.conversions",
        "metrics.conversions_value", "segments.date",
    }
)  # fmt: skip
GOOGLE_MUTATE_SERVICES = {
    "campaigns": (Level.CAMPAIGN, re.compile(r"^customers/(\d+)/campaigns/(\d+)$")),
    "adGroups": (Level.AD_SET, re.compile(r"^customers/(\d+)/adGroups/(\d+)$")),
    "adGroupAds": (Level.AD, re.compile(r"^customers/(\d+)/adGroupAds/(\d+)~(\d+)$")),
    "campaignBudgets": (Level.CAMPAIGN, re.compile(r"^customers/(\d+)/campaignBudgets/(\d+)$")),
}
# Budgets in micros must be a multiple of the currency's smallest unit (a cent here).
GOOGLE_MINIMUM_UNIT_MICROS = 10_000

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>[a-z_]+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_BETWEEN = re.compile(
    r"segments\.date\s+BETWEEN\s+'(\d{4}-\d{2}-\d{2})'\s+AND\s+'(\d{4}-\d{2}-\d{2})'",
    re.IGNORECASE,
)
_CONDITION = re.compile(r"^([a-z_.]+)\s*(!=|=)\s*('([A-Z_]+)'|(\d+))$")


def google_error(
    status: int, message: str, error_code: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Google's error body, with the GoogleAdsFailure that names the error."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if error_code is not None:
        error["details"] = [
            {
                "@type": f"type.googleapis.com/google.ads.googleads.{GOOGLE_VERSION}.errors."
                "GoogleAdsFailure",
                "errors": [{"errorCode": {error_code[0]: error_code[1]}, "message": message}],
                "requestId": uuid.uuid4().hex[:22],
            }
        ]
    return {"error": error}


def google_rate_limited(retry_after_s: int = 1) -> Fault:
    return Fault(
        status=429,
        headers={"Retry-After": str(retry_after_s)},
        body=google_error(429, _GOOGLE_MESSAGES[429], ("quotaError", "RESOURCE_EXHAUSTED")),
    )


def rate_limited(retry_after_s: int = 1) -> Fault:
    """A 429 with Retry-After; the body is shaped after the route's provider."""
    return Fault(status=429, headers={"Retry-After": str(retry_after_s)})


class GaqlError(ValueError):
    pass


@dataclass(frozen=True)
class Gaql:
    fields: tuple[str, ...]
    resource: str
    dates: tuple[date, date] | None
    # (field, operator, literal)
    conditions: tuple[tuple[str, str, str], ...]


def parse_gaql(query: str) -> Gaql:
    """The few GAQL shapes the adapter sends; anything else raises ``GaqlError``."""
    match = _QUERY.match(query)
    if match is None:
        raise GaqlError("expected SELECT ... FROM ... [WHERE ...]")
    resource = match["resource"]
    if resource not in GOOGLE_RESOURCE_FIELDS:
        raise GaqlError(f"unsupported resource {resource}")
    known = GOOGLE_RESOURCE_FIELDS[resource] | (
        GOOGLE_METRIC_FIELDS if resource == "ad_group_ad" else frozenset()
    )
    fields = tuple(f.strip() for f in match["fields"].split(","))
    for name in fields:
        if name not in known:
            raise GaqlError(f"unrecognized field {name!r} for {resource}")
    where = match["where"] or ""
    dates = None
    if between := _BETWEEN.search(where):
        try:
            dates = (date.fromisoformat(between[1]), date.fromisoformat(between[2]))
        except ValueError:
            raise GaqlError("invalid date in segments.date BETWEEN") from None
        where = where[: between.start()] + where[between.end() :]
    conditions = []
    for part in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
        if not part.strip():
            continue
        condition = _CONDITION.match(part.strip())
        if condition is None or condition[1] not in known or condition[1].startswith("metrics."):
            raise GaqlError(f"unsupported condition {part.strip()!r}")
        conditions.append((condition[1], condition[2], condition[4] or condition[5]))
    dated = any(f in GOOGLE_METRIC_FIELDS for f in fields)
    if dated and dates is None:
        raise GaqlError("metrics and segments need a finite segments.date range")
    return Gaql(fields, resource, dates if dated else None, tuple(conditions))


def _google_flat_rows(state: AdsState, account: AdsAccount, query: Gaql) -> list[dict[str, Any]]:
    """The resource's rows as GAQL name -> JSON value (int64 as strings, doubles as
    numbers), dated rows one per ad and day with delivery."""
    cid = account.id
    entities = account.entities
    rows: list[dict[str, Any]] = []

    def campaign_fields(c: Entity) -> dict[str, Any]:
        return {
            "campaign.resource_name": f"customers/{cid}/campaigns/{c.id}",
            "campaign.id": c.id,
            "campaign.name": c.name,
        }

    if query.resource == "campaign":
        for c in account.of_level(Level.CAMPAIGN):
            budget = f"customers/{cid}/campaignBudgets/{c.budget_id}"
            rows.append(
                {
                    **campaign_fields(c),
                    "campaign.status": GOOGLE_STATUS[c.status],
                    "campaign.campaign_budget": budget,
                    "campaign_budget.resource_name": budget,
                    "campaign_budget.id": c.budget_id,
                    "campaign_budget.amount_micros": str(int((c.daily_budget or 0) * 1_000_000)),
                    "campaign_budget.period": "DAILY",
                    "campaign_budget.explicitly_shared": c.shared_budget,
                }
            )
    elif query.resource == "ad_group":
        for g in account.of_level(Level.AD_SET):
            rows.append(
                {
                    **campaign_fields(entities[g.campaign_id]),
                    "ad_group.resource_name": f"customers/{cid}/adGroups/{g.id}",
                    "ad_group.id": g.id,
                    "ad_group.name": g.name,
                    "ad_group.status": GOOGLE_STATUS[g.status],
                    "ad_group.campaign": f"customers/{cid}/campaigns/{g.campaign_id}",
                }
            )
    else:
        for ad in account.of_level(Level.AD):
            group = entities[ad.ad_set_id or ""]
            base = {
                **campaign_fields(entities[ad.campaign_id]),
                "ad_group.resource_name": f"customers/{cid}/adGroups/{group.id}",
                "ad_group.id": group.id,
                "ad_group.name": group.name,
                "ad_group_ad.resource_name": f"customers/{cid}/adGroupAds/{group.id}~{ad.id}",
                "ad_group_ad.status": GOOGLE_STATUS[ad.status],
                "ad_group_ad.ad.id": ad.id,
                "ad_group_ad.ad.name": ad.name,
                "ad_group_ad.ad_group": f"customers/{cid}/adGroups/{group.id}",
            }
            if query.dates is None:
                rows.append(base)
                continue
            since, until = query.dates
            for m in state.metrics(ad):
                if since <= m.day <= until:
                    rows.append(
                        {
                            **base,
                            "segments.date": m.day.isoformat(),
                            "metrics.impressions": str(m.impressions),
                            "metrics.clicks": str(m.clicks),
                            "metrics.cost_micros": str(google_cost_micros(m)),
                            "metrics.conversions": m.conversion_halves / 2,
                            "metrics.conversions_value": float(Decimal(m.revenue_cents).scaleb(-2)),
                        }
                    )
        rows.sort(key=lambda row: str(row.get("segments.date", "")))
    return [row for row in rows if _matches(row, query.conditions)]


def _matches(row: dict[str, Any], conditions: tuple[tuple[str, str, str], ...]) -> bool:
    for name, operator, literal in conditions:
        equal = str(row.get(name)) == literal
        if equal != (operator == "="):
            return False
    return True


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _google_result(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """One search result: the selected fields nested with camelCase keys, plus each
    selected resource's resourceName (the API always adds it)."""
    wanted = list(fields)
    for name in fields:
        resource = name.split(".")[0]
        if resource not in ("metrics", "segments") and f"{resource}.resource_name" in row:
            wanted.append(f"{resource}.resource_name")
    result: dict[str, Any] = {}
    for name in dict.fromkeys(wanted):
        node = result
        *path, leaf = [_camel(part) for part in name.split(".")]
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = row[name]
    return result


def _page_token(offset: int, query: str) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest()[:12]
    return base64.urlsafe_b64encode(f"{offset}:{digest}".encode()).decode()


def _page_offset(token: str, query: str) -> int | None:
    try:
        offset, _, digest = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not offset.isdigit() or _page_token(int(offset), query) != token or not digest:
        return None
    return int(offset)


# --- the app -------------------------------------------------------------------------------


def create_app(state: AdsState | None = None) -> FastAPI:
    state = state if state is not None else AdsState()
    app = FastAPI(title="Ads emulator (Meta Marketing API, Google Ads API)")
    app.state.ads = state
    meta = f"/{META_VERSION}"
    google = f"/{GOOGLE_VERSION}/customers/{{customer_id}}"

    async def faulted(route: str) -> Response | None:
        state.requests[route] += 1
        fault = state.faults.next(route)
        if fault is None:
            return None
        await asyncio.sleep(fault.delay_s)
        if fault.status < 400:
            return None
        body = fault.body
        if body is None and route.startswith("meta."):
            code, text = (
                (4, "Application request limit reached")
                if fault.status == 429
                else (2, "Service temporarily unavailable")
            )
            body = meta_error(code, f"(#{code}) {text}", transient=True)
        elif body is None:
            message = _GOOGLE_MESSAGES.get(fault.status, "injected")
            body = google_error(fault.status, message)
        return JSONResponse(body, fault.status, headers=fault.headers)

    # Meta ---------------------------------------------------------------------------------

    def meta_token(request: Request, form: dict[str, str] | None = None) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "oauth") and token:
            return token
        return request.query_params.get("access_token") or (form or {}).get("access_token", "")

    def meta_refused(token: str) -> Response | None:
        if token in state.expired_tokens:
            message = (
                "Error validating access token: Session has expired on Friday, 03-Jan-25 "
                "09:00:00 PST. The current time is Saturday, 04-Jan-25 09:00:00 PST."
            )
            return JSONResponse(meta_error(190, message, subcode=463), 400)
        if token not in state.meta_tokens:
            message = "Invalid OAuth access token - Cannot parse access token"
            return JSONResponse(meta_error(190, message), 400)
        return None

    def meta_account(account_id: str) -> AdsAccount | Response:
        account = state.accounts.get(account_id)
        if account is None or account.provider != "meta":
            message = (
                f"Unsupported get request. Object with ID 'act_{account_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation"
            )
            return JSONResponse(
                meta_error(100, message, kind="GraphMethodException", subcode=33), 400
            )
        return account

    def invalid(message: str) -> Response:
        return JSONResponse(meta_error(100, f"(#100) {message}"), 400)

    def meta_fields(request: Request, known: frozenset[str], node: str) -> list[str] | Response:
        names = [f for f in request.query_params.get("fields", "id").split(",") if f]
        for name in names:
            if name not in known:
                return invalid(f"Tried accessing nonexisting field ({name}) on node type ({node})")
        return names

    def meta_page(request: Request, items: list[dict[str, Any]]) -> Response:
        try:
            limit = int(request.query_params.get("limit", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return invalid("Param limit must be an integer")
        size = max(1, min(limit, state.page_size, MAX_META_LIMIT))
        offset = _offset(request.query_params.get("after"))
        if offset is None:
            return invalid("Invalid cursor")
        page = items[offset : offset + size]
        body: dict[str, Any] = {"data": page}
        if page:
            paging: dict[str, Any] = {
                "cursors": {"before": _cursor(offset), "after": _cursor(offset + len(page))}
            }
            if offset + len(page) < len(items):
                # As Graph does: the request's own URL with the next cursor (and so with
                # access_token too when the caller sent it in the query).
                after = _cursor(offset + len(page))
                paging["next"] = str(request.url.include_query_params(after=after))
            body["paging"] = paging
        return JSONResponse(body)

    @app.get(meta + "/act_{account_id}/insights")
    async def meta_insights(account_id: str, request: Request) -> Response:
        if answer := await faulted("meta.insights"):
            return answer
        if refused := meta_refused(meta_token(request)):
            return refused
        account = meta_account(account_id)
        if isinstance(account, Response):
            return account
        params = request.query_params
        if params.get("level") != "ad" or params.get("time_increment") != "1":
            return invalid("the emulator serves level=ad with time_increment=1 only")
        try:
            time_range = json.loads(params.get("time_range", ""))
            since = date.fromisoformat(time_range["since"])
            until = date.fromisoformat(time_range["until"])
        except (ValueError, KeyError, TypeError):
            return invalid("Param time_range must be a JSON object with since and until")
        if since > until:
            return invalid("Param time_range: since must not be after until")
        fields = meta_fields(request, META_INSIGHT_FIELDS, "AdsInsights")
        if isinstance(fields, Response):
            return fields
        items = []
        for ad, m in state.deliveries(account_id, since, until):
            row = _meta_insight(account, ad, m)
            # Graph always adds the row's dates.
            keep = {*fields, "date_start", "date_stop"}
            items.append({k: v for k, v in row.items() if k in keep})
        return meta_page(request, items)

    @app.get(meta + "/act_{account_id}/{edge}")
    async def meta_edge(account_id: str, edge: str, request: Request) -> Response:
        if answer := await faulted("meta.entities"):
            return answer
        if refused := meta_refused(meta_token(request)):
            return refused
        account = meta_account(account_id)
        if isinstance(account, Response):
            return account
        if edge not in META_EDGE_LEVELS:
            return invalid(f"Unknown path components: /{edge}")
        fields = meta_fields(request, META_EDGE_FIELDS[edge], META_NODE_TYPES[edge])
        if isinstance(fields, Response):
            return fields
        items = [
            {k: v for k, v in _meta_entity_json(account, e).items() if k in fields}
            for e in account.of_level(META_EDGE_LEVELS[edge])
            if e.status != "removed"  # Graph leaves deleted objects out of these edges
        ]
        return meta_page(request, items)

    @app.get(meta + "/act_{account_id}")
    async def meta_ad_account(account_id: str, request: Request) -> Response:
        if answer := await faulted("meta.account"):
            return answer
        if refused := meta_refused(meta_token(request)):
            return refused
        account = meta_account(account_id)
        if isinstance(account, Response):
            return account
        known = frozenset({"id", "account_id", "name", "currency"})
        fields = meta_fields(request, known, "AdAccount")
        if isinstance(fields, Response):
            return fields
        node = {
            "id": f"act_{account.id}",
            "account_id": account.id,
            "name": "Emulated ad account",
            "currency": account.currency,
        }
        return JSONResponse({k: v for k, v in node.items() if k in {*fields, "id"}})

    @app.post(meta + "/{entity_id}")
    async def meta_update(entity_id: str, request: Request) -> Response:
        if answer := await faulted("meta.update"):
            return answer
        # Graph takes a urlencoded form (parsed here without python-multipart).
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        params = {**request.query_params, **form}
        if refused := meta_refused(meta_token(request, form)):
            return refused
        found = [
            (account, account.entities[entity_id])
            for account in state.accounts.values()
            if account.provider == "meta" and entity_id in account.entities
        ]
        if not found or found[0][1].status == "removed":
            message = (
                f"Unsupported post request. Object with ID '{entity_id}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation"
            )
            return JSONResponse(
                meta_error(100, message, kind="GraphMethodException", subcode=33), 400
            )
        account, entity = found[0]
        changes: list[tuple[str, Any, Any]] = []
        for name, value in params.items():
            if name == "access_token":
                continue
            if name == "status":
                if value not in ("ACTIVE", "PAUSED"):
                    return invalid(f"Param status must be one of {{ACTIVE, PAUSED}}, got {value}")
                changes.append(("status", entity.status, value.lower()))
            elif name == "daily_budget":
                if entity.level == Level.AD:
                    return invalid("Param daily_budget is not valid for an ad")
                if entity.daily_budget is None:
                    return invalid("This object has no daily budget to change")
                if not value.isdigit() or int(value) <= 0:
                    return invalid("Param daily_budget must be a positive integer")
                amount = Decimal(int(value)) / _meta_minor_units(account)
                changes.append(("daily_budget", entity.daily_budget, amount))
            else:
                return invalid(f"Param {name} is not supported by the emulator")
        if not changes:
            return invalid("No fields to update")
        for name, before, after in changes:
            if name == "status":
                entity.status = after
            else:
                entity.daily_budget = after
            state.changes.append(Change("meta", entity.level, entity.id, name, before, after))
        return JSONResponse({"success": True})

    # Google -------------------------------------------------------------------------------

    def google_refused(request: Request, customer_id: str) -> Response | AdsAccount:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in state.google_tokens:
            code = "OAUTH_TOKEN_EXPIRED" if token in state.expired_tokens else "OAUTH_TOKEN_INVALID"
            body = google_error(401, _GOOGLE_MESSAGES[401], ("authenticationError", code))
            return JSONResponse(body, 401)
        if request.headers.get("developer-token") not in state.developer_tokens:
            # What v18 answers for a developer token it does not know.
            body = google_error(
                403,
                "The developer token is not approved.",
                ("authorizationError", "DEVELOPER_TOKEN_NOT_APPROVED"),
            )
            return JSONResponse(body, 403)
        login = request.headers.get("login-customer-id")
        if login is not None and not login.isdigit():
            body = google_error(
                400, "Invalid login-customer-id header.", ("requestError", "INVALID_INPUT")
            )
            return JSONResponse(body, 400)
        if not customer_id.isdigit():
            body = google_error(
                400,
                "Invalid customer ID: use digits only.",
                ("authenticationError", "CLIENT_CUSTOMER_ID_INVALID"),
            )
            return JSONResponse(body, 400)
        account = state.accounts.get(customer_id)
        if account is None or account.provider != "google":
            body = google_error(
                403,
                "User doesn't have permission to access customer.",
                ("authorizationError", "USER_PERMISSION_DENIED"),
            )
            return JSONResponse(body, 403)
        return account

    def bad_request(message: str, kind: str, code: str) -> Response:
        return JSONResponse(google_error(400, message, (kind, code)), 400)

    @app.post(google + "/googleAds:search")
    async def google_search(customer_id: str, request: Request) -> Response:
        if answer := await faulted("google.search"):
            return answer
        account = google_refused(request, customer_id)
        if isinstance(account, Response):
            return account
        try:
            body = await request.json()
        except ValueError:
            return bad_request("Invalid JSON payload.", "requestError", "INVALID_INPUT")
        text = body.get("query") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return bad_request("query is required.", "requestError", "INVALID_INPUT")
        try:
            query = parse_gaql(text)
        except GaqlError as exc:
            return bad_request(f"Error in query: {exc}", "queryError", "UNRECOGNIZED_FIELD")
        token = body.get("pageToken")
        offset = _page_offset(str(token), text) if token else 0
        if offset is None:
            return bad_request("Invalid page token.", "requestError", "INVALID_PAGE_TOKEN")
        rows = _google_flat_rows(state, account, query)
        page = rows[offset : offset + state.page_size]
        found: dict[str, Any] = {"fieldMask": ",".join(_camel(f) for f in query.fields)}
        if page:  # proto3 JSON leaves an empty list out
            found["results"] = [_google_result(row, query.fields) for row in page]
        if offset + len(page) < len(rows):
            found["nextPageToken"] = _page_token(offset + len(page), text)
        return JSONResponse(found)

    @app.post(google + "/{service}:mutate")
    async def google_mutate(customer_id: str, service: str, request: Request) -> Response:
        if answer := await faulted("google.mutate"):
            return answer
        account = google_refused(request, customer_id)
        if isinstance(account, Response):
            return account
        if service not in GOOGLE_MUTATE_SERVICES:
            return JSONResponse(google_error(404, f"Unknown service {service}."), 404)
        level, pattern = GOOGLE_MUTATE_SERVICES[service]
        try:
            body = await request.json()
            operations = body["operations"]
        except (ValueError, KeyError, TypeError):
            operations = None
        if not isinstance(operations, list) or not operations:
            return bad_request("operations are required.", "requestError", "INVALID_INPUT")
        # Checked in full before any is applied: without partialFailure a mutate is atomic.
        planned: list[tuple[list[Entity], str, Any, str]] = []
        for operation in operations:
            update = operation.get("update") if isinstance(operation, dict) else None
            mask = operation.get("updateMask") if isinstance(operation, dict) else None
            if not isinstance(update, dict) or not isinstance(mask, str):
                return bad_request(
                    "Only update operations with an updateMask are emulated.",
                    "mutateError",
                    "UNSUPPORTED_OPERATION",
                )  # fmt: skip
            name = str(update.get("resourceName", ""))
            match = pattern.match(name)
            if match is None or match[1] != account.id:
                return bad_request(
                    f"Malformed resource name {name!r}.", "requestError", "BAD_RESOURCE_ID"
                )
            targets = _mutate_targets(account, service, match)
            if not targets:
                return bad_request(
                    f"Resource was not found: {name}.", "mutateError", "RESOURCE_NOT_FOUND"
                )
            if service == "campaignBudgets":
                micros = str(update.get("amountMicros", ""))
                if mask != "amount_micros" or not micros.isdigit() or int(micros) <= 0:
                    return bad_request(
                        "Budgets are changed by a positive amountMicros (updateMask "
                        "amount_micros).",
                        "campaignBudgetError",
                        "MONEY_AMOUNT_INVALID",
                    )
                if int(micros) % GOOGLE_MINIMUM_UNIT_MICROS:
                    return bad_request(
                        "The budget is not a multiple of the currency's smallest unit.",
                        "campaignBudgetError",
                        "NON_MULTIPLE_OF_MINIMUM_CURRENCY_UNIT",
                    )
                planned.append((targets, "daily_budget", Decimal(int(micros)).scaleb(-6), name))
            else:
                status = update.get("status")
                if mask != "status" or status not in ("ENABLED", "PAUSED"):
                    return bad_request(
                        "Only status ENABLED or PAUSED (updateMask status) is emulated.",
                        "fieldError",
                        "INVALID_VALUE",
                    )
                planned.append((targets, "status", str(status).lower(), name))
        for targets, field_name, after, _ in planned:
            for entity in targets:
                before = entity.status if field_name == "status" else entity.daily_budget
                if field_name == "status":
                    entity.status = after
                else:
                    entity.daily_budget = after
                change = Change("google", level, entity.id, field_name, before, after)
                state.changes.append(change)
        return JSONResponse({"results": [{"resourceName": name} for *_, name in planned]})

    return app


def _mutate_targets(account: AdsAccount, service: str, match: re.Match[str]) -> list[Entity]:
    """The live entities a resource name points at (a budget: every campaign it pays for)."""
    entities = account.entities
    if service == "campaignBudgets":
        found = [e for e in account.of_level(Level.CAMPAIGN) if e.budget_id == match[2]]
    elif service == "adGroupAds":
        ad = entities.get(match[3])
        found = [ad] if ad is not None and ad.ad_set_id == match[2] else []
    else:
        entity = entities.get(match[2])
        level = Level.CAMPAIGN if service == "campaigns" else Level.AD_SET
        found = [entity] if entity is not None and entity.level == level else []
    return [e for e in found if e.status != "removed"]
