"""Messaging: WhatsApp/SMS/voice provider integrations, their numbers, early delivery statuses.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"], ["organizations.id"], name=f"fk_{table}_organization_id_organizations", ondelete="CASCADE"
    )


def _integration_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["integration_id"], ["integrations.id"], name=f"fk_{table}_integration_id_integrations", ondelete="CASCADE"
    )


def upgrade() -> None:
    integration_type = postgresql.ENUM("EXOTEL", "TWILIO", name="integration_type")
    op.create_table(
        "integrations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("type", integration_type, nullable=False),
        sa.Column("account_sid", sa.String(length=100), nullable=False),
        sa.Column("api_key", sa.String(length=200), nullable=True),
        sa.Column("api_token", sa.Text(), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("webhook_token", sa.String(length=64), nullable=False),
        sa.Column("previous_webhook_token", sa.String(length=64), nullable=True),
        sa.Column("previous_webhook_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip_allowlist", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("whatsapp_templates", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_tested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        _org_fk("integrations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("organization_id", "type", name=op.f("uq_integrations_organization_id")),
        sa.UniqueConstraint("webhook_token", name=op.f("uq_integrations_webhook_token")),
        sa.UniqueConstraint("previous_webhook_token", name=op.f("uq_integrations_previous_webhook_token")),
    )
    op.create_index(op.f("ix_integrations_organization_id"), "integrations", ["organization_id"])
    op.create_table(
        "phone_numbers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("integration_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("channels", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        _org_fk("phone_numbers"),
        _integration_fk("phone_numbers"),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_phone_numbers_assignee_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_numbers")),
        sa.UniqueConstraint("organization_id", "number", name=op.f("uq_phone_numbers_organization_id")),
    )
    op.create_index(op.f("ix_phone_numbers_organization_id"), "phone_numbers", ["organization_id"])
    op.create_index(op.f("ix_phone_numbers_integration_id"), "phone_numbers", ["integration_id"])
    op.create_index(op.f("ix_phone_numbers_assignee_id"), "phone_numbers", ["assignee_id"])
    op.create_table(
        "pending_statuses",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("integration_id", sa.UUID(), nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=False),
        sa.Column("status", postgresql.ENUM(name="message_status", create_type=False), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        _org_fk("pending_statuses"),
        _integration_fk("pending_statuses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_statuses")),
    )
    op.create_index(op.f("ix_pending_statuses_organization_id"), "pending_statuses", ["organization_id"])
    op.create_index(
        "ix_pending_statuses_integration_provider_id", "pending_statuses", ["integration_id", "provider_message_id"]
    )
    op.add_column("messages", sa.Column("integration_id", sa.UUID(), nullable=True))
    op.add_column("messages", sa.Column("segments", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_messages_integration_id_integrations"),
        "messages",
        "integrations",
        ["integration_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "uq_messages_integration_id_provider_message_id",
        "messages",
        ["integration_id", "provider_message_id"],
        unique=True,
        postgresql_where=sa.text("integration_id IS NOT NULL AND provider_message_id IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_inbound_sender",
        "messages",
        ["sender", "created_at"],
        postgresql_where=sa.text("direction = 'INBOUND'"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_inbound_sender", table_name="messages")
    op.drop_index("uq_messages_integration_id_provider_message_id", table_name="messages")
    op.drop_constraint(op.f("fk_messages_integration_id_integrations"), "messages", type_="foreignkey")
    op.drop_column("messages", "segments")
    op.drop_column("messages", "integration_id")
    op.drop_table("pending_statuses")
    op.drop_table("phone_numbers")
    op.drop_table("integrations")
    postgresql.ENUM(name="integration_type").drop(op.get_bind(), checkfirst=True)
