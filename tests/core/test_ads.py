"""Ad metrics, outliers, file reading and automation rules on a fixture with hand-computed
answers (core/ads.py)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.ads import (
    AdReport,
    EntityMetrics,
    EntityState,
    Level,
    Rule,
    analyse,
    plan,
    read_file,
)
from core.jobs import AdAutomationJobData

HEADER = (
    "date,campaign_id,campaign_name,ad_set_id,ad_set_name,ad_id,ad_name,"
    "impressions,clicks,spend,conversions,revenue,ad_set_daily_budget"
)
ROWS = [
    "2026-11-01,c1,Brand,s1,Set 1,a1,Ad 1,10000,200,100.00,10,500.00,200",
    "2026-11-01,c1,Brand,s1,Set 1,a2,Ad 2,8000,160,80.00,8,400.00,",
    "2026-11-01,c1,Brand,s2,Set 2,a3,Ad 3,12000,240,120.00,12,600.00,200",
    "2026-11-01,c2,Promo,s3,Set 3,a4,Ad 4,9000,180,90.00,9,450.00,250",
    "2026-11-01,c2,Promo,s3,Set 3,a5,Ad 5,11000,220,110.00,11,550.00,",
    "2026-11-01,c2,Promo,s3,Set 3,a6,Ad 6,10000,50,300.00,1,30.00,",
    "2026-11-01,c2,Promo,s3,Set 3,a7,Ad 7,100,abc,1.00,0,0,",  # line 8: bad clicks
    "2026-11-01,c2,Promo,s3,Set 3,,Ad 8,100,1,1.00,0,0,",  # line 9: no ad id
]
CSV = ("\n".join([HEADER, *ROWS]) + "\n").encode()


def _report() -> AdReport:
    found = read_file(CSV, "csv")
    return analyse(found.rows, budgets=found.budgets)


def _by_id(entities: list[EntityMetrics]) -> dict[str, EntityMetrics]:
    return {e.id: e for e in entities}


def test_bad_rows_are_reported_with_their_line_and_the_rest_is_read():
    found = read_file(CSV, "csv")
    assert len(found.rows) == 6
    assert [(b.line, b.error.split(":")[0]) for b in found.bad_rows] == [
        (8, "clicks"),
        (9, "ad_id"),
    ]
    assert found.budgets == {
        "ad_set:s1": Decimal(200),
        "ad_set:s2": Decimal(200),
        "ad_set:s3": Decimal(250),
    }


def test_totals_and_ratios_match_the_hand_computed_ones():
    report = _report()
    totals = report.totals
    assert (totals.impressions, totals.clicks) == (60000, 1050)
    assert (totals.spend, totals.conversions, totals.revenue) == (
        Decimal(800),
        Decimal(51),
        Decimal(2530),
    )
    assert (totals.ctr, totals.cpc, totals.cpa, totals.roas) == (1.75, 0.7619, 15.6863, 3.1625)
    campaigns = _by_id(report.campaigns)
    assert (campaigns["c1"].ctr, campaigns["c1"].cpc, campaigns["c1"].cpa) == (2.0, 0.5, 10.0)
    assert campaigns["c1"].roas == 5.0
    c2 = campaigns["c2"]
    assert (c2.ctr, c2.cpc, c2.cpa, c2.roas) == (1.5, 1.1111, 23.8095, 2.06)
    assert report.days == 1 and report.rows == 6
    assert (report.since, report.until) == (date(2026, 11, 1), date(2026, 11, 1))


def test_pacing_against_the_daily_budget():
    ad_sets = _by_id(_report().ad_sets)
    assert (ad_sets["s1"].pacing, ad_sets["s1"].pacing_status) == (90.0, "on_track")
    assert (ad_sets["s2"].pacing, ad_sets["s2"].pacing_status) == (60.0, "under")
    assert (ad_sets["s3"].pacing, ad_sets["s3"].pacing_status) == (200.0, "over")
    # A budget over a range counts once per day: two days of 250 is 500.
    found = read_file(CSV, "csv")
    wider = analyse(
        found.rows, since=date(2026, 11, 1), until=date(2026, 11, 2), budgets=found.budgets
    )
    assert _by_id(wider.ad_sets)["s3"].pacing == 100.0


def test_the_odd_ad_is_an_outlier_on_every_metric_and_no_other_is():
    outliers = {(o.ad_id, o.metric, o.direction) for o in _report().outliers}
    assert outliers == {
        ("a6", "ctr", "low"),
        ("a6", "cpc", "high"),
        ("a6", "cpa", "high"),
        ("a6", "roas", "low"),
    }


def test_rows_outside_the_range_are_not_counted():
    found = read_file(CSV, "csv")
    report = analyse(found.rows, since=date(2026, 11, 2), until=date(2026, 11, 3))
    assert report.rows == 0 and report.ads == [] and report.totals.ctr is None


def test_json_in_the_providers_field_names_reads_the_same():
    google = [
        {
            "segments": {"date": "2026-11-01"},
            "campaign": {"id": "c1", "name": "Brand"},
            "adGroup": {"id": "s1", "name": "Set 1"},
            "adGroupAd": {"ad": {"id": "a1", "name": "Ad 1"}},
            "metrics": {
                "impressions": "10000",
                "clicks": "200",
                "costMicros": "100000000",
                "conversions": 10.0,
                "conversionsValue": 500.0,
            },
        },
        {"segments": {"date": "2026-11-01"}, "campaign": {"id": "c1"}},
    ]
    found = read_file(json.dumps({"results": google}).encode(), "json")
    assert [(b.line, b.error) for b in found.bad_rows] == [(2, "ad_set_id, ad_id: required")]
    (row,) = found.rows
    assert (row.ad_set_id, row.ad_id, row.spend, row.revenue) == (
        "s1",
        "a1",
        Decimal(100),
        Decimal(500),
    )
    meta = [
        {
            "date_start": "2026-11-01",
            "campaign_id": "c1",
            "adset_id": "s1",
            "ad_id": "a1",
            "impressions": "10",
            "clicks": "1",
            "spend": "2.50",
        }
    ]
    (row,) = read_file(json.dumps({"data": meta}).encode(), "json").rows
    assert (row.ad_set_id, row.spend, row.impressions) == ("s1", Decimal("2.50"), 10)


def test_a_file_that_is_not_rows_is_refused_whole():
    with pytest.raises(ValueError, match="known column names"):
        read_file(b"foo,bar\n1,2\n", "csv")
    with pytest.raises(ValueError, match="does not parse"):
        read_file(b"{", "json")


def _states(report: AdReport) -> dict[str, EntityState]:
    return {
        f"{m.level}:{m.id}": EntityState(level=m.level, id=m.id, daily_budget=m.daily_budget)
        for m in (*report.campaigns, *report.ad_sets, *report.ads)
    }


def test_rules_pause_the_expensive_ad_and_raise_the_best_roas_ad_set_capped():
    report = _report()
    rules = [
        Rule.model_validate(
            {
                "id": "pause-costly",
                "action": "pause",
                "level": "ad",
                "when": [{"metric": "cpa", "op": ">", "value": 50}],
                "minSpend": 100,
            }
        ),
        Rule.model_validate(
            {
                "id": "boost-best",
                "action": "raise_budget",
                "level": "ad_set",
                "select": "best",
                "by": "roas",
                "percent": 20,
                "cap": 230,
            }
        ),
    ]
    actions, skipped = plan(rules, report, _states(report))
    assert skipped == []
    pause, boost = actions
    assert (pause.rule_id, pause.entity_id, pause.after["status"]) == (
        "pause-costly",
        "a6",
        "paused",
    )
    # s1 and s2 both have ROAS 5: the lower id wins; 200 + 20 % is 240, capped at 230.
    assert (boost.entity_id, boost.before["daily_budget"], boost.after["daily_budget"]) == (
        "s1",
        "200.00",
        "230.00",
    )


def test_an_ad_with_spend_and_no_conversion_has_an_infinite_cpa_for_rules():
    found = read_file((HEADER + "\n2026-11-01,c,C,s,S,a,A,1000,10,150.00,0,0,\n").encode(), "csv")
    report = analyse(found.rows)
    rule = Rule.model_validate(
        {"id": "r", "action": "pause", "when": [{"metric": "cpa", "op": ">", "value": 50}]}
    )
    actions, _ = plan([rule], report, _states(report))
    assert [a.entity_id for a in actions] == ["a"]
    assert report.ads[0].cpa is None  # the report shows no CPA, not infinity


def test_nothing_to_do_is_skipped_with_the_reason():
    report = _report()
    states = _states(report)
    states["ad:a6"] = EntityState(level=Level.AD, id="a6", status="paused")
    rules = [
        Rule.model_validate(
            {"id": "p", "action": "pause", "when": [{"metric": "cpa", "op": ">", "value": 50}]}
        ),
        Rule.model_validate(
            {"id": "b", "action": "raise_budget", "level": "campaign", "percent": 10}
        ),
    ]
    actions, skipped = plan(rules, report, states)
    assert actions == []
    assert {(s.rule_id, s.entity_id, s.reason) for s in skipped} == {
        ("p", "a6", "already paused"),
        ("b", "c1", "this campaign holds no daily budget"),
        ("b", "c2", "this campaign holds no daily budget"),
    }


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "r", "action": "raise_budget"}, "percent"),
        ({"id": "r", "action": "raise_budget", "percent": 10}, "ads have no budget"),
        ({"id": "r", "action": "pause", "percent": 10}, "budget actions only"),
        (
            {"id": "r", "action": "pause", "when": [{"metric": "cpm", "op": ">", "value": 1}]},
            "when.0.metric",
        ),
        ({"id": "bad id!", "action": "pause"}, "id"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(rule: dict[str, object], message: str):
    with pytest.raises(ValidationError, match=message):
        AdAutomationJobData.model_validate(
            {"userId": "u", "source": {"kind": "csv", "fileId": "f"}, "rules": [rule]}
        )


def test_a_real_run_needs_a_provider_and_google_budgets_are_on_campaigns():
    rule = {"id": "r", "action": "pause"}
    with pytest.raises(ValidationError, match="source.kind: a real run"):
        AdAutomationJobData.model_validate(
            {
                "userId": "u",
                "source": {"kind": "csv", "fileId": "f"},
                "rules": [rule],
                "dryRun": False,
            }
        )
    with pytest.raises(ValidationError, match="rules.0.level: Google Ads budgets"):
        AdAutomationJobData.model_validate(
            {
                "userId": "u",
                "source": {"kind": "google", "customerId": "123-456-7890"},
                "accessToken": "t",
                "rules": [{"id": "r", "action": "raise_budget", "level": "ad_set", "percent": 5}],
            }
        )
    with pytest.raises(ValidationError, match="rules: every rule needs its own id"):
        AdAutomationJobData.model_validate(
            {"userId": "u", "source": {"kind": "csv", "fileId": "f"}, "rules": [rule, rule]}
        )


def test_a_cap_never_lowers_a_raise_nor_a_floor_raises_a_cut():
    report = _report()
    states = _states(report)
    states["ad_set:s1"] = EntityState(level=Level.AD_SET, id="s1", daily_budget=Decimal(150))
    raise_ = Rule.model_validate(
        {
            "id": "r",
            "action": "raise_budget",
            "level": "ad_set",
            "select": "best",
            "percent": 15,
            "cap": 100,
        }
    )
    actions, skipped = plan([raise_], report, states)
    assert actions == []
    assert [s.reason for s in skipped] == ["the budget is already at or above its cap"]
    cut = Rule.model_validate(
        {
            "id": "c",
            "action": "lower_budget",
            "level": "ad_set",
            "select": "worst",
            "percent": 50,
            "floor": 300,
        }
    )
    actions, skipped = plan([cut], report, states)
    assert actions == [] and "at or below its floor" in skipped[0].reason


def test_best_and_worst_never_pick_an_entity_without_the_metric():
    spendless = (HEADER + "\n2026-11-01,c9,C,s9,S,a9,A,0,0,0,0,0,100\n").encode()
    found = read_file(CSV + spendless.split(b"\n", 1)[1], "csv")
    report = analyse(found.rows, budgets=found.budgets)
    best_cpa = Rule.model_validate(
        {
            "id": "b",
            "action": "raise_budget",
            "level": "ad_set",
            "select": "best",
            "by": "cpa",
            "percent": 10,
        }
    )
    worst_roas = Rule.model_validate(
        {
            "id": "w",
            "action": "lower_budget",
            "level": "ad_set",
            "select": "worst",
            "by": "roas",
            "percent": 10,
        }
    )
    actions, _ = plan([best_cpa, worst_roas], report, _states(report))
    # s1 and s2 have a CPA of 10 (s1 wins the tie); s3 has the worst ROAS; s9 has neither.
    assert [(a.rule_id, a.entity_id) for a in actions] == [("b", "s1"), ("w", "s3")]


def test_not_a_number_is_a_bad_row_and_a_broken_file_is_refused():
    found = read_file(
        (
            HEADER + "\n2026-11-01,c,C,s,S,a,A,10,1,NaN,0,0,\n"
            "2026-11-01,c,C,s,S,a,A,10,1,Infinity,0,0,\n"
        ).encode(),
        "csv",
    )
    assert [b.line for b in found.bad_rows] == [2, 3] and found.rows == []
    with pytest.raises(ValueError, match="NaN is not a number JSON allows"):
        read_file(b'[{"spend": NaN}]', "json")
