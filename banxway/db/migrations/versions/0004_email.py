"""Email: accounts (IMAP + SMTP), attachments, the quarantine of mail that could not be stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"], ["organizations.id"], name=f"fk_{table}_organization_id_organizations", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "email_accounts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("imap_host", sa.String(length=255), nullable=False),
        sa.Column("imap_port", sa.Integer(), nullable=False),
        sa.Column("imap_security", sa.String(length=10), nullable=False),
        sa.Column("imap_username", sa.String(length=320), nullable=False),
        sa.Column("imap_password", sa.Text(), nullable=False),
        sa.Column("imap_folder", sa.String(length=255), server_default="INBOX", nullable=False),
        sa.Column("smtp_host", sa.String(length=255), nullable=False),
        sa.Column("smtp_port", sa.Integer(), nullable=False),
        sa.Column("smtp_security", sa.String(length=10), nullable=False),
        sa.Column("smtp_username", sa.String(length=320), nullable=True),
        sa.Column("smtp_password", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        _org_fk("email_accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_accounts")),
        sa.UniqueConstraint("organization_id", "email", name=op.f("uq_email_accounts_organization_id")),
    )
    op.create_index(op.f("ix_email_accounts_organization_id"), "email_accounts", ["organization_id"])
    op.add_column("messages", sa.Column("email_account_id", sa.UUID(), nullable=True))
    op.add_column("messages", sa.Column("full_body", sa.Text(), nullable=True))
    op.create_foreign_key(
        op.f("fk_messages_email_account_id_email_accounts"),
        "messages",
        "email_accounts",
        ["email_account_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "uq_messages_email_account_id_provider_message_id",
        "messages",
        ["email_account_id", "provider_message_id"],
        unique=True,
        postgresql_where=sa.text("email_account_id IS NOT NULL AND provider_message_id IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_organization_id_provider_message_id", "messages", ["organization_id", "provider_message_id"]
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_id", sa.String(length=255), nullable=True),
        sa.Column("inline", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_attachments_message_id_messages"), ondelete="CASCADE"
        ),
        _org_fk("attachments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(op.f("ix_attachments_message_id"), "attachments", ["message_id"])
    op.create_index(op.f("ix_attachments_organization_id"), "attachments", ["organization_id"])
    op.create_table(
        "email_quarantine",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=True),
        sa.Column("reprocessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["email_accounts.id"],
            name=op.f("fk_email_quarantine_account_id_email_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_email_quarantine_message_id_messages"), ondelete="SET NULL"
        ),
        _org_fk("email_quarantine"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_quarantine")),
    )
    op.create_index(op.f("ix_email_quarantine_account_id"), "email_quarantine", ["account_id"])
    op.create_index(op.f("ix_email_quarantine_organization_id"), "email_quarantine", ["organization_id"])


def downgrade() -> None:
    op.drop_table("email_quarantine")
    op.drop_table("attachments")
    op.drop_index("ix_messages_organization_id_provider_message_id", table_name="messages")
    op.drop_index("uq_messages_email_account_id_provider_message_id", table_name="messages")
    op.drop_constraint(op.f("fk_messages_email_account_id_email_accounts"), "messages", type_="foreignkey")
    op.drop_column("messages", "full_body")
    op.drop_column("messages", "email_account_id")
    op.drop_table("email_accounts")
