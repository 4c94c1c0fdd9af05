"""Analytics: per-day rollups, and the indexes the analytics queries range over.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)
_STATUS_CHANGES = "type IN ('THREAD_UPDATED', 'THREAD_ARCHIVED') AND (payload ->> 'previous_status') IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "analytics_daily",
        sa.Column("organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("timezone", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("threads_opened", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("threads_resolved", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("threads_reopened", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("messages_in", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("messages_out", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "first_response_seconds", postgresql.ARRAY(sa.Float()), nullable=False, server_default=sa.text("'{}'")
        ),
        sa.Column("first_response_business_seconds", postgresql.ARRAY(sa.Float())),
        sa.Column("resolution_seconds", postgresql.ARRAY(sa.Float()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("resolution_business_seconds", postgresql.ARRAY(sa.Float())),
        sa.Column("sla", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_messages_org_created", "messages", ["organization_id", "created_at"])
    op.create_index("ix_threads_org_created", "threads", ["organization_id", "created_at"])
    op.create_index(
        "ix_threads_org_first_response",
        "threads",
        ["organization_id", "first_response_at"],
        postgresql_where=sa.text("first_response_at IS NOT NULL"),
    )
    op.create_index(
        "ix_events_status_changes",
        "events",
        ["organization_id", "created_at"],
        postgresql_where=sa.text(_STATUS_CHANGES),
    )
    op.create_index("ix_sla_targets_org_started", "sla_targets", ["organization_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_sla_targets_org_started", table_name="sla_targets")
    op.drop_index("ix_events_status_changes", table_name="events")
    op.drop_index("ix_threads_org_first_response", table_name="threads")
    op.drop_index("ix_threads_org_created", table_name="threads")
    op.drop_index("ix_messages_org_created", table_name="messages")
    op.drop_table("analytics_daily")
