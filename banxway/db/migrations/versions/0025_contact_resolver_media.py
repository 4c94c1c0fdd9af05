"""Contact resolver across channels and outbound media.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    # Two contacts found to share an address (banxway.resolvers.contact_resolver): a suggestion to merge them, never
    # an automatic merge. The pair is kept ordered (contact_id < other_contact_id) so that it is suggested once.
    op.create_table(
        "contact_merge_suggestions",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id",
            UUID,
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("contact_id", UUID, sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column(
            "other_contact_id", UUID, sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default=sa.text("'OPEN'")),
        sa.Column("resolved_by_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint(
            "organization_id",
            "contact_id",
            "other_contact_id",
            "address",
            name="uq_contact_merge_suggestions_pair_address",
        ),
    )


def downgrade() -> None:
    op.drop_table("contact_merge_suggestions")
