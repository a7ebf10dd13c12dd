"""SEO crawls and ad jobs: the pages a crawl fetched, stored reports, uploaded ad data files
and the audit trail of ad automation actions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "seo_crawl_pages",
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "url", name=op.f("pk_seo_crawl_pages")),
    )
    op.create_index(
        op.f("ix_seo_crawl_pages_created_at"), "seo_crawl_pages", ["created_at"], unique=False
    )
    op.create_table(
        "analysis_reports",
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            "kind IN ('seo_audit', 'keyword_analysis', 'ad_analysis', 'ad_automation')",
            name=op.f("ck_analysis_reports_kind"),
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_analysis_reports")),
    )
    op.create_index(
        op.f("ix_analysis_reports_user_id"), "analysis_reports", ["user_id"], unique=False
    )
    op.create_index(
        op.f("ix_analysis_reports_created_at"), "analysis_reports", ["created_at"], unique=False
    )
    op.create_table(
        "ad_data_files",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint("format IN ('csv', 'json')", name=op.f("ck_ad_data_files_format")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_data_files")),
    )
    op.create_index(op.f("ix_ad_data_files_user_id"), "ad_data_files", ["user_id"], unique=False)
    op.create_index(
        op.f("ix_ad_data_files_created_at"), "ad_data_files", ["created_at"], unique=False
    )
    op.create_table(
        "ad_actions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("done_at", _WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name=op.f("ck_ad_actions_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_actions")),
        sa.UniqueConstraint(
            "user_id",
            "rule_id",
            "level",
            "entity_id",
            "day",
            name=op.f("uq_ad_actions_user_id_rule_id_level_entity_id_day"),
        ),  # fmt: skip
    )
    op.create_index(op.f("ix_ad_actions_job_id"), "ad_actions", ["job_id"], unique=False)
    op.create_index(op.f("ix_ad_actions_user_id"), "ad_actions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("ad_actions")
    op.drop_table("ad_data_files")
    op.drop_table("analysis_reports")
    op.drop_table("seo_crawl_pages")
