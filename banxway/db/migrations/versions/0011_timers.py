"""Timers: scheduled sends (message statuses SCHEDULED and CANCELLED, messages.send_at) and reminders on actions'
due times (actions.reminded_at, notification type action_due), each indexed for its sweep.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TYPE message_status ADD VALUE IF NOT EXISTS 'SCHEDULED'")
    op.execute("ALTER TYPE message_status ADD VALUE IF NOT EXISTS 'CANCELLED'")
    op.add_column("messages", sa.Column("send_at", sa.DateTime(timezone=True)))
    op.create_index("ix_messages_send_at", "messages", ["send_at"], postgresql_where=sa.text("send_at IS NOT NULL"))
    op.execute("ALTER TYPE notification_type ADD VALUE IF NOT EXISTS 'action_due'")
    op.add_column("actions", sa.Column("reminded_at", sa.DateTime(timezone=True)))
    op.create_index("ix_actions_due_unreminded", "actions", ["due_at"], postgresql_where=sa.text("reminded_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_actions_due_unreminded", table_name="actions")
    op.drop_column("actions", "reminded_at")
    op.execute("DELETE FROM notifications WHERE type::text = 'action_due'")
    op.drop_index("ix_messages_send_at", table_name="messages")
    op.drop_column("messages", "send_at")
    # message_status keeps SCHEDULED and CANCELLED (PostgreSQL cannot drop an enum value); no row uses them now
    op.execute(
        "UPDATE messages SET status = 'FAILED', error = 'Cancelled (scheduled send, downgraded)' "
        "WHERE status::text IN ('SCHEDULED', 'CANCELLED')"
    )
