"""The inbox's totalCount as an index-only scan: threads by (organization_id, status).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_threads_org_status", "threads", ["organization_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_threads_org_status", table_name="threads")
