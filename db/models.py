"""Tables: webhook delivery log and attempts, job-id deduplication keys, job secrets,
connected mailboxes, synced messages, email sync history and AI drafts, voice calls and
their campaigns, and the concurrency slots shared by every worker.

A webhook delivery row holds only what is safe to show a user; the signing secret lives
encrypted in job_secrets.
Keep ``db/migrations/versions`` in step with every change here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime

DeliveryStatus = Literal["pending", "delivered", "failed"]
AttemptOutcome = Literal["delivered", "retry", "failed"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
ATTEMPT_OUTCOMES: tuple[str, ...] = get_args(AttemptOutcome)
# queued: waiting for a slot or its next attempt; dialing: the create request is on its way;
# then Vapi's own statuses until ended.
CallStatus = Literal["queued", "dialing", "ringing", "in-progress", "forwarding", "ended"]
CallOutcome = Literal["completed", "failed", "no_answer", "busy", "voicemail", "timeout"]
CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)
CALL_OUTCOMES: tuple[str, ...] = get_args(CallOutcome)
EnrichmentStatus = Literal["enriched", "failed", "skipped"]
ENRICHMENT_STATUSES: tuple[str, ...] = get_args(EnrichmentStatus)
# queued: waiting for a browser session; running: steps under way (again after a retry).
ExecutionStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
EXECUTION_STATUSES: tuple[str, ...] = get_args(ExecutionStatus)
StepStatus = Literal["succeeded", "failed"]
STEP_STATUSES: tuple[str, ...] = get_args(StepStatus)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
        # Serves list_failed: the newest failures, optionally of one user.
        Index("ix_webhook_deliveries_status_failed_at", "status", "failed_at"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the job id
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    # The stored signing secret's id (db/secrets.py), so a dead letter can be redelivered.
    secret_id: Mapped[str | None] = mapped_column(String(64))
    # A failed delivery is a dead letter until it is redelivered (the new job's id) or
    # discarded.
    redelivered_as: Mapped[str | None] = mapped_column(String(255))
    discarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDeliveryAttempt(Base):
    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (
        # One row per attempt number: recording the same attempt again updates it.
        # Its leading column also serves as the index on delivery_id.
        UniqueConstraint("delivery_id", "attempt"),
        CheckConstraint(_one_of("outcome", ATTEMPT_OUTCOMES), name="outcome"),
    )

    # SQLite only auto-increments an INTEGER PRIMARY KEY, hence the variant.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))


class JobDedupKey(Base):
    __tablename__ = "job_dedup_keys"

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128))
    job_type: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


EmailProvider = Literal["gmail", "outlook"]
AccountState = Literal["active", "needs_reauth"]
SyncStatus = Literal["running", "completed", "failed"]
EMAIL_PROVIDERS: tuple[str, ...] = get_args(EmailProvider)
ACCOUNT_STATES: tuple[str, ...] = get_args(AccountState)
SYNC_STATUSES: tuple[str, ...] = get_args(SyncStatus)


class EmailAccount(Base):
    """A connected mailbox. Tokens are stored only as ciphertext (core.crypto.TokenCipher)."""

    __tablename__ = "email_accounts"
    __table_args__ = (
        UniqueConstraint("user_id", "provider", "email_address"),
        CheckConstraint(_one_of("provider", EMAIL_PROVIDERS), name="provider"),
        CheckConstraint(_one_of("state", ACCOUNT_STATES), name="state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    email_address: Mapped[str] = mapped_column(String(320))
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Gmail historyId or Graph deltaLink; empty until the first full sync.
    sync_cursor: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EmailMessage(Base):
    """A synced message; unique per account and provider id, so a re-sync stores it once."""

    __tablename__ = "email_messages"
    __table_args__ = (
        UniqueConstraint("account_id", "provider_message_id"),
        # Serves the auto-draft queue: an account's important messages not drafted yet.
        Index(
            "ix_email_messages_undrafted",
            "account_id",
            "id",
            postgresql_where=text("important AND draft_job_id IS NULL"),
            sqlite_where=text("important AND draft_job_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("email_accounts.id", ondelete="CASCADE")
    )
    provider_message_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(String(320))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    labels: Mapped[list[str]] = mapped_column(JSON)
    important: Mapped[bool] = mapped_column(default=False)
    snippet: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The sync job that stored it first: a retried page counts its messages as stored again.
    sync_job_id: Mapped[str | None] = mapped_column(String(255))
    # The auto-draft job started for it (important messages only); NULL until started.
    draft_job_id: Mapped[str | None] = mapped_column(String(255))


class EmailSyncRun(Base):
    """One EMAIL_SYNC job run (FR-055): what it fetched and stored, and how it ended."""

    __tablename__ = "email_sync_history"
    __table_args__ = (CheckConstraint(_one_of("status", SYNC_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("email_accounts.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    full_sync: Mapped[bool] = mapped_column(default=False)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EmailDraft(Base):
    """An AI reply draft: one per EMAIL_DRAFT job, with the model, usage and tone used."""

    __tablename__ = "email_drafts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    account_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("email_accounts.id", ondelete="SET NULL")
    )
    thread_id: Mapped[str] = mapped_column(String(255))
    tone: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    provider_draft_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EmailVipSender(Base):
    """A sender whose mail to this user is always high-importance (auto-draft rule)."""

    __tablename__ = "email_vip_senders"
    __table_args__ = (UniqueConstraint("user_id", "email_address"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    email_address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobSecret(Base):
    """A secret a job needs (a webhook signing secret), encrypted at rest and bound to its id.

    Jobs carry only the id, never the secret: see db/secrets.py.
    """

    __tablename__ = "job_secrets"
    __table_args__ = (Index("ix_job_secrets_needed_until", "needed_until"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # No job can need it after this (start delay + run + the time it can be retried by hand).
    needed_until: Mapped[datetime] = mapped_column(UTCDateTime())


class VoiceCall(Base):
    """One VOICE_CALL job's call (the user's call id), its latest attempt and outcome.

    Keyed by user and call id, and held by the one job that places it. The phone number is
    stored encrypted, bound to both ids. ``counted_at`` is set in the transaction that adds the
    call to its campaign's statistics, so it is counted once.
    """

    __tablename__ = "voice_calls"
    __table_args__ = (
        CheckConstraint(_one_of("status", CALL_STATUSES), name="status"),
        CheckConstraint(f"outcome IS NULL OR {_one_of('outcome', CALL_OUTCOMES)}", name="outcome"),
    )

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(255))
    campaign_id: Mapped[str | None] = mapped_column(String(255), index=True)
    phone_number_ciphertext: Mapped[str] = mapped_column(Text)
    assistant_id: Mapped[str] = mapped_column(String(255))
    # The attempt of the job that placed (or is placing) the current Vapi call.
    attempt: Mapped[int] = mapped_column(Integer)
    vapi_call_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    ended_reason: Mapped[str | None] = mapped_column(String(255))
    transcript: Mapped[str | None] = mapped_column(Text)
    recording_url: Mapped[str | None] = mapped_column(Text)
    # Money in millionths of a dollar and time in milliseconds, so sums are exact.
    cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class VoiceCampaign(Base):
    """Aggregate statistics of a user's campaign (FR-056), one change per call."""

    __tablename__ = "voice_campaigns"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    calls_made: Mapped[int] = mapped_column(Integer, default=0)
    calls_successful: Mapped[int] = mapped_column(Integer, default=0)
    calls_failed: Mapped[int] = mapped_column(Integer, default=0)
    no_answer: Mapped[int] = mapped_column(Integer, default=0)
    busy: Mapped[int] = mapped_column(Integer, default=0)
    voicemail: Mapped[int] = mapped_column(Integer, default=0)
    total_duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConcurrencySlot(Base):
    """One of a pool's slots (db/slots.py): free when ``holder`` is NULL or its lease ended."""

    __tablename__ = "concurrency_slots"

    pool: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConcurrencyWaiter(Base):
    """A holder (a job id) waiting for a slot of a pool, woken when one is given back."""

    __tablename__ = "concurrency_waiters"
    __table_args__ = (Index("ix_concurrency_waiters_pool_since", "pool", "since"),)

    pool: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    # Refreshed by every ask; a waiter that stopped asking is dropped.
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobInput(Base):
    """A large list input of a job (lead enrichment's leads), stored by the client when the
    job is added so the job carries only its count (db/job_inputs.py)."""

    __tablename__ = "job_inputs"
    __table_args__ = (Index("ix_job_inputs_needed_until", "needed_until"),)

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    needed_until: Mapped[datetime] = mapped_column(UTCDateTime())


class JobInputItem(Base):
    __tablename__ = "job_input_items"

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item: Mapped[dict[str, Any]] = mapped_column(JSON)


class EnrichmentResult(Base):
    """One lead's outcome in a LEAD_ENRICHMENT job, by its position in the job's leads."""

    __tablename__ = "enrichment_results"
    __table_args__ = (CheckConstraint(_one_of("status", ENRICHMENT_STATUSES), name="status"),)

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentMemory(Base):
    """One memory entry of an agent in a session (db/memory.py)."""

    __tablename__ = "agent_memories"
    __table_args__ = (UniqueConstraint("user_id", "session_id", "agent_id", "key"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[str] = mapped_column(String(255), index=True)
    agent_id: Mapped[str] = mapped_column(String(255), index=True)
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_accessed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # None: kept until deleted.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AgentPattern(Base):
    """A pattern an agent learned, with how it fared; consolidation points near-duplicates
    at their canonical pattern."""

    __tablename__ = "agent_patterns"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    agent_id: Mapped[str] = mapped_column(String(255), index=True)
    session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    pattern: Mapped[str] = mapped_column(Text)
    success_count: Mapped[int] = mapped_column(Integer, default=0)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consolidated_into: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        # A canonical pattern removed takes the patterns merged into it along.
        ForeignKey("agent_patterns.id", ondelete="CASCADE"),
        index=True,
    )


class CleanupProgress(Base):
    """How far a cleanup step of one job run got, written in the transaction of each chunk, so
    a retried or resumed step starts after the last committed chunk with exact counts."""

    __tablename__ = "cleanup_progress"

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The last id scanned; NULL once the table was scanned to its end.
    after_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    done: Mapped[bool] = mapped_column(default=False)
    deleted: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    chunks: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEndpointDisabled(Base):
    """A user's endpoint that answered 410 Gone: no delivery is attempted until it is enabled."""

    __tablename__ = "webhook_endpoints_disabled"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    disabled_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BrowserWorkflow(Base):
    """One saved version of a user's browser workflow definition (core/browser.py)."""

    __tablename__ = "browser_workflows"
    __table_args__ = (UniqueConstraint("user_id", "name", "version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    steps: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BrowserExecution(Base):
    """One run of a WORKFLOW_EXECUTION job (a manual retry is a new run, a new execution)."""

    __tablename__ = "browser_executions"
    __table_args__ = (CheckConstraint(_one_of("status", EXECUTION_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    workflow_id: Mapped[str] = mapped_column(String(64))
    workflow_version: Mapped[int] = mapped_column(Integer)
    trigger_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    # The attempt whose step results are kept (each attempt starts again from step 1).
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int] = mapped_column(Integer)
    variables: Mapped[Any] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    failed_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BrowserStepResult(Base):
    """The outcome of one step in the latest attempt of an execution."""

    __tablename__ = "browser_step_results"
    __table_args__ = (CheckConstraint(_one_of("status", STEP_STATUSES), name="status"),)

    execution_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("browser_executions.id", ondelete="CASCADE"), primary_key=True
    )
    step_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    screenshot_id: Mapped[str | None] = mapped_column(String(64))


class BrowserScreenshot(Base):
    """A PNG a screenshot step took; step results and the job refer to it by id."""

    __tablename__ = "browser_screenshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("browser_executions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    step_index: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SeoCrawlPage(Base):
    """One URL a crawl fetched, with its facts, so a retried crawl does not fetch it again;
    deleted once the job's report is stored."""

    __tablename__ = "seo_crawl_pages"

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    depth: Mapped[int] = mapped_column(Integer)
    facts: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


ReportKind = Literal["seo_audit", "keyword_analysis", "ad_analysis", "ad_automation"]
REPORT_KINDS: tuple[str, ...] = get_args(ReportKind)


class AnalysisReport(Base):
    """The stored report of an SEO, keyword or ad job, readable by its user only."""

    __tablename__ = "analysis_reports"
    __table_args__ = (CheckConstraint(_one_of("kind", REPORT_KINDS), name="kind"),)

    job_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    report: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AdDataFile(Base):
    """An uploaded CSV or JSON file of ad performance rows (too large for job data)."""

    __tablename__ = "ad_data_files"
    __table_args__ = (CheckConstraint(_one_of("format", ("csv", "json")), name="format"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


AdActionStatus = Literal["pending", "done", "failed"]
AD_ACTION_STATUSES: tuple[str, ...] = get_args(AdActionStatus)


class AdAction(Base):
    """One change an AD_AUTOMATION rule made (or is making) to a campaign, ad set or ad: the
    audit record, and the key that allows one action per rule, entity and day."""

    __tablename__ = "ad_actions"
    __table_args__ = (
        CheckConstraint(_one_of("status", AD_ACTION_STATUSES), name="status"),
        UniqueConstraint("user_id", "rule_id", "level", "entity_id", "day"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))  # ISO date (UTC) the action belongs to
    before: Mapped[Any] = mapped_column(JSON)
    after: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


ApiRole = Literal["user", "operator"]
API_ROLES: tuple[str, ...] = get_args(ApiRole)


class ApiKey(Base):
    """A key of the HTTP API: its public id, a hash of its secret, its user and role."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_one_of("role", API_ROLES), name="role"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
