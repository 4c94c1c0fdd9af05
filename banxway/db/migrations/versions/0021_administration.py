"""Organization administration: settings, profiles, invitations.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)
USER_ROLE = postgresql.ENUM(name="user_role", create_type=False)


def upgrade() -> None:
    op.add_column("organizations", sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))
    op.add_column("organizations", sa.Column("signature", sa.Text()))
    # no foreign key: organizations → attachments → messages → threads → organizations would be a cycle; the
    # resolver checks the attachment is the organization's, and a logo whose attachment is gone reads as none
    op.add_column("organizations", sa.Column("logo_attachment_id", UUID))
    op.add_column(
        "users",
        sa.Column(
            "notification_preferences",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.add_column("users", sa.Column("quiet_hours", postgresql.JSONB()))
    op.add_column("notifications", sa.Column("emailed_at", sa.DateTime(timezone=True)))
    op.create_table(
        "invitations",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id",
            UUID,
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", USER_ROLE, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_secret", sa.Text()),
        sa.Column("status", sa.String(20), nullable=False, server_default="PENDING"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invited_by_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("user_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("emailed_at", sa.DateTime(timezone=True)),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "uq_invitations_pending_email",
        "invitations",
        ["organization_id", "email"],
        unique=True,
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_table("invitations")
    op.drop_column("notifications", "emailed_at")
    op.drop_column("users", "quiet_hours")
    op.drop_column("users", "notification_preferences")
    op.drop_column("organizations", "logo_attachment_id")
    op.drop_column("organizations", "signature")
    op.drop_column("organizations", "timezone")
