"""Search that finds shipments, customers and notes: a generated tsvector with a GIN index on shipments (reference,
BL, booking, AWB and container numbers), customers (name, code), contacts (name) and notes (body), read by the
inbox search beside those of threads and messages.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Identifiers as their letter and digit runs, and each whole without separators. `array_to_tsvector(...)::text` reads
# the container numbers immutably (array_to_string is only stable, which a generated column refuses).
_SHIPMENT_IDS = (
    "reference || ' ' || coalesce(bl_number, '') || ' ' || coalesce(booking_number, '') || ' ' || "
    "coalesce(awb_number, '') || ' ' || array_to_tsvector(container_numbers)::text"
)
_DOCUMENTS = {
    "shipments": (
        f"to_tsvector('simple', regexp_replace({_SHIPMENT_IDS}, '[^A-Za-z0-9]+', ' ', 'g') || ' ' || "
        "regexp_replace(reference, '[^A-Za-z0-9]+', '', 'g') || ' ' || "
        "regexp_replace(coalesce(bl_number, ''), '[^A-Za-z0-9]+', '', 'g') || ' ' || "
        "regexp_replace(coalesce(booking_number, ''), '[^A-Za-z0-9]+', '', 'g') || ' ' || "
        "regexp_replace(coalesce(awb_number, ''), '[^A-Za-z0-9]+', '', 'g'))"
    ),
    "customers": "to_tsvector('simple', name || ' ' || coalesce(code, ''))",
    "contacts": "to_tsvector('simple', name)",
    "notes": "to_tsvector('simple', body)",
}


def upgrade() -> None:
    for table, document in _DOCUMENTS.items():
        op.add_column(table, sa.Column("search", postgresql.TSVECTOR(), sa.Computed(document, persisted=True)))
        op.create_index(f"ix_{table}_search", table, ["search"], unique=False, postgresql_using="gin")


def downgrade() -> None:
    for table in reversed(_DOCUMENTS):
        op.drop_index(f"ix_{table}_search", table_name=table, postgresql_using="gin")
        op.drop_column(table, "search")
