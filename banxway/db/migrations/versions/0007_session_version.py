"""users.session_version: bumped when a user is signed out everywhere (deactivation, a new password); access
tokens carry the version they were issued under (`ver`) and stop working, on HTTP and on open WebSockets, once
it moves on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_version", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    op.drop_column("users", "session_version")
