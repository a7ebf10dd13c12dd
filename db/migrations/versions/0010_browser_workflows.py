"""Browser workflows: saved step lists by version, their executions, step results and
screenshots.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "browser_workflows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", "version", name=op.f("pk_browser_workflows")),
        sa.UniqueConstraint(
            "user_id", "name", "version", name=op.f("uq_browser_workflows_user_id_name_version")
        ),
    )
    op.create_table(
        "browser_executions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("trigger_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_step", sa.Integer(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("started_at", _WHEN, nullable=True),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_browser_executions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_browser_executions")),
    )
    op.create_index(
        op.f("ix_browser_executions_job_id"), "browser_executions", ["job_id"], unique=False
    )
    op.create_index(
        op.f("ix_browser_executions_user_id"), "browser_executions", ["user_id"], unique=False
    )
    op.create_table(
        "browser_step_results",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("screenshot_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "status IN ('succeeded', 'failed')", name=op.f("ck_browser_step_results_status")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["browser_executions.id"],
            name=op.f("fk_browser_step_results_execution_id_browser_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "step_index", name=op.f("pk_browser_step_results")),
    )
    op.create_table(
        "browser_screenshots",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["browser_executions.id"],
            name=op.f("fk_browser_screenshots_execution_id_browser_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_browser_screenshots")),
    )
    op.create_index(
        op.f("ix_browser_screenshots_execution_id"),
        "browser_screenshots",
        ["execution_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("browser_screenshots")
    op.drop_table("browser_step_results")
    op.drop_table("browser_executions")
    op.drop_table("browser_workflows")
