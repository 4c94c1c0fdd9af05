"""Editable and deletable notes: when a note was last edited, and when it was deleted (a soft delete: the row
stays for the events and notifications that name it, its body is cleared).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notes", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # deleted notes would come back as empty ones (their notifications go with them)
    op.execute("DELETE FROM notes WHERE deleted_at IS NOT NULL")
    op.drop_column("notes", "deleted_at")
    op.drop_column("notes", "edited_at")
