"""Email: which sync stored each message, and which auto-draft job answers it.

Counts of a retried sync add up across attempts (a page redone after a crash counts its
messages as stored by the same job), and auto-drafts come from the important messages not
drafted yet, so one whose page was stored by an attempt that died is still drafted. The
important messages stored before this revision had their draft started at the time: they
are marked with the draft job id that was used.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDRAFTED = sa.text("important AND draft_job_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("email_messages") as batch:
        batch.add_column(sa.Column("sync_job_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("draft_job_id", sa.String(length=255), nullable=True))
    op.execute(
        "UPDATE email_messages SET draft_job_id = "
        "'email_draft-auto-' || account_id || '-' || provider_message_id WHERE important"
    )
    op.create_index(
        "ix_email_messages_undrafted",
        "email_messages",
        ["account_id", "id"],
        postgresql_where=UNDRAFTED,
        sqlite_where=UNDRAFTED,
    )


def downgrade() -> None:
    op.drop_index("ix_email_messages_undrafted", table_name="email_messages")
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("draft_job_id")
        batch.drop_column("sync_job_id")
