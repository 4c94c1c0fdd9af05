"""Analytics: per-day rollups.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
