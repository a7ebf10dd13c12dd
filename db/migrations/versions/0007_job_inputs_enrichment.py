"""Large job inputs stored by the client (one row per list item), and lead enrichment results.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'enriched', 'failed', 'skipped'"


def upgrade() -> None:
    op.create_table(
        "job_inputs",
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("needed_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "field", name=op.f("pk_job_inputs")),
    )
    op.create_index("ix_job_inputs_needed_until", "job_inputs", ["needed_until"])
    op.create_table(
        "job_input_items",
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "field", "position", name=op.f("pk_job_input_items")),
    )
    op.create_table(
        "enrichment_results",
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_enrichment_results_status")),
        sa.PrimaryKeyConstraint("job_id", "position", name=op.f("pk_enrichment_results")),
    )


def downgrade() -> None:
    op.drop_table("enrichment_results")
    op.drop_table("job_input_items")
    op.drop_index("ix_job_inputs_needed_until", table_name="job_inputs")
    op.drop_table("job_inputs")
