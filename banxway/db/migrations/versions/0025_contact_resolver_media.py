"""Contact resolver across channels and outbound media.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
