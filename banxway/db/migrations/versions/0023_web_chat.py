"""Web chat widget: widgets and visitors.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
