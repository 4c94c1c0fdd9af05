"""SQLAlchemy models: one class per table, one place for each column.

Every tenant-owned model inherits `TenantMixin`; `banxway.db.session` scopes
every ORM query on such a model to the session's organization.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import ClassVar

from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from banxway.enums import (
    ActionStatus,
    ActionType,
    Channel,
    Direction,
    IntegrationType,
    Intent,
    MessageStatus,
    MilestoneType,
    NotificationType,
    Priority,
    Role,
    Sentiment,
    ShipmentDirection,
    ShipmentMode,
    ShipmentStatus,
    SlaStatus,
    SlaTargetKind,
    ThreadStatus,
    ThreadType,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Read server-side defaults (created_at, updated_at, ids) back with RETURNING on every
    # INSERT and UPDATE, so that no attribute is left expired for a lazy load in async code.
    __mapper_args__ = {"eager_defaults": True}


def _uuid_pk() -> Mapped[uuid.UUID]:
    # made here (the ORM's rows) or by the database (SQL): an id known before the INSERT lets many rows of a table go
    # in one multi-row INSERT … RETURNING (SQLAlchemy's "insertmanyvalues" needs it to match the rows it gets back)
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=text("gen_random_uuid()"),
        insert_sentinel=True,
    )


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class TenantMixin:
    """A row that belongs to one organization."""

    # an index on organization_id alone; off where a unique index starts with it: with one, PostgreSQL may pick the
    # single-column index for a lookup by the whole key when its statistics are stale for the organization (a new
    # one, growing), and scan every row of the organization per lookup (migration 0028)
    organization_index: ClassVar[bool] = True

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(
            UUID(as_uuid=True),
            ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
            index=cls.organization_index,
        )


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    # The business calendar SLA policies count in (banxway.calendar's JSON form); null: around the clock, UTC.
    business_hours: Mapped[dict | None] = mapped_column(JSONB)
    # Administration (organizationUpdate, migration 0021): the organization's time zone (IANA), its default email
    # signature (a mailbox's own signature wins) and its logo (an uploaded attachment).
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    signature: Mapped[str | None] = mapped_column(Text)
    logo_attachment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # no FK: see migration 0021
    created_at: Mapped[datetime] = _created_at()


class User(TenantMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("organization_id", "email", name="uq_users_organization_id_email"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="user_role",
            values_callable=lambda roles: [r.value for r in roles],
        ),
        nullable=False,
    )
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # Bumped when the user is signed out everywhere (deactivation, a new password): access tokens carry the version
    # they were issued under and are refused once it moves on.
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # Assignment rules: at most this many open threads (null: no cap), and whether the agent takes new ones now.
    max_open_threads: Mapped[int | None] = mapped_column(Integer)
    available: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # meUpdate (migration 0021): {"MENTION": {"in_app": bool, "email": bool}, ...} (a type left out: in-app only),
    # and {"start": "HH:MM", "end": "HH:MM", "timezone": IANA} when no notification email is sent (null: none).
    notification_preferences: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    quiet_hours: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        onupdate=func.now(),
    )


class RefreshToken(TenantMixin, Base):
    """A refresh token, stored as its SHA-256. Tokens of one login form a family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- the inbox ----------------------------------------------------------------------


# The documents of the inbox search (`banxway.resolvers.threads`): generated columns, a GIN index each (migration
# 0013). Identifiers are indexed as their letter and digit runs and also whole without separators, so that
# "MAEU-123", "maeu 123" and "MAEU123" all find the BL MAEU-123456. `array_to_tsvector(...)::text` reads a text[]
# immutably (array_to_string is only stable, which a generated column refuses).
_SHIPMENT_IDS = (
    "reference || ' ' || coalesce(bl_number, '') || ' ' || coalesce(booking_number, '') || ' ' || "
    "coalesce(awb_number, '') || ' ' || array_to_tsvector(container_numbers)::text"
)
_SHIPMENT_SEARCH = (
    f"to_tsvector('simple', regexp_replace({_SHIPMENT_IDS}, '[^A-Za-z0-9]+', ' ', 'g') || ' ' || "
    "regexp_replace(reference, '[^A-Za-z0-9]+', '', 'g') || ' ' || "
    "regexp_replace(coalesce(bl_number, ''), '[^A-Za-z0-9]+', '', 'g') || ' ' || "
    "regexp_replace(coalesce(booking_number, ''), '[^A-Za-z0-9]+', '', 'g') || ' ' || "
    "regexp_replace(coalesce(awb_number, ''), '[^A-Za-z0-9]+', '', 'g'))"
)
_CUSTOMER_SEARCH = "to_tsvector('simple', name || ' ' || coalesce(code, ''))"
_CONTACT_SEARCH = "to_tsvector('simple', name)"
_NOTE_SEARCH = "to_tsvector('simple', body)"


def _pg_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    return Enum(enum_class, name=name, values_callable=lambda members: [m.value for m in members])


def _updated_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now())


class Customer(TenantMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("organization_id", "code", name="uq_customers_organization_id_code"),
        Index("ix_customers_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    code: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    custom_fields: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    search: Mapped[str] = mapped_column(
        TSVECTOR, Computed(_CUSTOMER_SEARCH, persisted=True), deferred=True, deferred_raiseload=True
    )


class Contact(TenantMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_search", "search", postgresql_using="gin"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str | None] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    search: Mapped[str] = mapped_column(
        TSVECTOR, Computed(_CONTACT_SEARCH, persisted=True), deferred=True, deferred_raiseload=True
    )

    identities: Mapped[list[ContactIdentity]] = relationship(
        back_populates="contact", order_by="ContactIdentity.created_at", lazy="raise"
    )


class ContactIdentity(TenantMixin, Base):
    __tablename__ = "contact_identities"
    organization_index = False  # uq_contact_identities_organization_id_channel_address starts with it
    __table_args__ = (
        UniqueConstraint(
            "organization_id", "channel", "address", name="uq_contact_identities_organization_id_channel_address"
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    contact_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    channel: Mapped[Channel] = mapped_column(_pg_enum(Channel, "channel"), nullable=False)
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    created_at: Mapped[datetime] = _created_at()

    contact: Mapped[Contact] = relationship(back_populates="identities", lazy="raise")


class ContactMerge(TenantMixin, Base):
    """A merge of one contact into another, with what moved, so that it can be undone exactly."""

    __tablename__ = "contact_merges"

    id: Mapped[uuid.UUID] = _uuid_pk()
    kept_contact_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    merged_contact_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    moved: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Shipment(TenantMixin, Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("organization_id", "reference", name="uq_shipments_organization_id_reference"),
        Index("ix_shipments_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    reference: Mapped[str] = mapped_column(String(50), nullable=False)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    mode: Mapped[ShipmentMode] = mapped_column(_pg_enum(ShipmentMode, "shipment_mode"), nullable=False)
    direction: Mapped[ShipmentDirection] = mapped_column(
        _pg_enum(ShipmentDirection, "shipment_direction"), nullable=False
    )
    status: Mapped[ShipmentStatus] = mapped_column(
        _pg_enum(ShipmentStatus, "shipment_status"), nullable=False, server_default="BOOKED"
    )
    origin_code: Mapped[str | None] = mapped_column(String(5))
    origin_name: Mapped[str | None] = mapped_column(String(200))
    destination_code: Mapped[str | None] = mapped_column(String(5))
    destination_name: Mapped[str | None] = mapped_column(String(200))
    carrier: Mapped[str | None] = mapped_column(String(200))
    vessel: Mapped[str | None] = mapped_column(String(200))
    voyage: Mapped[str | None] = mapped_column(String(50))
    flight_number: Mapped[str | None] = mapped_column(String(20))
    container_numbers: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    bl_number: Mapped[str | None] = mapped_column(String(50), index=True)
    awb_number: Mapped[str | None] = mapped_column(String(20), index=True)
    booking_number: Mapped[str | None] = mapped_column(String(50), index=True)
    etd: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    eta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    atd: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ata: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    search: Mapped[str] = mapped_column(
        TSVECTOR, Computed(_SHIPMENT_SEARCH, persisted=True), deferred=True, deferred_raiseload=True
    )


class ShipmentMilestone(TenantMixin, Base):
    __tablename__ = "shipment_milestones"

    id: Mapped[uuid.UUID] = _uuid_pk()
    shipment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    type: Mapped[MilestoneType] = mapped_column(_pg_enum(MilestoneType, "milestone_type"), nullable=False)
    planned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actual_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    location_code: Mapped[str | None] = mapped_column(String(5))
    location_name: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class ThreadCounter(TenantMixin, Base):
    """The last thread number given out per organization and year (BX-YYYY-NNNN)."""

    __tablename__ = "thread_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)


class Thread(TenantMixin, Base):
    __tablename__ = "threads"
    __table_args__ = (
        UniqueConstraint("organization_id", "reference", name="uq_threads_organization_id_reference"),
        Index("ix_threads_org_last_activity", "organization_id", "last_activity_at", "id"),
        # the inbox count, index-only (with what the default inbox leaves out: snoozed threads)
        Index("ix_threads_org_status", "organization_id", "status", postgresql_include=["snoozed_until"]),
        Index("ix_threads_search", "search", postgresql_using="gin"),
        Index("ix_threads_sla_check_at", "sla_check_at", postgresql_where=text("sla_check_at IS NOT NULL")),
        Index("ix_threads_snoozed_until", "snoozed_until", postgresql_where=text("snoozed_until IS NOT NULL")),
        Index("ix_threads_org_intent", "organization_id", "intent", postgresql_where=text("intent IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    reference: Mapped[str] = mapped_column(String(20), nullable=False)
    subject: Mapped[str] = mapped_column(String(998), nullable=False)
    type: Mapped[ThreadType] = mapped_column(_pg_enum(ThreadType, "thread_type"), nullable=False)
    status: Mapped[ThreadStatus] = mapped_column(_pg_enum(ThreadStatus, "thread_status"), nullable=False)
    priority: Mapped[Priority] = mapped_column(_pg_enum(Priority, "priority"), nullable=False)
    primary_channel: Mapped[Channel] = mapped_column(_pg_enum(Channel, "channel"), nullable=False)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    shipment_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("shipments.id", ondelete="SET NULL"), index=True
    )
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_activity_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_policy_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    sla_status: Mapped[SlaStatus | None] = mapped_column(_pg_enum(SlaStatus, "sla_status"))
    # The spans the thread was PENDING, [start, end or null], ISO instants: the SLA clock stops in them.
    sla_pauses: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    # When the SLA next needs a look (a warning or a due time); swept by the scheduler.
    sla_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Hidden from the default inbox until then, or until the customer writes (threadSnooze).
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The AI agent does not answer on this thread until then: a person replied (threadBotResume lifts it).
    bot_suspended_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # what the customer's latest analysed message asks for, and how they sound (message analysis)
    intent: Mapped[Intent | None] = mapped_column(_pg_enum(Intent, "intent"))
    sentiment: Mapped[Sentiment | None] = mapped_column(_pg_enum(Sentiment, "sentiment"))
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('simple', coalesce(subject, '') || ' ' || reference)", persisted=True),
        deferred=True,
        deferred_raiseload=True,
    )

    customer: Mapped[Customer | None] = relationship(lazy="raise")
    contact: Mapped[Contact | None] = relationship(lazy="raise")
    shipment: Mapped[Shipment | None] = relationship(lazy="raise")
    assignee: Mapped[User | None] = relationship(lazy="raise")


class Team(TenantMixin, Base):
    """A group of users a thread can be given to; assignment picks one of its members (round-robin or
    least-open), skipping members who are away or at their capacity."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_teams_organization_id_name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # the member who got the team's last round-robin assignment: the next goes to the one after
    last_assigned_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()


class TeamMember(TenantMixin, Base):
    __tablename__ = "team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = _created_at()


class SlaPolicy(TenantMixin, Base):
    """Response and resolution targets for the threads its conditions match (the first active match by
    position wins), counted in the organization's business hours or around the clock."""

    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_sla_policies_organization_id_name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # {"priorities": [...], "channels": [...], "thread_types": [...], "customer_tags": [...]}; empty: every thread
    conditions: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    first_response_minutes: Mapped[int | None] = mapped_column(Integer)
    next_response_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    warn_before_minutes: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # {"notify_assignee": bool, "notify_managers": bool, "raise_priority": bool, "reassign_to": user id | null}
    breach_actions: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class SlaTarget(TenantMixin, Base):
    """One target of a thread's SLA: started, due (null while paused), and met, warned, breached or cancelled.
    A thread has at most one open (neither met nor cancelled) target of each kind; the rows stay as history."""

    __tablename__ = "sla_targets"
    __table_args__ = (
        Index(
            "uq_sla_targets_open_kind",
            "thread_id",
            "kind",
            unique=True,
            postgresql_where=text("met_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    policy_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    kind: Mapped[SlaTargetKind] = mapped_column(_pg_enum(SlaTargetKind, "sla_target_kind"), nullable=False)
    minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    business_hours: Mapped[bool] = mapped_column(Boolean, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    met_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class Message(TenantMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_thread_created", "thread_id", "created_at", "id"),
        Index("ix_messages_search", "search", postgresql_using="gin"),
        Index(
            "uq_messages_organization_id_idempotency_key",
            "organization_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # dedupe of ingested mail per account, and threading by Message-ID
        Index(
            "uq_messages_email_account_id_provider_message_id",
            "email_account_id",
            "provider_message_id",
            unique=True,
            postgresql_where=text("email_account_id IS NOT NULL AND provider_message_id IS NOT NULL"),
        ),
        Index("ix_messages_organization_id_provider_message_id", "organization_id", "provider_message_id"),
        # the WhatsApp customer-care window: a number's last inbound message
        Index(
            "ix_messages_inbound_sender",
            "sender",
            "created_at",
            postgresql_where=text("direction = 'INBOUND'"),
        ),
        # the scheduled sends' timer
        Index("ix_messages_send_at", "send_at", postgresql_where=text("send_at IS NOT NULL")),
        # webhooks: one message per provider id (idempotent inbound), and status callbacks find it
        Index(
            "uq_messages_integration_id_provider_message_id",
            "integration_id",
            "provider_message_id",
            unique=True,
            postgresql_where=text("integration_id IS NOT NULL AND provider_message_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[Channel] = mapped_column(_pg_enum(Channel, "channel"), nullable=False)
    direction: Mapped[Direction] = mapped_column(_pg_enum(Direction, "direction"), nullable=False)
    status: Mapped[MessageStatus] = mapped_column(_pg_enum(MessageStatus, "message_status"), nullable=False)
    # a scheduled send: SCHEDULED until then; cleared when it is released (QUEUED) or cancelled
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    subject: Mapped[str | None] = mapped_column(String(998))
    html: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    # the WhatsApp/SMS/voice provider integration that received or sends it (messaging channels only)
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("integrations.id", ondelete="SET NULL")
    )
    # SMS only: the number of segments the body takes (GSM-7 160/153, UCS-2 70/67 characters)
    segments: Mapped[int | None] = mapped_column(Integer)
    # the email account that received or sends it (email only)
    email_account_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("email_accounts.id", ondelete="SET NULL")
    )
    # the whole text of an inbound email, quoted history included (`body` is the reply alone)
    full_body: Mapped[str | None] = mapped_column(Text, deferred=True, deferred_raiseload=True)
    # '{}' by default in Python, not declared as the server default it also is (the migration's, for SQL that omits
    # it): with eager_defaults, an unloaded (deferred) column with a server default is read back in a SELECT of
    # its own after every UPDATE of the row
    headers: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict, deferred=True, deferred_raiseload=True)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('simple', coalesce(subject, '') || ' ' || body)", persisted=True),
        deferred=True,
        deferred_raiseload=True,
    )


class Note(TenantMixin, Base):
    __tablename__ = "notes"
    __table_args__ = (
        Index("ix_notes_thread_created", "thread_id", "created_at", "id"),
        Index("ix_notes_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    author_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    mentioned_user_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = _created_at()
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # a deleted note keeps its row (events and notifications name it), not its body
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    search: Mapped[str] = mapped_column(
        TSVECTOR, Computed(_NOTE_SEARCH, persisted=True), deferred=True, deferred_raiseload=True
    )


class Action(TenantMixin, Base):
    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_thread_created", "thread_id", "created_at", "id"),
        Index("ix_actions_due_unreminded", "due_at", postgresql_where=text("reminded_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    type: Mapped[ActionType] = mapped_column(_pg_enum(ActionType, "action_type"), nullable=False)
    status: Mapped[ActionStatus] = mapped_column(_pg_enum(ActionStatus, "action_status"), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    completed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # when its due-time reminder went (cleared when the due time changes: the next one follows the new time)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class ThreadRead(TenantMixin, Base):
    """How far a user has read a thread; messages after `read_at` count as unread."""

    __tablename__ = "thread_reads"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Event(TenantMixin, Base):
    """The outbox and event log: one row per event, written in the transaction of its change."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_id", "organization_id", "id"),
        Index("ix_events_undispatched", "id", postgresql_where=text("dispatched_at IS NULL")),
        Index("ix_events_org_seq", "organization_id", "seq", postgresql_where=text("seq IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    thread_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The order of delivery: assigned when the event is published, under a per-organization lock, so
    # that subscribers receive events in `seq` order and a cursor's `seq` is a safe resume point.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    # Recorded by a workflow's step: which workflow, and how deep in a chain of workflows (a workflow is not started
    # by its own changes, nor past banxway.resolvers.workflow_spec.MAX_DEPTH).
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    workflow_depth: Mapped[int | None] = mapped_column(Integer)


EVENTS_SEQ = Sequence("events_seq", metadata=Base.metadata)


class EmailAccount(TenantMixin, Base):
    """A mailbox the organization reads (IMAP) and sends from (SMTP). Passwords are encrypted (SecretBox)."""

    __tablename__ = "email_accounts"
    __table_args__ = (UniqueConstraint("organization_id", "email"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    from_name: Mapped[str | None] = mapped_column(String(200))
    signature: Mapped[str | None] = mapped_column(Text)
    imap_host: Mapped[str] = mapped_column(String(255), nullable=False)
    imap_port: Mapped[int] = mapped_column(Integer, nullable=False)
    imap_security: Mapped[str] = mapped_column(String(10), nullable=False)
    imap_username: Mapped[str] = mapped_column(String(320), nullable=False)
    imap_password: Mapped[str | None] = mapped_column(Text)  # required for PASSWORD accounts (the resolver)
    imap_folder: Mapped[str] = mapped_column(String(255), nullable=False, server_default="INBOX")
    smtp_host: Mapped[str] = mapped_column(String(255), nullable=False)
    smtp_port: Mapped[int] = mapped_column(Integer, nullable=False)
    smtp_security: Mapped[str] = mapped_column(String(10), nullable=False)
    smtp_username: Mapped[str | None] = mapped_column(String(320))
    smtp_password: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # the ingest cursor: advanced in the transaction that stores the mail it read
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    last_polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # OAuth 2.0 (Gmail, Microsoft 365: banxway.resolvers.email_oauth, migration 0027); tokens encrypted (SecretBox)
    auth_method: Mapped[str] = mapped_column(String(10), nullable=False, server_default="PASSWORD")
    oauth_provider: Mapped[str | None] = mapped_column(String(20))
    oauth_refresh_token: Mapped[str | None] = mapped_column(Text)
    oauth_access_token: Mapped[str | None] = mapped_column(Text)
    oauth_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(30), nullable=False, server_default="ACTIVE")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class EmailOAuthState(TenantMixin, Base):
    """A pending OAuth authorization (emailAccountOAuthStart): the `state` (stored as its SHA-256), single-use
    and short-lived, binding the callback to the organization, the admin who started it, the provider and the
    account to re-authorize (if any); the PKCE code_verifier (encrypted) and the exact redirect_uri sent."""

    __tablename__ = "email_oauth_states"

    id: Mapped[uuid.UUID] = _uuid_pk()
    state_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    code_verifier: Mapped[str] = mapped_column(Text, nullable=False)
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    email_account_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("email_accounts.id", ondelete="CASCADE")
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class Attachment(TenantMixin, Base):
    """A file of a message; its bytes live under the data dir, addressed by sha256."""

    __tablename__ = "attachments"

    id: Mapped[uuid.UUID] = _uuid_pk()
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    content_id: Mapped[str | None] = mapped_column(String(255))
    inline: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_at: Mapped[datetime] = _created_at()


class EmailQuarantine(TenantMixin, Base):
    """A mail that could not be stored: kept with its raw bytes (unless too large) for an admin to look at."""

    __tablename__ = "email_quarantine"

    id: Mapped[uuid.UUID] = _uuid_pk()
    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("email_accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    uid: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    # sha256 of the raw bytes (or the UID of an oversized mail): a re-read records a mail once
    fingerprint: Mapped[str] = mapped_column(String(200), nullable=False)
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="SET NULL")
    )
    reprocessed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class Notification(TenantMixin, Base):
    """Something one user should look at: a mention, an assignment, a customer's message on their thread."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_user_unread", "user_id", postgresql_where=text("read_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[NotificationType] = mapped_column(_pg_enum(NotificationType, "notification_type"), nullable=False)
    thread_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE")
    )
    note_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("notes.id", ondelete="CASCADE"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    summary: Mapped[str] = mapped_column(String(300), nullable=False)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # sent by email (migration 0021)
    created_at: Mapped[datetime] = _created_at()


class Integration(TenantMixin, Base):
    """A WhatsApp/SMS/voice provider account (one per type and organization). The API token is encrypted
    (SecretBox); webhooks are addressed by `webhook_token` (the previous one stays valid for a while)."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("organization_id", "type"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    type: Mapped[IntegrationType] = mapped_column(_pg_enum(IntegrationType, "integration_type"), nullable=False)
    account_sid: Mapped[str] = mapped_column(String(100), nullable=False)
    api_key: Mapped[str | None] = mapped_column(String(200))
    api_token: Mapped[str] = mapped_column(Text, nullable=False)
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    webhook_token: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    previous_webhook_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_webhook_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip_allowlist: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    whatsapp_templates: Mapped[list[dict]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    last_tested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class PhoneNumber(TenantMixin, Base):
    """A number of an integration (an ExoPhone, a Twilio number, a WhatsApp sender) and the channels it
    serves; assignable to a user, whose outbound messages and calls then use it."""

    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("organization_id", "number"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    integration_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[str] = mapped_column(String(32), nullable=False)
    channels: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    label: Mapped[str | None] = mapped_column(String(200))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created_at()


class PendingStatus(TenantMixin, Base):
    """A delivery status for a provider message id we have not stored yet (the callback won the race
    with the send's reply); applied when the message gets that id."""

    __tablename__ = "pending_statuses"
    __table_args__ = (Index("ix_pending_statuses_integration_provider_id", "integration_id", "provider_message_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    integration_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
    )
    provider_message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[MessageStatus] = mapped_column(_pg_enum(MessageStatus, "message_status"), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


# -- personal API tokens --------------------------------------------------------------------


class ApiToken(TenantMixin, Base):
    """A personal API token (`bxp_...`) of a user, for scripts and agents: stored as its SHA-256 and a short prefix
    for display, never in clear. Its scopes (`banxway.auth.ApiTokenScope` names) bound what it may do within the
    user's role. Revoked by its user, an admin, or the user's deactivation; a new password leaves it alone."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Written at most once a minute per token (`banxway.context`), not on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- canned responses -----------------------------------------------------------------------


class CannedResponse(TenantMixin, Base):
    """A saved reply with `{{variables}}`: shared by the organization (`owner_id` null, managed by ADMIN and
    MANAGER) or personal to its owner. Names and shortcuts are unique per scope, case-insensitively (checked by
    `banxway.resolvers.canned_responses`)."""

    __tablename__ = "canned_responses"

    id: Mapped[uuid.UUID] = _uuid_pk()
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    shortcut: Mapped[str | None] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # only offered on this channel; null: on every channel
    channel: Mapped[Channel | None] = mapped_column(_pg_enum(Channel, "channel"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


# -- workflows ------------------------------------------------------------------------------------------------


class Workflow(TenantMixin, Base):
    """An automation: its current definition is `versions[version]`; editing adds a version, and running instances
    keep the one they started with. It acts as `run_as_id` (whoever last saved or activated it), with that user's
    role: a workflow can do no more than its editor could."""

    __tablename__ = "workflows"
    __table_args__ = (
        Index("ix_workflows_trigger", "organization_id", "trigger_type", postgresql_where=text("active")),
        Index("ix_workflows_next_run_at", "next_run_at", postgresql_where=text("active AND next_run_at IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    # the current version's trigger type, to find the workflows an event may start with one indexed query
    trigger_type: Mapped[str] = mapped_column(String(40), nullable=False)
    # a SCHEDULE workflow's next instant (null otherwise, or while inactive)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the key of the HTTP step's signature, encrypted like the other secrets (banxway.secrets)
    signing_secret: Mapped[str] = mapped_column(Text, nullable=False)
    run_as_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class WorkflowVersion(TenantMixin, Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_id_version"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    definition: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()


class WorkflowInstance(TenantMixin, Base):
    """One run of a workflow version on a thread. Started at most once per (workflow, thread, trigger key): the
    triggering event's id, or a schedule's instant."""

    __tablename__ = "workflow_instances"
    __table_args__ = (
        UniqueConstraint(
            "workflow_id", "thread_id", "trigger_key", name="uq_workflow_instances_workflow_id_thread_id_trigger_key"
        ),
        Index("ix_workflow_instances_due_at", "due_at", postgresql_where=text("due_at IS NOT NULL")),
        # the waits an event may end (a thread's), and whether an organization has any (the consequences ask)
        Index(
            "ix_workflow_instances_waiting", "organization_id", "thread_id", postgresql_where=text("status = 'WAITING'")
        ),
        Index("ix_workflow_instances_org_created", "organization_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    version_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflow_versions.id", ondelete="CASCADE"), nullable=False
    )
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    trigger_key: Mapped[str] = mapped_column(String(100), nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(40), nullable=False)
    depth: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    step_index: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # while WAITING: what ends the wait (CUSTOMER_REPLIED, AGENT_REPLIED, THREAD_RESOLVED, APPROVAL, or null for a
    # plain duration), the action an approval waits on, and the timer (a WAIT's end, a timeout)
    waiting_for: Mapped[str | None] = mapped_column(String(40))
    wait_action_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # how the last wait ended (`outcome`: EVENT, TIMEOUT, APPROVED, REJECTED), read by the step it belongs to
    resume: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkflowStepRun(TenantMixin, Base):
    """One attempt of one step of an instance: its history (started, finished, outcome, error)."""

    __tablename__ = "workflow_step_runs"
    __table_args__ = (
        UniqueConstraint(
            "instance_id", "step_index", "attempt", name="uq_workflow_step_runs_instance_id_step_index_attempt"
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    instance_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflow_instances.id", ondelete="CASCADE"), nullable=False, index=True
    )
    step_index: Mapped[int] = mapped_column(Integer, nullable=False)
    step_type: Mapped[str] = mapped_column(String(20), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)


# -- AI: message analysis, link suggestions, compose sessions, token usage -------------------------------------


class MessageAnalysis(TenantMixin, Base):
    """What the analyser found in an inbound message (banxway.extraction, optionally an LLM on top): language,
    sentiment, intent and the freight entities with their spans."""

    __tablename__ = "message_analyses"

    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    language: Mapped[str] = mapped_column(String(8), nullable=False)
    sentiment: Mapped[Sentiment] = mapped_column(_pg_enum(Sentiment, "sentiment"), nullable=False)
    sentiment_score: Mapped[float] = mapped_column(Float, nullable=False)
    intent: Mapped[Intent] = mapped_column(_pg_enum(Intent, "intent"), nullable=False)
    intent_confidence: Mapped[float] = mapped_column(Float, nullable=False)
    # [{kind, value, text, source, start, end}]
    entities: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    analyser: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = _created_at()


class ShipmentSuggestion(TenantMixin, Base):
    """A shipment a message named when the thread could not be linked at once (several shipments matched, or a
    person had linked another): shown on the thread until someone links one or dismisses it."""

    __tablename__ = "shipment_suggestions"
    __table_args__ = (
        UniqueConstraint("thread_id", "shipment_id", name="uq_shipment_suggestions_thread_id_shipment_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    shipment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False
    )
    # [{kind, value}]: the numbers in the message that name the shipment
    evidence: Mapped[list] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ComposeSession(TenantMixin, Base):
    """One request for AI drafts (composeStart): who asked, for which thread, how it went. The tokens streamed are
    never stored (Redis only); the finished drafts are, so that feedback can measure the agent's edits."""

    __tablename__ = "compose_sessions"
    __table_args__ = (Index("ix_compose_sessions_org_created", "organization_id", "created_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[Channel] = mapped_column(_pg_enum(Channel, "channel"), nullable=False)
    tone: Mapped[str] = mapped_column(String(16), nullable=False)
    instructions: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    variants: Mapped[int] = mapped_column(Integer, nullable=False)
    provider: Mapped[str] = mapped_column(String(200), nullable=False)
    prompt_version: Mapped[str] = mapped_column(String(40), nullable=False)
    # PENDING -> STREAMING -> DONE | FAILED | CANCELLED
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="PENDING")
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    drafts: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    feedback_variant: Mapped[int | None] = mapped_column(Integer)
    feedback_rating: Mapped[str | None] = mapped_column(String(8))
    final_text: Mapped[str | None] = mapped_column(Text)
    edit_distance: Mapped[int | None] = mapped_column(Integer)
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AiUsage(TenantMixin, Base):
    """Tokens an organization spent with an external AI provider, per calendar month (UTC): the budget's meter."""

    __tablename__ = "ai_usage"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)


# -- the audit log ---------------------------------------------------------------------------------------------


class AuditEntry(TenantMixin, Base):
    """Who did what, through which API token, with what outcome: every call an agent makes over MCP (and, as the
    administration work lands, administrative changes with their before and after)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_created", "organization_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    api_token_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    token_name: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20), nullable=False)  # MCP, GRAPHQL, CLI
    action: Mapped[str] = mapped_column(String(100), nullable=False)  # e.g. the tool's name
    target: Mapped[str | None] = mapped_column(String(200))  # a global id or a reference
    outcome: Mapped[str] = mapped_column(String(40), nullable=False)  # OK or an error code
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


# -- agents over MCP (Banxway as an MCP client) -------------------------------------------------


class AgentTaskStatus(enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class AgentConnection(TenantMixin, Base):
    """An external MCP server an organization connected (an agent platform, a carrier-tracking service): its
    streamable HTTP URL, the auth header sent with every request (encrypted, SecretBox; never shown again) and the
    tools agent tasks may call (`allowed_tools`; empty: every tool the server lists)."""

    __tablename__ = "agent_connections"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    url: Mapped[str] = mapped_column(String(500), nullable=False)
    auth_header_name: Mapped[str] = mapped_column(String(100), nullable=False, server_default=text("'Authorization'"))
    auth_header: Mapped[str | None] = mapped_column(Text)  # encrypted value
    allowed_tools: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    last_tested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class AgentTask(TenantMixin, Base):
    """One call of a tool of an agent connection for a thread, run by the `run_agent_task` actor: QUEUED →
    RUNNING → COMPLETED (the result posted as a note) or FAILED, or CANCELLED before it ran."""

    __tablename__ = "agent_tasks"
    __table_args__ = (Index("ix_agent_tasks_thread_created", "thread_id", "created_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agent_connections.id", ondelete="SET NULL"), index=True
    )
    tool: Mapped[str] = mapped_column(String(200), nullable=False)
    arguments: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'QUEUED'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    result: Mapped[str | None] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    error: Mapped[str | None] = mapped_column(Text)
    note_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("notes.id", ondelete="SET NULL"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- administration: invitations (migration 0021) -------------------------------------------------------------


class Invitation(TenantMixin, Base):
    """An invitation to join the organization (userInvite): PENDING until accepted (the user is created), revoked,
    or past `expires_at`. The token is stored as its SHA-256; its encrypted copy (`token_secret`, SecretBox) lives
    only until the invitation email has gone out."""

    __tablename__ = "invitations"
    __table_args__ = (
        Index(
            "uq_invitations_pending_email",
            "organization_id",
            "email",
            unique=True,
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[Role] = mapped_column(_pg_enum(Role, "user_role"), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    token_secret: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="PENDING")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


# -- analytics: per-day rollups (banxway.resolvers.analytics) ---------------------------------------------------


class AnalyticsDaily(TenantMixin, Base):
    """One organization's figures for one local day (in `timezone`) and one dimension key, precomputed by the
    `rollup_analytics` actor from the same SQL the dashboard runs on the fly. `dimension` is ALL (key ''), CHANNEL,
    AGENT, TEAM, CUSTOMER or THREAD_TYPE (key: the enum name or the id; '' for none). Durations are kept whole, as
    sorted arrays of seconds, so that percentiles over any set of days equal the on-the-fly ones; the business-hours
    arrays are null when the organization had no calendar. A day is rolled up when its ALL row exists."""

    __tablename__ = "analytics_daily"

    timezone: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    threads_opened: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    threads_resolved: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    threads_reopened: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    messages_in: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    messages_out: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    first_response_seconds: Mapped[list[float]] = mapped_column(
        ARRAY(Float), nullable=False, server_default=text("'{}'")
    )
    first_response_business_seconds: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    resolution_seconds: Mapped[list[float]] = mapped_column(ARRAY(Float), nullable=False, server_default=text("'{}'"))
    resolution_business_seconds: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    # SLA targets met (and never breached) and breached, by the day they were met or breached
    sla: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    computed_at: Mapped[datetime] = _created_at()

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)


# What the analytics queries range over (migration 0022): messages and threads by time, and status changes (the
# events `banxway.events.prune` keeps).
Index("ix_messages_org_created", Message.organization_id, Message.created_at)
Index("ix_threads_org_created", Thread.organization_id, Thread.created_at)
Index(
    "ix_threads_org_first_response",
    Thread.organization_id,
    Thread.first_response_at,
    postgresql_where=text("first_response_at IS NOT NULL"),
)
Index(
    "ix_events_status_changes",
    Event.organization_id,
    Event.created_at,
    postgresql_where=text(
        "type IN ('THREAD_UPDATED', 'THREAD_ARCHIVED') AND (payload ->> 'previous_status') IS NOT NULL"
    ),
)
Index("ix_sla_targets_org_started", SlaTarget.organization_id, SlaTarget.started_at)


# -- shipment documents (migration 0020) ------------------------------------------------------------------------


class DocumentType(enum.Enum):
    BILL_OF_LADING = "BILL_OF_LADING"
    HOUSE_BL = "HOUSE_BL"
    AIR_WAYBILL = "AIR_WAYBILL"
    COMMERCIAL_INVOICE = "COMMERCIAL_INVOICE"
    PACKING_LIST = "PACKING_LIST"
    CERTIFICATE_OF_ORIGIN = "CERTIFICATE_OF_ORIGIN"
    CUSTOMS_DECLARATION = "CUSTOMS_DECLARATION"
    DELIVERY_ORDER = "DELIVERY_ORDER"
    OTHER = "OTHER"


class DocumentStatus(enum.Enum):
    DRAFT = "DRAFT"
    RECEIVED = "RECEIVED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class DocumentTextState(enum.Enum):
    PENDING = "PENDING"  # the extract_document_text actor has not read it yet
    EXTRACTED = "EXTRACTED"
    NO_TEXT = "NO_TEXT"  # an image, or a PDF without a text layer (a scan): OCR is not done here
    FAILED = "FAILED"  # encrypted, broken or unreadable: `text_error` says why


class Document(TenantMixin, Base):
    """A file filed on a shipment (and optionally the thread and message it came with): its type, review status,
    and version. A newer document of the same type on the shipment supersedes the current one (`superseded_by_id`),
    which stays readable; all versions share the `lineage_id` of the first. The text read from the file (pypdf's
    text layer, plain text) is searchable (`search`) and its freight entities are kept (`entities`)."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_shipment_created", "shipment_id", "created_at", "id"),
        Index("ix_documents_org_created", "organization_id", "created_at", "id"),
        Index("ix_documents_search", "search", postgresql_using="gin"),
        Index(
            "uq_documents_current_type",
            "shipment_id",
            "type",
            unique=True,
            postgresql_where=text("superseded_by_id IS NULL AND type <> 'OTHER'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    shipment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False
    )
    thread_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="SET NULL"), index=True
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="SET NULL")
    )
    attachment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("attachments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    type: Mapped[DocumentType] = mapped_column(_pg_enum(DocumentType, "document_type"), nullable=False)
    status: Mapped[DocumentStatus] = mapped_column(
        _pg_enum(DocumentStatus, "document_status"), nullable=False, server_default="RECEIVED"
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    lineage_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    # deferred: a new version is written after the current one points at it (the one-current-per-type index)
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("documents.id", ondelete="SET NULL", deferrable=True, initially="DEFERRED")
    )
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    text_state: Mapped[DocumentTextState] = mapped_column(
        _pg_enum(DocumentTextState, "document_text_state"), nullable=False, server_default="PENDING"
    )
    text_error: Mapped[str | None] = mapped_column(Text)
    extracted_text: Mapped[str | None] = mapped_column(Text, deferred=True, deferred_raiseload=True)
    pages: Mapped[int | None] = mapped_column(Integer)
    # [{kind, value, text, start, end}]: what banxway.extraction found in the text
    entities: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('simple', coalesce(extracted_text, ''))", persisted=True),
        deferred=True,
        deferred_raiseload=True,
    )


# -- outbound webhooks (issue 15) -------------------------------------------------------------------------------


class WebhookDeliveryStatus(enum.Enum):
    PENDING = "PENDING"  # not tried yet (or asked again: webhookDeliveryRetry, webhookEndpointReplay)
    RETRYING = "RETRYING"  # failed transiently; tried again at `next_attempt_at`
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class WebhookEndpoint(TenantMixin, Base):
    """A URL of the organization's that relayed events of `event_types` are POSTed to, signed with `secret`
    (encrypted, SecretBox; shown once). `failing_since`: the first failure since the last success; an endpoint
    failing for BANXWAY_WEBHOOK_RETRY_WINDOW is disabled (`disabled_reason`)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = _uuid_pk()
    url: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    secret: Mapped[str] = mapped_column(Text, nullable=False)  # encrypted value
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class WebhookDelivery(TenantMixin, Base):
    """One event for one endpoint (unique: a relayed event is delivered once per endpoint, however often its job
    runs). `body` is the JSON sent, kept so that a retry sends the same bytes after the event was pruned; it is
    signed anew at each attempt. `locked_until`: an attempt in flight (a worker that died leaves it to expire)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('PENDING', 'RETRYING')"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)  # no foreign key: events are pruned
    event_type: Mapped[str] = mapped_column(String(60), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'PENDING'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retry_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)  # the first 1 KB
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


# -- Facebook Messenger and Instagram (issue 17) ------------------------------------------------------------------


class MetaAccount(TenantMixin, Base):
    """What a META integration needs besides the page id (`Integration.account_sid`) and the page access token
    (`Integration.api_token`): the app secret that signs webhooks (X-Hub-Signature-256, encrypted), the verify token
    of the subscription handshake (encrypted), the Instagram account, and the long-lived token's expiry."""

    __tablename__ = "meta_accounts"

    id: Mapped[uuid.UUID] = _uuid_pk()
    integration_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    app_secret: Mapped[str] = mapped_column(Text, nullable=False)
    verify_token: Mapped[str] = mapped_column(Text, nullable=False)
    instagram_account_id: Mapped[str | None] = mapped_column(String(100))
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


# -- contact resolver across channels (issue 17, migration 0025) ---------------------------------------------------


class ContactMergeSuggestion(TenantMixin, Base):
    """Two contacts found to share an address (`banxway.resolvers.contact_resolver`): a suggestion to merge them
    (status OPEN, ACCEPTED or DISMISSED), never an automatic merge. `contact_id` < `other_contact_id`, so that a
    pair is suggested once per address."""

    __tablename__ = "contact_merge_suggestions"
    __table_args__ = (
        UniqueConstraint(
            "organization_id",
            "contact_id",
            "other_contact_id",
            "address",
            name="uq_contact_merge_suggestions_pair_address",
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    contact_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    other_contact_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'OPEN'"))
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


# -- web chat widget (issue 17) ---------------------------------------------------------------------------------


class ChatWidget(TenantMixin, Base):
    """An embeddable chat widget of the organization: `widget_key` (public, random) names it in the snippet; a
    visitor session is opened only from one of `allowed_origins` (exact origins, or `https://*.example.com`)."""

    __tablename__ = "chat_widgets"
    __table_args__ = (UniqueConstraint("widget_key"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    widget_key: Mapped[str] = mapped_column(String(64), nullable=False)
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    greeting: Mapped[str | None] = mapped_column(Text)
    primary_color: Mapped[str] = mapped_column(String(7), nullable=False, server_default=text("'#1f6feb'"))
    business_hours_message: Mapped[str | None] = mapped_column(Text)
    ai_agent_first: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    pre_chat_name: Mapped[str] = mapped_column(String(10), nullable=False, server_default=text("'OPTIONAL'"))
    pre_chat_email: Mapped[str] = mapped_column(String(10), nullable=False, server_default=text("'OPTIONAL'"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class ChatVisitor(TenantMixin, Base):
    """A visitor of a widget: `public_id` is their WEB_CHAT identity's address; `thread_id` their conversation
    (set by their first message)."""

    __tablename__ = "chat_visitors"
    __table_args__ = (UniqueConstraint("public_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    widget_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("chat_widgets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    public_id: Mapped[str] = mapped_column(String(64), nullable=False)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contacts.id", ondelete="SET NULL")
    )
    thread_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="SET NULL")
    )
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = _created_at()
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    # the last transcript mailed to `email` (replies the visitor never saw, after they left)
    transcript_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- AI agent with a knowledge base (migration 0024) ------------------------------------------------------------


class KnowledgeSource(TenantMixin, Base):
    """A text the AI agent answers from: typed or uploaded (TEXT, MARKDOWN, HTML, PDF) or a web page fetched once
    (URL); its text is kept only as `KnowledgeChunk`s."""

    __tablename__ = "knowledge_sources"

    id: Mapped[uuid.UUID] = _uuid_pk()
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # TEXT, MARKDOWN, HTML, PDF, URL
    url: Mapped[str | None] = mapped_column(Text)
    attachment_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("attachments.id", ondelete="SET NULL")
    )
    characters: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    embedding_model: Mapped[str | None] = mapped_column(String(100))  # the model of the chunks' embeddings, if any
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()


class KnowledgeChunk(TenantMixin, Base):
    """About 800 characters of a source, cut on paragraph or sentence boundaries, with its full-text vector and
    (when an embeddings API is configured) its embedding."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (Index("ix_knowledge_chunks_search", "search", postgresql_using="gin"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    source_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_sources.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)  # the source's, searched with the text
    text: Mapped[str] = mapped_column(Text, nullable=False)
    embedding: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('english', title || ' ' || text)", persisted=True),
        deferred=True,
        deferred_raiseload=True,
    )


class AiAgent(TenantMixin, Base):
    """An AI agent answering inbound messages on `channels` (Channel names) during `active_hours` (banxway.calendar's
    JSON form; null: always), handing over below `min_confidence`, on a `handover_keywords` word, a complaint, or
    after `max_turns` answers on a thread. It sends as `run_as_id` (whoever last saved it), named after the agent."""

    __tablename__ = "ai_agents"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_ai_agents_organization_id_name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    channels: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    active_hours: Mapped[dict | None] = mapped_column(JSONB)
    min_confidence: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0.35"))
    handover_keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    tone: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'FRIENDLY'"))
    max_turns: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("5"))
    handover_team_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("teams.id", ondelete="SET NULL")
    )
    run_as_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class AiAgentTurn(TenantMixin, Base):
    """What an agent did with one inbound message: ANSWERED (`reply_message_id`, the `sources` cited), HANDED_OVER
    (`reason`) or SKIPPED (`reason`); unique per message, so a redelivered job does nothing twice."""

    __tablename__ = "ai_agent_turns"

    id: Mapped[uuid.UUID] = _uuid_pk()
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ai_agents.id", ondelete="SET NULL")
    )
    thread_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    reply_message_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="SET NULL")
    )
    sources: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    tools: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
