"""Shipment documents: a file filed on a shipment (and optionally the thread and message it came with), its type,
review status, versions (a newer one of the same type supersedes it) and the text read from it (searchable).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)

DOCUMENT_TYPES = (
    "BILL_OF_LADING",
    "HOUSE_BL",
    "AIR_WAYBILL",
    "COMMERCIAL_INVOICE",
    "PACKING_LIST",
    "CERTIFICATE_OF_ORIGIN",
    "CUSTOMS_DECLARATION",
    "DELIVERY_ORDER",
    "OTHER",
)
DOCUMENT_STATUSES = ("DRAFT", "RECEIVED", "APPROVED", "REJECTED")
TEXT_STATES = ("PENDING", "EXTRACTED", "NO_TEXT", "FAILED")
_SEARCH = "to_tsvector('simple', coalesce(extracted_text, ''))"


def upgrade() -> None:
    document_type = postgresql.ENUM(*DOCUMENT_TYPES, name="document_type", create_type=False)
    document_status = postgresql.ENUM(*DOCUMENT_STATUSES, name="document_status", create_type=False)
    text_state = postgresql.ENUM(*TEXT_STATES, name="document_text_state", create_type=False)
    for name, values in (
        ("document_type", DOCUMENT_TYPES),
        ("document_status", DOCUMENT_STATUSES),
        ("document_text_state", TEXT_STATES),
    ):
        postgresql.ENUM(*values, name=name).create(op.get_bind(), checkfirst=True)
    op.create_table(
        "documents",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("shipment_id", UUID, sa.ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("thread_id", UUID, sa.ForeignKey("threads.id", ondelete="SET NULL"), index=True),
        sa.Column("message_id", UUID, sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("attachment_id", UUID, sa.ForeignKey("attachments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", document_type, nullable=False),
        sa.Column("status", document_status, nullable=False, server_default="RECEIVED"),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("lineage_id", UUID, nullable=False, index=True),
        sa.Column(
            "superseded_by_id",
            UUID,
            sa.ForeignKey("documents.id", ondelete="SET NULL", deferrable=True, initially="DEFERRED"),
        ),
        sa.Column("reviewer_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("rejection_reason", sa.Text()),
        sa.Column("text_state", text_state, nullable=False, server_default="PENDING"),
        sa.Column("text_error", sa.Text()),
        sa.Column("extracted_text", sa.Text()),
        sa.Column("pages", sa.Integer()),
        sa.Column("entities", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("uploaded_by_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(_SEARCH, persisted=True)),
    )
    op.create_index("ix_documents_shipment_created", "documents", ["shipment_id", "created_at", "id"])
    op.create_index("ix_documents_org_created", "documents", ["organization_id", "created_at", "id"])
    op.create_index("ix_documents_attachment_id", "documents", ["attachment_id"])
    op.create_index("ix_documents_search", "documents", ["search"], postgresql_using="gin")
    # one current document of each type per shipment (OTHER: any number); a newer one supersedes it
    op.create_index(
        "uq_documents_current_type",
        "documents",
        ["shipment_id", "type"],
        unique=True,
        postgresql_where=sa.text("superseded_by_id IS NULL AND type <> 'OTHER'"),
    )


def downgrade() -> None:
    op.drop_table("documents")
    for name in ("document_text_state", "document_status", "document_type"):
        postgresql.ENUM(name=name).drop(op.get_bind(), checkfirst=True)
