"""Gmail and Microsoft 365 mailboxes connected with OAuth 2.0: an email account's auth method, provider, encrypted
tokens and status (REAUTHORIZATION_REQUIRED when the grant is gone); the pending authorizations (state + PKCE).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 03:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "email_accounts", sa.Column("auth_method", sa.String(length=10), server_default="PASSWORD", nullable=False)
    )
    op.add_column("email_accounts", sa.Column("oauth_provider", sa.String(length=20), nullable=True))
    op.add_column("email_accounts", sa.Column("oauth_refresh_token", sa.Text(), nullable=True))
    op.add_column("email_accounts", sa.Column("oauth_access_token", sa.Text(), nullable=True))
    op.add_column("email_accounts", sa.Column("oauth_token_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("email_accounts", sa.Column("status", sa.String(length=30), server_default="ACTIVE", nullable=False))
    # an OAuth account has no password; a PASSWORD account's is still required (banxway.resolvers.email)
    op.alter_column("email_accounts", "imap_password", existing_type=sa.Text(), nullable=True)
    op.create_table(
        "email_oauth_states",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("email_account_id", sa.UUID(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_email_oauth_states_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_oauth_states_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["email_account_id"],
            ["email_accounts.id"],
            name=op.f("fk_email_oauth_states_email_account_id_email_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_oauth_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_email_oauth_states_state_hash")),
    )
    op.create_index(op.f("ix_email_oauth_states_organization_id"), "email_oauth_states", ["organization_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_email_oauth_states_organization_id"), table_name="email_oauth_states")
    op.drop_table("email_oauth_states")
    # OAuth accounts have no password to put back: they go with the columns that made them work
    op.execute("DELETE FROM email_accounts WHERE imap_password IS NULL")
    op.alter_column("email_accounts", "imap_password", existing_type=sa.Text(), nullable=False)
    for column in ("status", "oauth_token_expires_at", "oauth_access_token", "oauth_refresh_token"):
        op.drop_column("email_accounts", column)
    op.drop_column("email_accounts", "oauth_provider")
    op.drop_column("email_accounts", "auth_method")
