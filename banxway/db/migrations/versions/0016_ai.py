"""AI: message analyses (language, sentiment, intent, entities), the thread's intent and sentiment, shipment link
suggestions, compose sessions with their feedback, and the per-month token meter of the AI budget.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)
INTENTS = ("QUOTE_REQUEST", "BOOKING", "TRACKING", "DOCUMENTS", "INVOICE", "CUSTOMS", "COMPLAINT", "OTHER")
SENTIMENTS = ("NEGATIVE", "NEUTRAL", "POSITIVE")
intent = postgresql.ENUM(*INTENTS, name="intent", create_type=False)
sentiment = postgresql.ENUM(*SENTIMENTS, name="sentiment", create_type=False)
channel = postgresql.ENUM(name="channel", create_type=False)


def _org(*, primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "organization_id",
        UUID,
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=not primary_key,
        primary_key=primary_key,
    )


def _fk(name: str, table: str, *, nullable: bool = False, index: bool = False, primary_key: bool = False) -> sa.Column:
    return sa.Column(
        name,
        UUID,
        sa.ForeignKey(f"{table}.id", ondelete="CASCADE"),
        nullable=nullable,
        index=index,
        primary_key=primary_key,
    )


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    postgresql.ENUM(*INTENTS, name="intent").create(op.get_bind(), checkfirst=True)
    postgresql.ENUM(*SENTIMENTS, name="sentiment").create(op.get_bind(), checkfirst=True)
    op.add_column("threads", sa.Column("intent", intent))
    op.add_column("threads", sa.Column("sentiment", sentiment))
    op.create_index(
        "ix_threads_org_intent",
        "threads",
        ["organization_id", "intent"],
        postgresql_where=sa.text("intent IS NOT NULL"),
    )
    op.create_table(
        "message_analyses",
        _fk("message_id", "messages", primary_key=True),
        _org(),
        _fk("thread_id", "threads", index=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("sentiment", sentiment, nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("intent", intent, nullable=False),
        sa.Column("intent_confidence", sa.Float(), nullable=False),
        sa.Column("entities", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("analyser", sa.String(100), nullable=False),
        _now("created_at"),
    )
    op.create_table(
        "shipment_suggestions",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _org(),
        _fk("thread_id", "threads", index=True),
        _fk("shipment_id", "shipments"),
        _fk("message_id", "messages"),
        sa.Column("evidence", postgresql.JSONB(), nullable=False),
        _now("created_at"),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("thread_id", "shipment_id", name="uq_shipment_suggestions_thread_id_shipment_id"),
    )
    op.create_table(
        "compose_sessions",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _org(),
        _fk("thread_id", "threads", index=True),
        _fk("user_id", "users"),
        sa.Column("channel", channel, nullable=False),
        sa.Column("tone", sa.String(16), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False, server_default=""),
        sa.Column("variants", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("prompt_version", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="PENDING"),
        sa.Column("error_code", sa.String(40)),
        sa.Column("error_message", sa.Text()),
        sa.Column("drafts", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("feedback_variant", sa.Integer()),
        sa.Column("feedback_rating", sa.String(8)),
        sa.Column("final_text", sa.Text()),
        sa.Column("edit_distance", sa.Integer()),
        sa.Column("feedback_at", sa.DateTime(timezone=True)),
        _now("created_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_compose_sessions_org_created", "compose_sessions", ["organization_id", "created_at"])
    op.create_table(
        "ai_usage",
        _org(primary_key=True),
        sa.Column("month", sa.Date(), primary_key=True),
        sa.Column("tokens", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    op.drop_table("ai_usage")
    op.drop_table("compose_sessions")
    op.drop_table("shipment_suggestions")
    op.drop_table("message_analyses")
    op.drop_index("ix_threads_org_intent", table_name="threads")
    op.drop_column("threads", "sentiment")
    op.drop_column("threads", "intent")
    postgresql.ENUM(name="sentiment").drop(op.get_bind(), checkfirst=True)
    postgresql.ENUM(name="intent").drop(op.get_bind(), checkfirst=True)
