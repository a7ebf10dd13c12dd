"""Job types and the validated data model of each (PRD-036 appendix A).

Fields are snake_case; the appendix's camelCase names are accepted as aliases, so
``{"userId": ...}`` and ``{"user_id": ...}`` both validate.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from core.ads import Rule


class JobType(StrEnum):
    EMAIL_SYNC = "email_sync"
    EMAIL_DRAFT = "email_draft"
    VOICE_CALL = "voice_call"
    SEO_AUDIT = "seo_audit"
    KEYWORD_ANALYSIS = "keyword_analysis"
    AD_ANALYSIS = "ad_analysis"
    AD_AUTOMATION = "ad_automation"
    LEAD_ENRICHMENT = "lead_enrichment"
    WORKFLOW_EXECUTION = "workflow_execution"
    MEMORY_CLEANUP = "memory_cleanup"
    MEMORY_CONSOLIDATION = "memory_consolidation"
    # The system's own: purges what no job can need any more (run by its schedule).
    HOUSEKEEPING = "housekeeping"
    WEBHOOK_DELIVERY = "webhook_delivery"


NonEmptyId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
E164Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9]\d{6,14}$"),
]


class JobData(BaseModel):
    """Base of every job's data: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    # Secret fields, each with the field that carries its stored id instead (db/secrets.py).
    # The producer gives the secret; the client stores it and the job carries only the id,
    # so no secret enters workflow history. Secret fields are never serialised.
    secret_fields: ClassVar[dict[str, str]] = {}
    # List fields of any length, each with the field that carries its count instead: the
    # client stores the items (db/job_inputs.py) and the job's input stays small.
    stored_lists: ClassVar[dict[str, str]] = {}
    # Secret fields a producer may leave out (the rest are required).
    optional_secrets: ClassVar[frozenset[str]] = frozenset()


class EmailSyncJobData(JobData):
    user_id: NonEmptyId
    account_id: NonEmptyId
    email_provider: Literal["gmail", "outlook"]
    sync_since: datetime | None = None

    @field_validator("sync_since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A naive timestamp is taken as UTC so every worker reads it the same way.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class EmailDraftJobData(JobData):
    user_id: NonEmptyId
    thread_id: NonEmptyId
    context: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    tone: Literal["professional", "casual", "friendly"] = "professional"
    # The connected mailbox to create the draft in; without it the draft is only stored.
    account_id: NonEmptyId | None = None
    # The provider id of the message answered (Graph replies to a message, Gmail threads
    # the draft under its Message-ID).
    reply_to_message_id: NonEmptyId | None = None


class VoiceCallJobData(JobData):
    user_id: NonEmptyId
    call_id: NonEmptyId
    # Personal data: stored encrypted like a secret, so history carries only phone_number_id.
    phone_number: Annotated[
        E164Phone | None, Field(description="E.164, e.g. +14155550123", repr=False, exclude=True)
    ] = None
    phone_number_id: str | None = None
    # Without one, VAPI_ASSISTANT_ID names the assistant.
    assistant_id: NonEmptyId | None = None
    # Handed to the assistant (assistantOverrides.metadata); campaign_id or campaignId names
    # the campaign whose statistics the call counts in.
    metadata: dict[str, Any] = Field(default_factory=dict)

    secret_fields: ClassVar[dict[str, str]] = {"phone_number": "phone_number_id"}

    @field_validator("metadata")
    @classmethod
    def _campaign_id_is_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("campaign_id", "campaignId"):
            campaign = value.get(key)
            if campaign is not None and (not isinstance(campaign, str) or not campaign.strip()):
                raise ValueError(f"{key} must be a non-empty string")
        return value

    @property
    def campaign_id(self) -> str | None:
        campaign = self.metadata.get("campaign_id", self.metadata.get("campaignId"))
        return str(campaign).strip() if campaign is not None else None


class Lead(JobData):
    id: NonEmptyId
    email: EmailStr | None = None
    phone: E164Phone | None = None
    company: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = None


class LeadEnrichmentJobData(JobData):
    user_id: NonEmptyId
    # Any number: add_job stores them (db/job_inputs.py) and the job carries lead_count.
    leads: Annotated[list[Lead] | None, Field(min_length=1, repr=False, exclude=True)] = None
    lead_count: int | None = None
    batch_size: Annotated[int, Field(ge=1, le=100)] = 5

    stored_lists: ClassVar[dict[str, str]] = {"leads": "lead_count"}


ContextValue = str | int | float | bool
ContextName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]


class WorkflowExecutionJobData(JobData):
    user_id: NonEmptyId
    # The id save_browser_workflow answered; the job runs the newest version at the time it
    # is added (the client pins it in workflow_version) unless a version is given.
    workflow_id: NonEmptyId
    workflow_version: Annotated[int, Field(ge=1)] | None = None
    trigger_id: NonEmptyId | None = None
    # Values for the steps' {{name}} placeholders (core/browser.py).
    context: Annotated[dict[ContextName, ContextValue], Field(max_length=200)] = Field(
        default_factory=dict
    )
    # Placeholder values that are secrets (a password to sign in with): stored encrypted
    # like a webhook secret, never in workflow history; the activity reads them by id.
    secret_context: Annotated[dict[ContextName, str], Field(max_length=50)] | None = Field(
        default=None, repr=False, exclude=True
    )
    secret_context_id: str | None = None

    secret_fields: ClassVar[dict[str, str]] = {"secret_context": "secret_context_id"}
    optional_secrets: ClassVar[frozenset[str]] = frozenset({"secret_context"})

    def placeholder_names(self) -> set[str]:
        return set(self.context) | set(self.secret_context or {})


def _without_credentials(value: AnyHttpUrl) -> AnyHttpUrl:
    # A URL's user and password would sit in history and logs in clear.
    if value.username or value.password:
        raise ValueError("must not carry credentials")
    return value


SiteUrl = Annotated[AnyHttpUrl, AfterValidator(_without_credentials)]
MaxPages = Annotated[int, Field(ge=1, le=500)]
MaxDepth = Annotated[int, Field(ge=0, le=10)]


class SeoAuditJobData(JobData):
    user_id: NonEmptyId
    # Where the crawl starts; it stays on this URL's host (scheme, host and port).
    url: SiteUrl
    max_pages: MaxPages = 50
    # Link hops from the start page (0: the start page only).
    max_depth: MaxDepth = 3
    # The PageSpeed Insights strategy, used when PAGESPEED_API_KEY is set.
    strategy: Literal["desktop", "mobile"] = "mobile"


class KeywordAnalysisJobData(JobData):
    user_id: NonEmptyId
    url: SiteUrl
    keywords: Annotated[list[NonEmptyId], Field(min_length=1, max_length=100)]
    max_pages: MaxPages = 50
    max_depth: MaxDepth = 3

    @field_validator("keywords")
    @classmethod
    def _keywords_have_words(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for keyword in value:
            if not any(ch.isalnum() for ch in keyword):
                raise ValueError(f"{keyword!r} has no letters or digits")
            if keyword.casefold() in seen:
                raise ValueError(f"{keyword!r} is listed twice")
            seen.add(keyword.casefold())
        return value


class AdFileSource(JobData):
    """Rows from a file uploaded with ``JobQueue.upload_ad_data`` (CSV or JSON)."""

    kind: Literal["csv", "json"]
    file_id: NonEmptyId


class MetaAdsSource(JobData):
    """Rows from a Meta ad account through the Marketing API insights."""

    kind: Literal["meta"]
    account_id: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^(act_)?\d{1,20}$")
    ]


class GoogleAdsSource(JobData):
    """Rows from a Google Ads customer through the Google Ads API."""

    kind: Literal["google"]
    customer_id: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^\d{3}-?\d{3}-?\d{4}$")
    ]


AdSource = Annotated[AdFileSource | MetaAdsSource | GoogleAdsSource, Field(discriminator="kind")]


class DateRange(JobData):
    """Days from ``since`` to ``until``, both included."""

    since: date
    until: date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.until < self.since:
            raise ValueError("until: must not be before since")
        if (self.until - self.since).days > 366:
            raise ValueError("until: a range spans at most 367 days")
        return self


class _AdJobData(JobData):
    user_id: NonEmptyId
    source: AdSource
    # Without one: every row of a file; the last 30 days (7 for automation) from a provider.
    date_range: DateRange | None = None
    # The provider's OAuth access token (Meta or Google sources): stored encrypted, the job
    # carries only its id.
    access_token: str | None = Field(default=None, repr=False, exclude=True)
    access_token_id: str | None = None

    secret_fields: ClassVar[dict[str, str]] = {"access_token": "access_token_id"}
    optional_secrets: ClassVar[frozenset[str]] = frozenset({"access_token"})

    @model_validator(mode="after")
    def _token_for_providers(self) -> _AdJobData:
        provider = self.source.kind in ("meta", "google")
        if provider and self.access_token is None and self.access_token_id is None:
            raise ValueError(f"accessToken: required for a {self.source.kind} source")
        return self


class AdAnalysisJobData(_AdJobData):
    pass


class AdAutomationJobData(_AdJobData):
    rules: Annotated[list[Rule], Field(min_length=1, max_length=50)]
    # A dry run lists the actions the rules would take and takes none.
    dry_run: bool = True

    @model_validator(mode="after")
    def _runnable(self) -> AdAutomationJobData:
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("rules: every rule needs its own id")
        if not self.dry_run and self.source.kind in ("csv", "json"):
            raise ValueError(
                "source.kind: a real run changes ads through a provider (meta or google); "
                "a file source allows dryRun only"
            )
        if self.source.kind == "google":
            for i, rule in enumerate(self.rules):
                if rule.action != "pause" and rule.level == "ad_set":
                    raise ValueError(
                        f"rules.{i}.level: Google Ads budgets belong to campaigns, not ad groups"
                    )
        return self


class MemoryCleanupOptions(JobData):
    cleanup_expired: bool = True
    cleanup_low_performance: bool = False
    min_success_rate: Annotated[float, Field(ge=0, le=1)] = 0.3
    min_usage_count: Annotated[int, Field(ge=0)] = 5


class MemoryCleanupJobData(JobData):
    type: Literal["memory_cleanup"] = "memory_cleanup"
    options: MemoryCleanupOptions = Field(default_factory=MemoryCleanupOptions)


class MemoryConsolidationOptions(JobData):
    session_id: NonEmptyId | None = None
    agent_id: NonEmptyId | None = None
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.8


class MemoryConsolidationJobData(JobData):
    type: Literal["memory_consolidation"] = "memory_consolidation"
    options: MemoryConsolidationOptions = Field(default_factory=MemoryConsolidationOptions)


class HousekeepingJobData(JobData):
    type: Literal["housekeeping"] = "housekeeping"


WEBHOOK_SECRET_PREFIX = "whsec_"


class WebhookDeliveryJobData(JobData):
    """One outbound webhook, signed the Standard Webhooks way."""

    user_id: NonEmptyId
    url: AnyHttpUrl
    event_type: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    ]
    payload: dict[str, Any]
    # Given by the producer (required there); never serialised, out of repr and logs.
    secret: str | None = Field(default=None, repr=False, exclude=True)
    # Set by the client once it stored the secret; the activity reads the secret by it.
    secret_id: str | None = None

    secret_fields: ClassVar[dict[str, str]] = {"secret": "secret_id"}

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(WEBHOOK_SECRET_PREFIX):
            raise ValueError(f"must start with {WEBHOOK_SECRET_PREFIX!r}")
        try:
            key = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be whsec_ followed by base64") from None
        if not 16 <= len(key) <= 64:
            raise ValueError("key must decode to 16..64 bytes")
        return value

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if value.username or value.password:
            raise ValueError("must not carry credentials")
        return value


def user_id_of(data: JobData) -> str | None:
    """The owning user of a job, when its data names one (used for isolation and fairness)."""
    value = getattr(data, "user_id", None)
    return value if isinstance(value, str) else None
