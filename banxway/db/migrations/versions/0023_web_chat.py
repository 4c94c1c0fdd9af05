"""Web chat widget: widgets and visitors.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def _organization() -> sa.Column:
    return sa.Column(
        "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )


def upgrade() -> None:
    op.create_table(
        "chat_widgets",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _organization(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("widget_key", sa.String(64), nullable=False),
        sa.Column("allowed_origins", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("greeting", sa.Text()),
        sa.Column("primary_color", sa.String(7), nullable=False, server_default=sa.text("'#1f6feb'")),
        sa.Column("business_hours_message", sa.Text()),
        sa.Column("ai_agent_first", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("pre_chat_name", sa.String(10), nullable=False, server_default=sa.text("'OPTIONAL'")),
        sa.Column("pre_chat_email", sa.String(10), nullable=False, server_default=sa.text("'OPTIONAL'")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("widget_key", name="uq_chat_widgets_widget_key"),
    )
    op.create_table(
        "chat_visitors",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _organization(),
        sa.Column("widget_id", UUID, sa.ForeignKey("chat_widgets.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("public_id", sa.String(64), nullable=False),
        sa.Column("contact_id", UUID, sa.ForeignKey("contacts.id", ondelete="SET NULL")),
        sa.Column("thread_id", UUID, sa.ForeignKey("threads.id", ondelete="SET NULL")),
        sa.Column("name", sa.String(200)),
        sa.Column("email", sa.String(320)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("transcript_sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("public_id", name="uq_chat_visitors_public_id"),
    )


def downgrade() -> None:
    op.drop_table("chat_visitors")
    op.drop_table("chat_widgets")
