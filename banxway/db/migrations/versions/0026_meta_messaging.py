"""Facebook Messenger and Instagram.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
