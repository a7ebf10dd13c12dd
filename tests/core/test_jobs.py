"""Job data models: both spellings validate, bad input names the field, secrets stay hidden."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from core.catalog import JOB_KINDS
from core.jobs import (
    EmailSyncJobData,
    JobType,
    LeadEnrichmentJobData,
    VoiceCallJobData,
    WebhookDeliveryJobData,
    user_id_of,
)

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()

# One valid example per job type, snake_case, with every multi-word field present.
EXAMPLES: dict[JobType, dict[str, Any]] = {
    JobType.EMAIL_SYNC: {
        "user_id": "u1",
        "account_id": "acc1",
        "email_provider": "gmail",
        "sync_since": "2025-01-01T00:00:00Z",
    },
    JobType.EMAIL_DRAFT: {
        "user_id": "u1",
        "thread_id": "t1",
        "context": "Reply to the quote request",
        "tone": "friendly",
    },
    JobType.VOICE_CALL: {
        "user_id": "u1",
        "call_id": "c1",
        "phone_number": "+14155550123",
        "assistant_id": "a1",
        "metadata": {"campaign": "spring"},
    },
    JobType.SEO_AUDIT: {"user_id": "u1", "url": "https://example.com/", "strategy": "desktop"},
    JobType.HOUSEKEEPING: {"type": "housekeeping"},
    JobType.KEYWORD_ANALYSIS: {
        "user_id": "u1",
        "keywords": ["crm", "bots"],
        "url": "https://example.com/",
    },
    JobType.AD_ANALYSIS: {
        "user_id": "u1",
        "source": {"kind": "meta", "account_id": "act_1001"},
        "date_range": {"since": "2026-11-01", "until": "2026-11-30"},
        "access_token_id": "sec_1",
    },
    JobType.AD_AUTOMATION: {
        "user_id": "u1",
        "source": {"kind": "csv", "file_id": "adf_1"},
        "rules": [
            {"id": "r1", "action": "pause", "when": [{"metric": "cpa", "op": ">", "value": 50}]}
        ],
    },
    JobType.LEAD_ENRICHMENT: {
        "user_id": "u1",
        "leads": [
            {"id": "l1", "email": "lead@example.com", "phone": "+442079460958", "company": "Acme"}
        ],
        "batch_size": 10,
    },
    JobType.WORKFLOW_EXECUTION: {
        "user_id": "u1",
        "workflow_id": "wf1",
        "trigger_id": "tr1",
        "context": {"step": 1},
    },
    JobType.MEMORY_CLEANUP: {
        "type": "memory_cleanup",
        "options": {
            "cleanup_expired": False,
            "cleanup_low_performance": True,
            "min_success_rate": 0.5,
            "min_usage_count": 2,
        },
    },
    JobType.MEMORY_CONSOLIDATION: {
        "type": "memory_consolidation",
        "options": {"session_id": "s1", "agent_id": "ag1", "threshold": 0.9},
    },
    JobType.WEBHOOK_DELIVERY: {
        "user_id": "u1",
        "url": "https://hooks.example.com/in",
        "event_type": "lead.created",
        "payload": {"lead_id": "l1"},
        "secret": SECRET,
    },
}

# Free-form mappings: their keys are data, not field names.
FREE_FORM = {"metadata", "parameters", "context", "payload"}


def camel(data: Any) -> Any:
    """The appendix spelling: camelCase field names, down into nested models."""
    if isinstance(data, list):
        return [camel(item) for item in data]
    if not isinstance(data, dict):
        return data
    return {
        to_camel(key): value if key in FREE_FORM else camel(value) for key, value in data.items()
    }


def test_every_job_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(JobType)


@pytest.mark.parametrize("job_type", list(JobType))
def test_snake_and_camel_case_both_validate_to_the_same_model(job_type: JobType) -> None:
    model = JOB_KINDS[job_type].data
    snake = EXAMPLES[job_type]
    from_snake = model.model_validate(snake)
    from_camel = model.model_validate(camel(snake))
    assert from_snake == from_camel
    # The example really exercises the aliases (every model but the system's housekeeping,
    # which takes nothing, has a multi-word field).
    if job_type is not JobType.HOUSEKEEPING:
        assert repr(camel(snake)) != repr(snake)


@pytest.mark.parametrize("job_type", list(JobType))
def test_dump_by_alias_round_trips(job_type: JobType) -> None:
    model = JOB_KINDS[job_type].data
    data = model.model_validate(EXAMPLES[job_type])
    # Secret fields and stored lists are never serialised (the client swaps them for stored
    # ids and counts first).
    expected = data.model_copy(update=dict.fromkeys([*model.secret_fields, *model.stored_lists]))
    assert model.model_validate(data.model_dump(by_alias=True)) == expected
    assert model.model_validate(data.model_dump()) == expected


def test_secret_fields_are_never_serialised() -> None:
    data = WebhookDeliveryJobData.model_validate(EXAMPLES[JobType.WEBHOOK_DELIVERY])
    assert WebhookDeliveryJobData.secret_fields == {"secret": "secret_id"}
    assert data.secret == SECRET
    for dumped in (
        data.model_dump_json(),
        str(data.model_dump()),
        str(data.model_dump(mode="json")),
    ):
        assert SECRET not in dumped
        assert SECRET.removeprefix("whsec_") not in dumped


def test_naive_sync_since_is_read_as_utc() -> None:
    data = EmailSyncJobData.model_validate(
        dict(EXAMPLES[JobType.EMAIL_SYNC], sync_since="2025-01-01T08:00:00")
    )
    assert data.sync_since == datetime(2025, 1, 1, 8, tzinfo=UTC)


def test_user_id_of() -> None:
    assert user_id_of(EmailSyncJobData.model_validate(EXAMPLES[JobType.EMAIL_SYNC])) == "u1"
    memory = JOB_KINDS[JobType.MEMORY_CLEANUP].data.model_validate({})
    assert user_id_of(memory) is None


def _problem_locs(job_type: JobType, data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        JOB_KINDS[job_type].data.model_validate(data)
    return [tuple(err["loc"]) for err in caught.value.errors()]


@pytest.mark.parametrize(
    ("job_type", "changes", "loc"),
    [
        (JobType.EMAIL_SYNC, {"user_id": ""}, ("user_id",)),
        (JobType.EMAIL_SYNC, {"userId": "   "}, ("userId",)),
        (JobType.EMAIL_SYNC, {"account_id": ""}, ("account_id",)),
        (JobType.EMAIL_SYNC, {"email_provider": "yahoo"}, ("email_provider",)),
        (JobType.EMAIL_DRAFT, {"thread_id": ""}, ("thread_id",)),
        (JobType.EMAIL_DRAFT, {"tone": "angry"}, ("tone",)),
        (JobType.EMAIL_DRAFT, {"context": ""}, ("context",)),
        (JobType.VOICE_CALL, {"phone_number": "555"}, ("phone_number",)),
        (JobType.VOICE_CALL, {"phone_number": "+0123"}, ("phone_number",)),
        (JobType.VOICE_CALL, {"phone_number": "+01234567890"}, ("phone_number",)),
        (JobType.VOICE_CALL, {"phoneNumber": "4155550123"}, ("phoneNumber",)),
        (JobType.VOICE_CALL, {"call_id": ""}, ("call_id",)),
        (JobType.SEO_AUDIT, {"url": "not a url"}, ("url",)),
        (JobType.SEO_AUDIT, {"url": "ftp://example.com/"}, ("url",)),
        (JobType.SEO_AUDIT, {"url": "https://me:pw@example.com/"}, ("url",)),
        (JobType.SEO_AUDIT, {"maxPages": 501}, ("maxPages",)),
        (JobType.KEYWORD_ANALYSIS, {"keywords": ["tea", "TEA"]}, ("keywords",)),
        (JobType.KEYWORD_ANALYSIS, {"keywords": []}, ("keywords",)),
        (JobType.KEYWORD_ANALYSIS, {"keywords": ["ok", ""]}, ("keywords", 1)),
        (JobType.AD_ANALYSIS, {"source": {"kind": "tiktok"}}, ("source",)),
        (
            JobType.AD_ANALYSIS,
            {"source": {"kind": "meta", "accountId": "x"}},
            ("source", "meta", "accountId"),
        ),
        (JobType.AD_AUTOMATION, {"rules": []}, ("rules",)),
        (JobType.LEAD_ENRICHMENT, {"leads": []}, ("leads",)),
        (
            JobType.LEAD_ENRICHMENT,
            {"leads": [{"id": "l1", "email": "nope"}]},
            ("leads", 0, "email"),
        ),
        (JobType.LEAD_ENRICHMENT, {"leads": [{"id": "l1", "phone": "555"}]}, ("leads", 0, "phone")),
        (JobType.LEAD_ENRICHMENT, {"leads": [{"id": ""}]}, ("leads", 0, "id")),
        (JobType.LEAD_ENRICHMENT, {"batch_size": 0}, ("batch_size",)),
        (JobType.LEAD_ENRICHMENT, {"batchSize": 101}, ("batchSize",)),
        (JobType.WORKFLOW_EXECUTION, {"workflow_id": ""}, ("workflow_id",)),
        (JobType.MEMORY_CLEANUP, {"type": "memory_consolidation"}, ("type",)),
        (
            JobType.MEMORY_CLEANUP,
            {"options": {"minSuccessRate": 1.5}},
            ("options", "minSuccessRate"),
        ),
        (JobType.MEMORY_CONSOLIDATION, {"options": {"threshold": -0.1}}, ("options", "threshold")),
        (JobType.WEBHOOK_DELIVERY, {"event_type": "lead created"}, ("event_type",)),
        (JobType.WEBHOOK_DELIVERY, {"payload": None}, ("payload",)),
    ],
)
def test_bad_input_names_the_field(
    job_type: JobType, changes: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    data = dict(EXAMPLES[job_type])
    for key in changes:
        data.pop(key, None)
        # A camelCase change replaces the snake_case example field.
        data.pop(_snake(key), None)
    data.update(changes)
    assert _problem_locs(job_type, data) == [loc]


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@pytest.mark.parametrize("job_type", list(JobType))
def test_unknown_fields_are_refused(job_type: JobType) -> None:
    data = dict(EXAMPLES[job_type], priority_boost=True)
    assert _problem_locs(job_type, data) == [("priority_boost",)]


def test_missing_required_fields_are_named() -> None:
    locs = _problem_locs(JobType.EMAIL_DRAFT, {})
    # A missing field is named in the appendix (camelCase) spelling.
    assert sorted(locs) == [("context",), ("threadId",), ("userId",)]


def test_a_phone_number_never_serialises() -> None:
    """Like a secret: add_job stores it and the job carries only phone_number_id."""
    data = VoiceCallJobData.model_validate(EXAMPLES[JobType.VOICE_CALL])
    assert "+14155550123" not in data.model_dump_json() and "+14155550123" not in repr(data)
    assert VoiceCallJobData.secret_fields == {"phone_number": "phone_number_id"}
    campaign = VoiceCallJobData.model_validate(
        dict(EXAMPLES[JobType.VOICE_CALL], metadata={"campaignId": " spring "})
    )
    assert campaign.campaign_id == "spring"
    assert _problem_locs(
        JobType.VOICE_CALL, dict(EXAMPLES[JobType.VOICE_CALL], metadata={"campaign_id": 7})
    ) == [("metadata",)]


def test_lead_batch_size_bounds_are_inclusive() -> None:
    base = EXAMPLES[JobType.LEAD_ENRICHMENT]
    assert LeadEnrichmentJobData.model_validate(dict(base, batch_size=1)).batch_size == 1
    assert LeadEnrichmentJobData.model_validate(dict(base, batch_size=100)).batch_size == 100
    default = {key: value for key, value in base.items() if key != "batch_size"}
    assert LeadEnrichmentJobData.model_validate(default).batch_size == 5


def test_phone_numbers_are_stripped_and_checked() -> None:
    data = VoiceCallJobData.model_validate(
        dict(EXAMPLES[JobType.VOICE_CALL], phone_number=" +14155550123 ")
    )
    assert data.phone_number == "+14155550123"


@pytest.mark.parametrize(
    ("secret", "rule"),
    [
        (base64.b64encode(b"k" * 32).decode(), "must start with 'whsec_'"),
        ("whsec_not base64!", "must be whsec_ followed by base64"),
        ("whsec_" + base64.b64encode(b"k" * 8).decode(), "key must decode to 16..64 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "key must decode to 16..64 bytes"),
    ],
)
def test_webhook_secret_rules(secret: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookDeliveryJobData.model_validate(
            dict(EXAMPLES[JobType.WEBHOOK_DELIVERY], secret=secret)
        )
    [error] = caught.value.errors()
    assert error["loc"] == ("secret",)
    assert rule in error["msg"]


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@hooks.example.com/in", "https://user@hooks.example.com/in"],
)
def test_webhook_url_with_credentials_is_refused(url: str) -> None:
    locs = _problem_locs(
        JobType.WEBHOOK_DELIVERY, dict(EXAMPLES[JobType.WEBHOOK_DELIVERY], url=url)
    )
    assert locs == [("url",)]


def test_webhook_secret_never_appears_in_repr() -> None:
    data = WebhookDeliveryJobData.model_validate(camel(EXAMPLES[JobType.WEBHOOK_DELIVERY]))
    assert data.secret == SECRET
    for text in (repr(data), str(data), f"{data!r}", repr([data])):
        assert SECRET not in text
        assert SECRET.removeprefix("whsec_") not in text
        assert "secret=" not in text
