"""Agents over MCP, Banxway as the client: external MCP server connections and agent tasks.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def _organization() -> sa.Column:
    return sa.Column(
        "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )


def upgrade() -> None:
    op.create_table(
        "agent_connections",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _organization(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("auth_header_name", sa.String(100), nullable=False, server_default=sa.text("'Authorization'")),
        sa.Column("auth_header", sa.Text()),
        sa.Column("allowed_tools", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("last_tested_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("organization_id", "name", name="uq_agent_connections_organization_id"),
    )
    op.create_table(
        "agent_tasks",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _organization(),
        sa.Column("thread_id", UUID, sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("connection_id", UUID, sa.ForeignKey("agent_connections.id", ondelete="SET NULL"), index=True),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("arguments", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.String(20), nullable=False, server_default=sa.text("'QUEUED'")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("result", sa.Text()),
        sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("error", sa.Text()),
        sa.Column("note_id", UUID, sa.ForeignKey("notes.id", ondelete="SET NULL")),
        sa.Column("created_by_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_agent_tasks_thread_created", "agent_tasks", ["thread_id", "created_at"])


def downgrade() -> None:
    op.drop_table("agent_tasks")
    op.drop_table("agent_connections")
