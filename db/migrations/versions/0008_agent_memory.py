"""Agent memory: entries (key-value per user, session and agent, with expiry) and learned
patterns, with the indexes the cleanup and consolidation need, and the cleanup's progress.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "agent_memories",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_memories")),
        sa.UniqueConstraint(
            "user_id",
            "session_id",
            "agent_id",
            "key",
            name=op.f("uq_agent_memories_user_id_session_id_agent_id_key"),
        ),
    )
    op.create_index("ix_agent_memories_session_id", "agent_memories", ["session_id"])
    op.create_index("ix_agent_memories_agent_id", "agent_memories", ["agent_id"])
    op.create_table(
        "agent_patterns",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consolidated_into", big_id, nullable=True),
        sa.ForeignKeyConstraint(
            ["consolidated_into"],
            ["agent_patterns.id"],
            name=op.f("fk_agent_patterns_consolidated_into_agent_patterns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_patterns")),
    )
    op.create_index("ix_agent_patterns_agent_id", "agent_patterns", ["agent_id"])
    op.create_index("ix_agent_patterns_session_id", "agent_patterns", ["session_id"])
    op.create_index("ix_agent_patterns_consolidated_into", "agent_patterns", ["consolidated_into"])
    op.create_table(
        "cleanup_progress",
        sa.Column("job_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("after_id", big_id, nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("deleted", big_id, nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "run_id", "step", name=op.f("pk_cleanup_progress")),
    )


def downgrade() -> None:
    op.drop_table("cleanup_progress")
    op.drop_index("ix_agent_patterns_consolidated_into", table_name="agent_patterns")
    op.drop_index("ix_agent_patterns_session_id", table_name="agent_patterns")
    op.drop_index("ix_agent_patterns_agent_id", table_name="agent_patterns")
    op.drop_table("agent_patterns")
    op.drop_index("ix_agent_memories_agent_id", table_name="agent_memories")
    op.drop_index("ix_agent_memories_session_id", table_name="agent_memories")
    op.drop_table("agent_memories")
