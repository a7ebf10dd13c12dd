"""Ad performance data in the job system's own terms, shared by the file readers, the
provider adapters (``integrations/ads.py``) and the AD_ANALYSIS and AD_AUTOMATION jobs.

Money is in the account's currency units as ``Decimal`` (Meta reports strings, Google micros);
counts are ints; conversions may be fractional (attribution models split them).
"""

from __future__ import annotations

import _csv
import csv
import io
import json
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel


class Level(StrEnum):
    CAMPAIGN = "campaign"
    AD_SET = "ad_set"
    AD = "ad"


@dataclass(frozen=True, slots=True)
class AdRow:
    """One ad's performance on one day. A plain dataclass: a report reads 100,000 of them,
    and the readers (files, provider adapters) build them from checked values."""

    day: date
    campaign_id: str
    ad_set_id: str
    ad_id: str
    campaign_name: str = ""
    ad_set_name: str = ""
    ad_name: str = ""
    impressions: int = 0
    clicks: int = 0
    spend: Decimal = Decimal(0)
    conversions: Decimal = Decimal(0)
    revenue: Decimal = Decimal(0)


class EntityState(BaseModel):
    """What an automation rule can read and change on one campaign, ad set or ad."""

    model_config = ConfigDict(frozen=True)

    level: Level
    id: str
    name: str = ""
    # "active" or "paused" (providers' ACTIVE/ENABLED and PAUSED).
    status: str = "active"
    # The daily budget in currency units, where this level holds one (Meta ad sets and
    # campaigns, Google campaigns); None elsewhere.
    daily_budget: Decimal | None = None


# --- reading uploaded files ---------------------------------------------------------------

# Column names each dialect uses -> ours. A file may use any one dialect (ours, the Meta
# insights fields, the Google Ads report fields, dotted or as the REST API nests them).
_FIELD_ALIASES: dict[str, str] = {
    **{
        name: name
        for name in (
            "campaign_id",
            "campaign_name",
            "ad_set_id",
            "ad_set_name",
            "ad_id",
            "ad_name",
            "impressions",
            "clicks",
            "spend",
            "conversions",
            "revenue",
            "ad_set_daily_budget",
            "campaign_daily_budget",
        )
    },
    "day": "day",
    "date": "day",
    # Meta Marketing API insights
    "date_start": "day",
    "adset_id": "ad_set_id",
    "adset_name": "ad_set_name",
    "conversion_values": "revenue",
    "purchase_value": "revenue",
    "adset_daily_budget": "ad_set_daily_budget",
    "daily_budget": "ad_set_daily_budget",
    # Google Ads (GAQL field names; REST JSON nests them in camelCase)
    "segments.date": "day",
    "campaign.id": "campaign_id",
    "campaign.name": "campaign_name",
    "ad_group.id": "ad_set_id",
    "ad_group.name": "ad_set_name",
    "ad_group_ad.ad.id": "ad_id",
    "ad_group_ad.ad.name": "ad_name",
    "metrics.impressions": "impressions",
    "metrics.clicks": "clicks",
    "metrics.cost_micros": "spend_micros",
    "metrics.conversions": "conversions",
    "metrics.conversions_value": "revenue",
    "campaign_budget.amount_micros": "campaign_daily_budget_micros",
}
_REQUIRED = ("day", "campaign_id", "ad_set_id", "ad_id")
# Our field as an error names it: the column most files call it by.
_SHOWN = {"day": "date"}
_MICROS = Decimal(1_000_000)


class BadRow(BaseModel):
    """A row that was not read: its line in a CSV file (the header is line 1), or its
    position (from 1) in a JSON file, and why."""

    model_config = ConfigDict(frozen=True)

    line: int
    error: str


@dataclass(frozen=True, slots=True)
class FileRows:
    """What a file held: its good rows, its bad ones, and the daily budgets it gave."""

    rows: list[AdRow]
    bad_rows: list[BadRow]
    budgets: dict[str, Decimal]  # "<level>:<id>" -> daily budget


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _flatten(item: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in item.items():
        name = f"{prefix}{_snake(key)}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


_ZERO = Decimal(0)


def _number(value: Any, field: str, *, integer: bool = False) -> Decimal:
    if value is None or value == "":
        return _ZERO
    try:
        number = Decimal(value if isinstance(value, str) else str(value))
    except InvalidOperation:
        # Thousands separators and stray spaces ("1,234.50"), else not a number.
        text = str(value).strip().replace(",", "")
        if text == "":
            return _ZERO
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{field}: {text[:40]!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{field}: must be a number of at least 0, got {str(value)[:40]!r}")
    if integer and number != number.to_integral_value():
        raise ValueError(f"{field}: must be a whole number, got {str(value)[:40]!r}")
    return number


def _count_of(value: Any, field: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)  # the common case, without a Decimal
    return int(_number(value, field, integer=True))


def _ours(raw: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        ours = _FIELD_ALIASES.get(name.strip().lower()) if isinstance(name, str) else None
        if ours is not None:
            fields[ours] = value
    return fields


def _row(fields: dict[str, Any], budgets: dict[str, Decimal]) -> AdRow:
    """The row of a record already in our field names."""
    ids = [str(fields.get(f) or "").strip() for f in _REQUIRED]
    if not all(ids):
        missing = [_SHOWN.get(f, f) for f, found in zip(_REQUIRED, ids, strict=True) if not found]
        raise ValueError(f"{', '.join(missing)}: required")
    day_text, campaign_id, ad_set_id, ad_id = ids
    day_text = day_text[:10]
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ValueError(f"date: {day_text!r} is not a date (YYYY-MM-DD)") from None
    spend = _number(fields.get("spend"), "spend")
    if "spend_micros" in fields:
        spend = _number(fields["spend_micros"], "cost_micros", integer=True) / _MICROS
    row = AdRow(
        day=day,
        campaign_id=campaign_id,
        campaign_name=str(fields.get("campaign_name") or "").strip(),
        ad_set_id=ad_set_id,
        ad_set_name=str(fields.get("ad_set_name") or "").strip(),
        ad_id=ad_id,
        ad_name=str(fields.get("ad_name") or "").strip(),
        impressions=_count_of(fields.get("impressions"), "impressions"),
        clicks=_count_of(fields.get("clicks"), "clicks"),
        spend=spend,
        conversions=_number(fields.get("conversions"), "conversions"),
        revenue=_number(fields.get("revenue"), "revenue"),
    )
    for level, key, scale in _BUDGET_COLUMNS:
        if key in fields and str(fields[key] or "").strip():
            amount = _number(fields[key], key)
            entity = row.ad_set_id if level is Level.AD_SET else row.campaign_id
            budgets[f"{level}:{entity}"] = amount / scale if scale else amount
    return row


_BUDGET_COLUMNS = (
    (Level.AD_SET, "ad_set_daily_budget", None),
    (Level.CAMPAIGN, "campaign_daily_budget", None),
    (Level.CAMPAIGN, "campaign_daily_budget_micros", _MICROS),
)


def read_file(content: bytes, file_format: str) -> FileRows:
    """The rows of an uploaded CSV or JSON file; a bad row is reported, never dropped
    silently, and does not stop the others. A file that is not rows at all raises
    ValueError."""
    text = content.decode("utf-8-sig", errors="replace")
    found = FileRows(rows=[], bad_rows=[], budgets={})
    if file_format == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            _read_csv(reader, found)
        except csv.Error as exc:
            raise ValueError(f"the CSV file breaks off at line {reader.line_num}: {exc}") from None
        return found
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the JSON file does not parse: {exc.msg} at line {exc.lineno}") from None
    items = document
    if isinstance(document, dict):
        items = next((document[k] for k in ("rows", "data", "results") if k in document), None)
    if not isinstance(items, list):
        raise ValueError(
            'the JSON file must hold a list of rows (or {"rows"|"data"|"results": [...]})'
        )
    for position, item in enumerate(items, start=1):
        try:
            if not isinstance(item, dict):
                raise ValueError("a row must be an object")
            found.rows.append(_row(_ours(_flatten(item)), found.budgets))
        except ValueError as exc:
            found.bad_rows.append(BadRow(line=position, error=str(exc)))
    return found


def _no_constant(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not a number JSON allows", name, 0)


def _read_csv(reader: _csv.Reader, found: FileRows) -> None:
    header: list[str] = next(reader, [])
    # Our name of each column, found once per file.
    columns = [(i, _FIELD_ALIASES.get(name.strip().lower())) for i, name in enumerate(header)]
    known = [(i, ours) for i, ours in columns if ours is not None]
    if not known:
        raise ValueError("the CSV file has no header row with known column names")
    for values in reader:
        try:
            if len(values) > len(header):
                raise ValueError("more values than columns")
            if not any(values):
                continue  # a blank line
            fields = {ours: values[i] for i, ours in known if i < len(values)}
            found.rows.append(_row(fields, found.budgets))
        except ValueError as exc:
            found.bad_rows.append(BadRow(line=reader.line_num, error=str(exc)))


# --- metrics ----------------------------------------------------------------------------

# Pacing: spend against daily budget x days; below UNDER_PACING percent is under-pacing,
# above OVER_PACING percent over-pacing.
UNDER_PACING = 80
OVER_PACING = 110
# Outliers (Tukey's fences): among ads with at least OUTLIER_MIN_IMPRESSIONS impressions,
# when at least OUTLIER_MIN_ADS of them have the metric, a value below Q1 - 1.5 IQR or above
# Q3 + 1.5 IQR (quartiles by the inclusive method) is an outlier.
OUTLIER_MIN_IMPRESSIONS = 1000
OUTLIER_MIN_ADS = 5
OUTLIER_METRICS = ("ctr", "cpc", "cpa", "roas")
Metric = Literal[
    "impressions",
    "clicks",
    "spend",
    "conversions",
    "revenue",
    "ctr",
    "cpc",
    "cpa",
    "roas",
    "pacing",
]


def _ratio(numerator: Decimal, denominator: Decimal, scale: int = 1) -> float | None:
    if not denominator:
        return None
    return float(round(numerator * scale / denominator, 4))


class EntityMetrics(BaseModel):
    """One campaign's, ad set's or ad's totals over the range, and the ratios."""

    model_config = ConfigDict(frozen=True)

    level: Level
    id: str
    name: str = ""
    campaign_id: str
    ad_set_id: str | None = None
    impressions: int
    clicks: int
    spend: Decimal
    conversions: Decimal
    revenue: Decimal
    ctr: float | None  # percent of impressions clicked
    cpc: float | None  # spend per click
    cpa: float | None  # spend per conversion
    roas: float | None  # revenue per unit of spend
    daily_budget: Decimal | None = None
    pacing: float | None = None  # percent of daily budget x days spent
    pacing_status: Literal["under", "on_track", "over"] | None = None

    def value(self, metric: str) -> float | None:
        """The metric as an automation rule reads it: a cost per click or conversion with
        spend and no clicks or conversions is infinite (it can only be above a limit)."""
        if metric in ("cpc", "cpa"):
            measured = self.cpc if metric == "cpc" else self.cpa
            if measured is None and self.spend > 0:
                return math.inf
            return measured
        found = getattr(self, metric)
        return None if found is None else float(found)


class Outlier(BaseModel):
    model_config = ConfigDict(frozen=True)

    ad_id: str
    metric: str
    value: float
    low: float
    high: float
    direction: Literal["low", "high"]


class AdReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    since: date | None
    until: date | None
    days: int
    rows: int
    totals: EntityMetrics
    campaigns: list[EntityMetrics]
    ad_sets: list[EntityMetrics]
    ads: list[EntityMetrics]
    outliers: list[Outlier]


class _Totals:
    __slots__ = (
        "campaign_id",
        "ad_set_id",
        "name",
        "impressions",
        "clicks",
        "spend",
        "conversions",
        "revenue",
    )

    def __init__(self, campaign_id: str, ad_set_id: str | None, name: str) -> None:
        self.campaign_id, self.ad_set_id, self.name = campaign_id, ad_set_id, name
        self.impressions = self.clicks = 0
        self.spend = self.conversions = self.revenue = Decimal(0)

    def add(self, row: AdRow) -> None:
        self.impressions += row.impressions
        self.clicks += row.clicks
        self.spend += row.spend
        self.conversions += row.conversions
        self.revenue += row.revenue

    def metrics(
        self, level: Level, entity_id: str, days: int, budget: Decimal | None
    ) -> EntityMetrics:
        pacing = None
        status: Literal["under", "on_track", "over"] | None = None
        if budget and days:
            pacing = _ratio(self.spend, budget * days, 100)
            assert pacing is not None
            status = (
                "under" if pacing < UNDER_PACING else "over" if pacing > OVER_PACING else "on_track"
            )
        return EntityMetrics(
            level=level,
            id=entity_id,
            name=self.name,
            campaign_id=self.campaign_id,
            ad_set_id=self.ad_set_id,
            impressions=self.impressions,
            clicks=self.clicks,
            spend=self.spend,
            conversions=self.conversions,
            revenue=self.revenue,
            ctr=_ratio(Decimal(self.clicks), Decimal(self.impressions), 100),
            cpc=_ratio(self.spend, Decimal(self.clicks)),
            cpa=_ratio(self.spend, self.conversions),
            roas=_ratio(self.revenue, self.spend),
            daily_budget=budget,
            pacing=pacing,
            pacing_status=status,
        )


def analyse(
    rows: Iterable[AdRow],
    *,
    since: date | None = None,
    until: date | None = None,
    budgets: dict[str, Decimal] | None = None,
) -> AdReport:
    """Totals and ratios per campaign, ad set and ad over the rows between ``since`` and
    ``until`` (inclusive; without them, the rows' own first and last day), pacing against
    the daily budgets given (``"<level>:<id>"``), and the ads that are outliers."""
    budgets = budgets or {}
    levels: dict[Level, dict[str, _Totals]] = {level: {} for level in Level}
    total = _Totals("", None, "all")
    first: date | None = None
    last: date | None = None
    counted = 0
    for row in rows:
        if (since and row.day < since) or (until and row.day > until):
            continue
        counted += 1
        first = row.day if first is None or row.day < first else first
        last = row.day if last is None or row.day > last else last
        for level, entity, parent, name in (
            (Level.CAMPAIGN, row.campaign_id, None, row.campaign_name),
            (Level.AD_SET, row.ad_set_id, None, row.ad_set_name),
            (Level.AD, row.ad_id, row.ad_set_id, row.ad_name),
        ):
            found = levels[level].get(entity)
            if found is None:
                ad_set = (
                    parent
                    if level is Level.AD
                    else (row.ad_set_id if level is Level.AD_SET else None)
                )
                found = levels[level][entity] = _Totals(row.campaign_id, ad_set, name)
            found.add(row)
        total.add(row)
    start, end = since or first, until or last
    days = (end - start).days + 1 if start and end else 0
    by_level = {
        level: [
            totals.metrics(level, entity, days, budgets.get(f"{level}:{entity}"))
            for entity, totals in sorted(found.items())
        ]
        for level, found in levels.items()
    }
    return AdReport(
        since=start,
        until=end,
        days=days,
        rows=counted,
        totals=total.metrics(Level.CAMPAIGN, "all", days, None),
        campaigns=by_level[Level.CAMPAIGN],
        ad_sets=by_level[Level.AD_SET],
        ads=by_level[Level.AD],
        outliers=outliers(by_level[Level.AD]),
    )


def outliers(ads: Sequence[EntityMetrics]) -> list[Outlier]:
    found: list[Outlier] = []
    eligible = [ad for ad in ads if ad.impressions >= OUTLIER_MIN_IMPRESSIONS]
    for metric in OUTLIER_METRICS:
        valued = [(ad, getattr(ad, metric)) for ad in eligible if getattr(ad, metric) is not None]
        if len(valued) < OUTLIER_MIN_ADS:
            continue
        q1, _, q3 = statistics.quantiles([v for _, v in valued], n=4, method="inclusive")
        low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        for ad, value in valued:
            if value < low or value > high:
                found.append(
                    Outlier(
                        ad_id=ad.id,
                        metric=metric,
                        value=value,
                        low=round(low, 4),
                        high=round(high, 4),
                        direction="low" if value < low else "high",
                    )
                )
    return found


# --- automation rules -------------------------------------------------------------------

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
_COMPARE: dict[str, Any] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


class _Rule(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class Condition(_Rule):
    metric: Metric
    op: Literal[">", ">=", "<", "<="]
    value: float

    def holds(self, entity: EntityMetrics) -> bool:
        measured = entity.value(self.metric)
        return measured is not None and bool(_COMPARE[self.op](measured, self.value))


class Rule(_Rule):
    """One automation rule (docs/ads.md): the entities of ``level`` whose totals meet every
    condition once they spent ``min_spend`` (of those, the best or worst by ``by`` when
    ``select`` says so) get ``action``. Budget actions change the daily budget by
    ``percent``, never past ``cap`` (raising) or ``floor`` (lowering)."""

    id: RuleId
    action: Literal["pause", "raise_budget", "lower_budget"]
    level: Level = Level.AD
    when: Annotated[list[Condition], Field(max_length=10)] = Field(default_factory=list)
    min_spend: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    select: Literal["all", "best", "worst"] = "all"
    by: Metric = "roas"
    percent: Annotated[float, Field(gt=0, le=100)] | None = None
    cap: Annotated[Decimal, Field(gt=0)] | None = None
    floor: Annotated[Decimal, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        budget = self.action != "pause"
        if budget and self.percent is None:
            raise ValueError(f"percent: {self.action} needs the change in percent")
        if budget and self.level is Level.AD:
            raise ValueError("level: ads have no budget; use ad_set or campaign")
        if not budget and (self.percent is not None or self.cap or self.floor):
            raise ValueError("percent, cap and floor apply to budget actions only")
        if self.action == "raise_budget" and self.floor is not None:
            raise ValueError("floor: applies to lower_budget only (raise_budget takes cap)")
        if self.action == "lower_budget" and self.cap is not None:
            raise ValueError("cap: applies to raise_budget only (lower_budget takes floor)")
        return self


class PlannedAction(BaseModel):
    """A change a rule asks for, with the state before and after (absolute values, so
    taking it twice changes nothing the second time)."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    action: str
    level: Level
    entity_id: str
    entity_name: str = ""
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str


class SkippedAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    entity_id: str
    reason: str


_HIGHER_IS_BETTER = {"impressions", "clicks", "conversions", "revenue", "ctr", "roas"}


def _rank_key(metric: str, best: bool) -> Any:
    def key(entity: EntityMetrics) -> tuple[bool, float, str]:
        value = entity.value(metric)
        if value is None:
            return (True, 0.0, entity.id)  # no data: never the best nor the worst
        score = value if metric in _HIGHER_IS_BETTER else -value  # lower is better: cpc, cpa
        return (False, -score if best else score, entity.id)

    return key


def plan(
    rules: Sequence[Rule],
    report: AdReport,
    states: dict[str, EntityState],
) -> tuple[list[PlannedAction], list[SkippedAction]]:
    """The actions the rules ask for on the report's entities, given their current state
    (``"<level>:<id>"`` -> state); entities already as asked are skipped, with why."""
    planned: list[PlannedAction] = []
    skipped: list[SkippedAction] = []
    by_level = {
        Level.CAMPAIGN: report.campaigns,
        Level.AD_SET: report.ad_sets,
        Level.AD: report.ads,
    }
    for rule in rules:
        matching = [
            e
            for e in by_level[rule.level]
            if e.spend >= rule.min_spend and all(c.holds(e) for c in rule.when)
        ]
        if rule.select != "all" and matching:
            matching = sorted(matching, key=_rank_key(rule.by, rule.select == "best"))[:1]
        for entity in matching:
            reason = (
                ", ".join(
                    f"{c.metric} {entity.value(c.metric)} {c.op} {c.value}" for c in rule.when
                )
                or f"{rule.select} by {rule.by}"
            )
            state = states.get(f"{rule.level}:{entity.id}")
            if state is None:
                skipped.append(
                    SkippedAction(
                        rule_id=rule.id, entity_id=entity.id, reason="not found at the provider"
                    )
                )
                continue
            result = _change(rule, state)
            if isinstance(result, str):
                skipped.append(SkippedAction(rule_id=rule.id, entity_id=entity.id, reason=result))
                continue
            planned.append(
                PlannedAction(
                    rule_id=rule.id,
                    action=rule.action,
                    level=rule.level,
                    entity_id=entity.id,
                    entity_name=entity.name or state.name,
                    before=_state(state),
                    after=result,
                    reason=reason,
                )
            )
    return planned, skipped


_CENTS = Decimal("0.01")


def _state(state: EntityState) -> dict[str, Any]:
    budget = str(state.daily_budget.quantize(_CENTS)) if state.daily_budget is not None else None
    return {"status": state.status, "daily_budget": budget}


def _change(rule: Rule, state: EntityState) -> dict[str, Any] | str:
    """The state after the rule's action, or why there is nothing to do."""
    if rule.action == "pause":
        if state.status == "paused":
            return "already paused"
        return {**_state(state), "status": "paused"}
    if state.daily_budget is None:
        return f"this {rule.level} holds no daily budget"
    assert rule.percent is not None
    factor = Decimal(
        str(1 + rule.percent / 100 if rule.action == "raise_budget" else 1 - rule.percent / 100)
    )
    current = state.daily_budget.quantize(_CENTS)
    budget = state.daily_budget * factor
    # A cap (floor) only ever stops a raise (cut): a budget already past it is left alone.
    if rule.cap is not None:
        if current >= rule.cap:
            return "the budget is already at or above its cap"
        budget = min(budget, rule.cap)
    if rule.floor is not None:
        if current <= rule.floor:
            return "the budget is already at or below its floor"
        budget = max(budget, rule.floor)
    budget = budget.quantize(_CENTS)
    if budget == current:
        return "the change rounds to nothing"
    return {**_state(state), "daily_budget": str(budget)}
