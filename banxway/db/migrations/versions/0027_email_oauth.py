"""Gmail and Microsoft 365 mailboxes connected with OAuth 2.0 (reserved; filled in by the OAuth work).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 03:50:00
"""

from __future__ import annotations

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
