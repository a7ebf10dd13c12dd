"""Webhook dead letters: the signing secret's id kept with each delivery (for redelivery),
redelivered and discarded marks, and the endpoints disabled after a 410 Gone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("secret_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("redelivered_as", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "webhook_endpoints_disabled",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "url_hash", name=op.f("pk_webhook_endpoints_disabled")),
    )


def downgrade() -> None:
    op.drop_table("webhook_endpoints_disabled")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("discarded_at")
        batch.drop_column("redelivered_as")
        batch.drop_column("secret_id")
