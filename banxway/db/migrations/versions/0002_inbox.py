"""The inbox: customers, contacts, shipments, threads, messages, notes, actions, reads, events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:35:23.433184
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


ENUMS = (
    "channel",
    "direction",
    "message_status",
    "thread_status",
    "priority",
    "thread_type",
    "shipment_mode",
    "shipment_direction",
    "shipment_status",
    "milestone_type",
    "action_type",
    "action_status",
)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "custom_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_customers_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("organization_id", "code", name="uq_customers_organization_id_code"),
    )
    op.create_index(op.f("ix_customers_organization_id"), "customers", ["organization_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.UUID(), nullable=True),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_org_id", "events", ["organization_id", "id"], unique=False)
    op.create_index(op.f("ix_events_organization_id"), "events", ["organization_id"], unique=False)
    op.create_index(op.f("ix_events_thread_id"), "events", ["thread_id"], unique=False)
    op.create_index(
        "ix_events_undispatched", "events", ["id"], unique=False, postgresql_where=sa.text("dispatched_at IS NULL")
    )
    op.create_table(
        "thread_counters",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_thread_counters_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("year", "organization_id", name=op.f("pk_thread_counters")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("merged_into_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_contacts_customer_id_customers"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["contacts.id"], name=op.f("fk_contacts_merged_into_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contacts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index(op.f("ix_contacts_customer_id"), "contacts", ["customer_id"], unique=False)
    op.create_index(op.f("ix_contacts_merged_into_id"), "contacts", ["merged_into_id"], unique=False)
    op.create_index(op.f("ix_contacts_organization_id"), "contacts", ["organization_id"], unique=False)
    op.create_table(
        "shipments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("reference", sa.String(length=50), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("mode", sa.Enum("SEA", "AIR", "ROAD", "RAIL", name="shipment_mode"), nullable=False),
        sa.Column("direction", sa.Enum("IMPORT", "EXPORT", name="shipment_direction"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "DRAFT",
                "BOOKED",
                "IN_TRANSIT",
                "ARRIVED",
                "CUSTOMS_HOLD",
                "DELIVERED",
                "CANCELLED",
                name="shipment_status",
            ),
            server_default="BOOKED",
            nullable=False,
        ),
        sa.Column("origin_code", sa.String(length=5), nullable=True),
        sa.Column("origin_name", sa.String(length=200), nullable=True),
        sa.Column("destination_code", sa.String(length=5), nullable=True),
        sa.Column("destination_name", sa.String(length=200), nullable=True),
        sa.Column("carrier", sa.String(length=200), nullable=True),
        sa.Column("vessel", sa.String(length=200), nullable=True),
        sa.Column("voyage", sa.String(length=50), nullable=True),
        sa.Column("flight_number", sa.String(length=20), nullable=True),
        sa.Column("container_numbers", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("bl_number", sa.String(length=50), nullable=True),
        sa.Column("awb_number", sa.String(length=20), nullable=True),
        sa.Column("booking_number", sa.String(length=50), nullable=True),
        sa.Column("etd", sa.DateTime(timezone=True), nullable=True),
        sa.Column("eta", sa.DateTime(timezone=True), nullable=True),
        sa.Column("atd", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ata", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_shipments_customer_id_customers"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_shipments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("organization_id", "reference", name="uq_shipments_organization_id_reference"),
    )
    op.create_index(op.f("ix_shipments_awb_number"), "shipments", ["awb_number"], unique=False)
    op.create_index(op.f("ix_shipments_bl_number"), "shipments", ["bl_number"], unique=False)
    op.create_index(op.f("ix_shipments_booking_number"), "shipments", ["booking_number"], unique=False)
    op.create_index(op.f("ix_shipments_customer_id"), "shipments", ["customer_id"], unique=False)
    op.create_index(op.f("ix_shipments_organization_id"), "shipments", ["organization_id"], unique=False)
    op.create_table(
        "contact_identities",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("EMAIL", "WHATSAPP", "SMS", "VOICE", "WEB_CHAT", "INTERNAL", name="channel"),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contact_identities_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contact_identities_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_identities")),
        sa.UniqueConstraint(
            "organization_id", "channel", "address", name="uq_contact_identities_organization_id_channel_address"
        ),
    )
    op.create_index(op.f("ix_contact_identities_contact_id"), "contact_identities", ["contact_id"], unique=False)
    op.create_index(
        op.f("ix_contact_identities_organization_id"), "contact_identities", ["organization_id"], unique=False
    )
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kept_contact_id", sa.UUID(), nullable=False),
        sa.Column("merged_contact_id", sa.UUID(), nullable=False),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("moved", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_contact_merges_actor_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["kept_contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_merges_kept_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merged_contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_merges_merged_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contact_merges_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_merges")),
    )
    op.create_index(op.f("ix_contact_merges_kept_contact_id"), "contact_merges", ["kept_contact_id"], unique=False)
    op.create_index(op.f("ix_contact_merges_merged_contact_id"), "contact_merges", ["merged_contact_id"], unique=False)
    op.create_index(op.f("ix_contact_merges_organization_id"), "contact_merges", ["organization_id"], unique=False)
    op.create_table(
        "shipment_milestones",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("shipment_id", sa.UUID(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "BOOKED",
                "EMPTY_PICKUP",
                "GATE_IN",
                "LOADED",
                "DEPARTED",
                "TRANSSHIPMENT",
                "ARRIVED",
                "DISCHARGED",
                "CUSTOMS_CLEARED",
                "GATE_OUT",
                "DELIVERED",
                "EMPTY_RETURNED",
                name="milestone_type",
            ),
            nullable=False,
        ),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actual_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("location_code", sa.String(length=5), nullable=True),
        sa.Column("location_name", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_shipment_milestones_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_shipment_milestones_shipment_id_shipments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_milestones")),
    )
    op.create_index(
        op.f("ix_shipment_milestones_organization_id"), "shipment_milestones", ["organization_id"], unique=False
    )
    op.create_index(op.f("ix_shipment_milestones_shipment_id"), "shipment_milestones", ["shipment_id"], unique=False)
    op.create_table(
        "threads",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "QUOTE_REQUEST",
                "BOOKING",
                "SHIPMENT_UPDATE",
                "DOCUMENTATION",
                "CUSTOMS",
                "INVOICE",
                "COMPLAINT",
                "GENERAL",
                name="thread_type",
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum("NEW", "OPEN", "PENDING", "RESOLVED", "CLOSED", "ARCHIVED", name="thread_status"),
            nullable=False,
        ),
        sa.Column("priority", sa.Enum("LOW", "NORMAL", "HIGH", "URGENT", name="priority"), nullable=False),
        sa.Column(
            "primary_channel",
            sa.Enum("EMAIL", "WHATSAPP", "SMS", "VOICE", "WEB_CHAT", "INTERNAL", name="channel"),
            nullable=False,
        ),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.Column("shipment_id", sa.UUID(), nullable=True),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', coalesce(subject, '') || ' ' || reference)", persisted=True),
            nullable=False,
        ),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_threads_assignee_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_threads_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_threads_customer_id_customers"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_threads_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_threads_shipment_id_shipments"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threads")),
        sa.UniqueConstraint("organization_id", "reference", name="uq_threads_organization_id_reference"),
    )
    op.create_index(op.f("ix_threads_assignee_id"), "threads", ["assignee_id"], unique=False)
    op.create_index(op.f("ix_threads_contact_id"), "threads", ["contact_id"], unique=False)
    op.create_index(op.f("ix_threads_customer_id"), "threads", ["customer_id"], unique=False)
    op.create_index(
        "ix_threads_org_last_activity", "threads", ["organization_id", "last_activity_at", "id"], unique=False
    )
    op.create_index(op.f("ix_threads_organization_id"), "threads", ["organization_id"], unique=False)
    op.create_index("ix_threads_search", "threads", ["search"], unique=False, postgresql_using="gin")
    op.create_index(op.f("ix_threads_shipment_id"), "threads", ["shipment_id"], unique=False)
    op.create_table(
        "actions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("thread_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "TASK",
                "FOLLOW_UP",
                "CALL_BACK",
                "SEND_QUOTE",
                "QUOTE_APPROVAL",
                "DOCUMENT_APPROVAL",
                name="action_type",
            ),
            nullable=False,
        ),
        sa.Column("status", sa.Enum("OPEN", "IN_PROGRESS", "DONE", "CANCELLED", name="action_status"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        sa.Column("completed_by_id", sa.UUID(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_actions_assignee_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["completed_by_id"], ["users.id"], name=op.f("fk_actions_completed_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_actions_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_actions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_actions_thread_id_threads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
    )
    op.create_index(op.f("ix_actions_assignee_id"), "actions", ["assignee_id"], unique=False)
    op.create_index(op.f("ix_actions_organization_id"), "actions", ["organization_id"], unique=False)
    op.create_index("ix_actions_thread_created", "actions", ["thread_id", "created_at", "id"], unique=False)
    op.create_table(
        "messages",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("thread_id", sa.UUID(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("EMAIL", "WHATSAPP", "SMS", "VOICE", "WEB_CHAT", "INTERNAL", name="channel"),
            nullable=False,
        ),
        sa.Column("direction", sa.Enum("INBOUND", "OUTBOUND", name="direction"), nullable=False),
        sa.Column(
            "status",
            sa.Enum("RECEIVED", "QUEUED", "SENDING", "SENT", "DELIVERED", "READ", "FAILED", name="message_status"),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("recipients", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("author_id", sa.UUID(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', coalesce(subject, '') || ' ' || body)", persisted=True),
            nullable=False,
        ),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_messages_author_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_messages_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_messages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_messages_thread_id_threads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(op.f("ix_messages_contact_id"), "messages", ["contact_id"], unique=False)
    op.create_index(op.f("ix_messages_organization_id"), "messages", ["organization_id"], unique=False)
    op.create_index("ix_messages_search", "messages", ["search"], unique=False, postgresql_using="gin")
    op.create_index("ix_messages_thread_created", "messages", ["thread_id", "created_at", "id"], unique=False)
    op.create_index(
        "uq_messages_organization_id_idempotency_key",
        "messages",
        ["organization_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "notes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("thread_id", sa.UUID(), nullable=False),
        sa.Column("author_id", sa.UUID(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("mentioned_user_ids", postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_notes_author_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_notes_thread_id_threads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index(op.f("ix_notes_organization_id"), "notes", ["organization_id"], unique=False)
    op.create_index("ix_notes_thread_created", "notes", ["thread_id", "created_at", "id"], unique=False)
    op.create_table(
        "thread_reads",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("thread_id", sa.UUID(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_thread_reads_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_thread_reads_thread_id_threads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_thread_reads_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "thread_id", name=op.f("pk_thread_reads")),
    )
    op.create_index(op.f("ix_thread_reads_organization_id"), "thread_reads", ["organization_id"], unique=False)
    op.create_index(op.f("ix_thread_reads_thread_id"), "thread_reads", ["thread_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_thread_reads_thread_id"), table_name="thread_reads")
    op.drop_index(op.f("ix_thread_reads_organization_id"), table_name="thread_reads")
    op.drop_table("thread_reads")
    op.drop_index("ix_notes_thread_created", table_name="notes")
    op.drop_index(op.f("ix_notes_organization_id"), table_name="notes")
    op.drop_table("notes")
    op.drop_index(
        "uq_messages_organization_id_idempotency_key",
        table_name="messages",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index("ix_messages_thread_created", table_name="messages")
    op.drop_index("ix_messages_search", table_name="messages", postgresql_using="gin")
    op.drop_index(op.f("ix_messages_organization_id"), table_name="messages")
    op.drop_index(op.f("ix_messages_contact_id"), table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_actions_thread_created", table_name="actions")
    op.drop_index(op.f("ix_actions_organization_id"), table_name="actions")
    op.drop_index(op.f("ix_actions_assignee_id"), table_name="actions")
    op.drop_table("actions")
    op.drop_index(op.f("ix_threads_shipment_id"), table_name="threads")
    op.drop_index("ix_threads_search", table_name="threads", postgresql_using="gin")
    op.drop_index(op.f("ix_threads_organization_id"), table_name="threads")
    op.drop_index("ix_threads_org_last_activity", table_name="threads")
    op.drop_index(op.f("ix_threads_customer_id"), table_name="threads")
    op.drop_index(op.f("ix_threads_contact_id"), table_name="threads")
    op.drop_index(op.f("ix_threads_assignee_id"), table_name="threads")
    op.drop_table("threads")
    op.drop_index(op.f("ix_shipment_milestones_shipment_id"), table_name="shipment_milestones")
    op.drop_index(op.f("ix_shipment_milestones_organization_id"), table_name="shipment_milestones")
    op.drop_table("shipment_milestones")
    op.drop_index(op.f("ix_contact_merges_organization_id"), table_name="contact_merges")
    op.drop_index(op.f("ix_contact_merges_merged_contact_id"), table_name="contact_merges")
    op.drop_index(op.f("ix_contact_merges_kept_contact_id"), table_name="contact_merges")
    op.drop_table("contact_merges")
    op.drop_index(op.f("ix_contact_identities_organization_id"), table_name="contact_identities")
    op.drop_index(op.f("ix_contact_identities_contact_id"), table_name="contact_identities")
    op.drop_table("contact_identities")
    op.drop_index(op.f("ix_shipments_organization_id"), table_name="shipments")
    op.drop_index(op.f("ix_shipments_customer_id"), table_name="shipments")
    op.drop_index(op.f("ix_shipments_booking_number"), table_name="shipments")
    op.drop_index(op.f("ix_shipments_bl_number"), table_name="shipments")
    op.drop_index(op.f("ix_shipments_awb_number"), table_name="shipments")
    op.drop_table("shipments")
    op.drop_index(op.f("ix_contacts_organization_id"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_merged_into_id"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_customer_id"), table_name="contacts")
    op.drop_table("contacts")
    op.drop_table("thread_counters")
    op.drop_index("ix_events_undispatched", table_name="events", postgresql_where=sa.text("dispatched_at IS NULL"))
    op.drop_index(op.f("ix_events_thread_id"), table_name="events")
    op.drop_index(op.f("ix_events_organization_id"), table_name="events")
    op.drop_index("ix_events_org_id", table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_customers_organization_id"), table_name="customers")
    op.drop_table("customers")
    for name in ENUMS:
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
