"""AI agent with a knowledge base.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    # the knowledge base: sources (a document, a page, a text) and their chunks, searchable by full text
    op.create_table(
        "knowledge_sources",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("url", sa.Text()),
        sa.Column("attachment_id", UUID, sa.ForeignKey("attachments.id", ondelete="SET NULL")),
        sa.Column("characters", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("embedding_model", sa.String(100)),
        sa.Column("created_by_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column(
            "source_id", UUID, sa.ForeignKey("knowledge_sources.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", postgresql.ARRAY(sa.REAL())),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', title || ' ' || text)", persisted=True),
        ),
    )
    op.create_index("ix_knowledge_chunks_search", "knowledge_chunks", ["search"], postgresql_using="gin")
    # the agents that answer customers from it
    op.create_table(
        "ai_agents",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("channels", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("active_hours", postgresql.JSONB()),
        sa.Column("min_confidence", sa.Float(), nullable=False, server_default=sa.text("0.35")),
        sa.Column("handover_keywords", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("tone", sa.String(20), nullable=False, server_default=sa.text("'FRIENDLY'")),
        sa.Column("max_turns", sa.Integer(), nullable=False, server_default=sa.text("5")),
        sa.Column("handover_team_id", UUID, sa.ForeignKey("teams.id", ondelete="SET NULL")),
        sa.Column("run_as_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("organization_id", "name", name="uq_ai_agents_organization_id_name"),
    )
    # what an agent did with each inbound message (once per message: a redelivered job finds it and stops)
    op.create_table(
        "ai_agent_turns",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("agent_id", UUID, sa.ForeignKey("ai_agents.id", ondelete="SET NULL")),
        sa.Column("thread_id", UUID, sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("message_id", UUID, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("confidence", sa.Float()),
        sa.Column("reply_message_id", UUID, sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("sources", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("tools", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.add_column("threads", sa.Column("bot_suspended_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("threads", "bot_suspended_until")
    op.drop_table("ai_agent_turns")
    op.drop_table("ai_agents")
    op.drop_index("ix_knowledge_chunks_search", table_name="knowledge_chunks")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_sources")
