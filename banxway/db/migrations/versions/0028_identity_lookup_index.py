"""Contact identities: drop the index on organization_id alone.

The unique index (organization_id, channel, address) starts with it and serves every query the single-column index
did. With both, a lookup by the whole key in an organization whose statistics are stale (a new organization, growing
fast: a reply storm on a fresh deployment) was planned on the single-column index, reading every identity of the
organization per lookup: inbound webhooks slowed from 39/s to 11/s over 1,000 new customers (bench/outbound.py).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 04:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_contact_identities_organization_id", table_name="contact_identities")


def downgrade() -> None:
    op.create_index("ix_contact_identities_organization_id", "contact_identities", ["organization_id"])
