"""Facebook Messenger and Instagram.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    # As 0008, 0011, 0015 and 0019 do: ADD VALUE inside the migration's transaction (PostgreSQL 12+; the new values
    # are not used in this transaction). `autocommit_block()` cannot be used here: `banxway.db.migrate` hands alembic
    # a connection that is already in a transaction, which alembic's autocommit block asserts against.
    op.execute("ALTER TYPE channel ADD VALUE IF NOT EXISTS 'MESSENGER'")
    op.execute("ALTER TYPE channel ADD VALUE IF NOT EXISTS 'INSTAGRAM'")
    op.execute("ALTER TYPE integration_type ADD VALUE IF NOT EXISTS 'META'")
    op.execute("ALTER TYPE notification_type ADD VALUE IF NOT EXISTS 'integration_token_failed'")
    op.create_table(
        "meta_accounts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("integration_id", sa.UUID(), nullable=False),
        sa.Column("app_secret", sa.Text(), nullable=False),
        sa.Column("verify_token", sa.Text(), nullable=False),
        sa.Column("instagram_account_id", sa.String(length=100), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_meta_accounts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_meta_accounts_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meta_accounts")),
        sa.UniqueConstraint("integration_id", name=op.f("uq_meta_accounts_integration_id")),
    )
    op.create_index(op.f("ix_meta_accounts_organization_id"), "meta_accounts", ["organization_id"])


def downgrade() -> None:
    # The MESSENGER, INSTAGRAM, META and integration_token_failed enum values stay: PostgreSQL cannot drop an
    # enum value.
    op.drop_index(op.f("ix_meta_accounts_organization_id"), table_name="meta_accounts")
    op.drop_table("meta_accounts")
