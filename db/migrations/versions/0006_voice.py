"""Voice calls, campaign statistics, and the concurrency slots (and their waiters) shared by
all workers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'queued', 'dialing', 'ringing', 'in-progress', 'forwarding', 'ended'"
_OUTCOMES = "'completed', 'failed', 'no_answer', 'busy', 'voicemail', 'timeout'"


def upgrade() -> None:
    op.create_table(
        "voice_calls",
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("campaign_id", sa.String(length=255), nullable=True),
        sa.Column("phone_number_ciphertext", sa.Text(), nullable=False),
        sa.Column("assistant_id", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("vapi_call_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("ended_reason", sa.String(length=255), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_voice_calls_status")),
        sa.CheckConstraint(
            f"outcome IS NULL OR outcome IN ({_OUTCOMES})", name=op.f("ck_voice_calls_outcome")
        ),
        sa.PrimaryKeyConstraint("user_id", "call_id", name=op.f("pk_voice_calls")),
        sa.UniqueConstraint("vapi_call_id", name=op.f("uq_voice_calls_vapi_call_id")),
    )
    op.create_index("ix_voice_calls_campaign_id", "voice_calls", ["campaign_id"])
    op.create_table(
        "voice_campaigns",
        sa.Column("campaign_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("calls_made", sa.Integer(), nullable=False),
        sa.Column("calls_successful", sa.Integer(), nullable=False),
        sa.Column("calls_failed", sa.Integer(), nullable=False),
        sa.Column("no_answer", sa.Integer(), nullable=False),
        sa.Column("busy", sa.Integer(), nullable=False),
        sa.Column("voicemail", sa.Integer(), nullable=False),
        sa.Column("total_duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "campaign_id", name=op.f("pk_voice_campaigns")),
    )
    op.create_table(
        "concurrency_slots",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pool", "slot", name=op.f("pk_concurrency_slots")),
    )
    op.create_table(
        "concurrency_waiters",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pool", "holder", name=op.f("pk_concurrency_waiters")),
    )
    op.create_index("ix_concurrency_waiters_pool_since", "concurrency_waiters", ["pool", "since"])


def downgrade() -> None:
    op.drop_index("ix_concurrency_waiters_pool_since", table_name="concurrency_waiters")
    op.drop_table("concurrency_waiters")
    op.drop_table("concurrency_slots")
    op.drop_table("voice_campaigns")
    op.drop_index("ix_voice_calls_campaign_id", table_name="voice_calls")
    op.drop_table("voice_calls")
