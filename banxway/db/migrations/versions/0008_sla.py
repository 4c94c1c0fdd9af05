"""SLA policies and per-thread SLA state: organizations.business_hours (the business calendar), sla_policies,
sla_targets (one row per target of a thread, kept as history), and on threads the policy, status, pauses
(spans spent PENDING) and the next instant the SLA needs a look (swept by the scheduler).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SLA_STATUS = postgresql.ENUM("ON_TRACK", "AT_RISK", "BREACHED", "MET", "PAUSED", name="sla_status", create_type=False)
_TARGET_KIND = postgresql.ENUM(
    "FIRST_RESPONSE", "NEXT_RESPONSE", "RESOLUTION", name="sla_target_kind", create_type=False
)


def _uuid_pk() -> sa.Column:
    return sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _organization() -> sa.Column:
    return sa.Column(
        "organization_id",
        postgresql.UUID(as_uuid=True),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def _at(name: str, nullable: bool = True) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True))
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.execute("ALTER TYPE notification_type ADD VALUE IF NOT EXISTS 'sla_warning'")
    op.execute("ALTER TYPE notification_type ADD VALUE IF NOT EXISTS 'sla_breached'")
    _SLA_STATUS.create(op.get_bind(), checkfirst=True)
    _TARGET_KIND.create(op.get_bind(), checkfirst=True)
    op.add_column("organizations", sa.Column("business_hours", postgresql.JSONB()))
    op.create_table(
        "sla_policies",
        _uuid_pk(),
        _organization(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("conditions", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("first_response_minutes", sa.Integer()),
        sa.Column("next_response_minutes", sa.Integer()),
        sa.Column("resolution_minutes", sa.Integer()),
        sa.Column("business_hours", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("warn_before_minutes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("breach_actions", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        _at("created_at", nullable=False),
        _at("updated_at", nullable=False),
        sa.UniqueConstraint("organization_id", "name", name="uq_sla_policies_organization_id_name"),
    )
    op.add_column(
        "threads",
        sa.Column(
            "sla_policy_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("sla_policies.id", ondelete="SET NULL", name="fk_threads_sla_policy_id_sla_policies"),
        ),
    )
    op.add_column("threads", sa.Column("sla_status", _SLA_STATUS))
    op.add_column(
        "threads", sa.Column("sla_pauses", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb"))
    )
    op.add_column("threads", _at("sla_check_at"))
    op.create_index(
        "ix_threads_sla_check_at", "threads", ["sla_check_at"], postgresql_where=sa.text("sla_check_at IS NOT NULL")
    )
    op.create_table(
        "sla_targets",
        _uuid_pk(),
        _organization(),
        sa.Column(
            "thread_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("threads.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("policy_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("sla_policies.id", ondelete="SET NULL")),
        sa.Column("kind", _TARGET_KIND, nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("business_hours", sa.Boolean(), nullable=False),
        _at("started_at", nullable=False),
        _at("due_at"),
        _at("warn_at"),
        _at("met_at"),
        _at("warned_at"),
        _at("breached_at"),
        _at("cancelled_at"),
        _at("created_at", nullable=False),
    )
    op.create_index(
        "uq_sla_targets_open_kind",
        "sla_targets",
        ["thread_id", "kind"],
        unique=True,
        postgresql_where=sa.text("met_at IS NULL AND cancelled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("sla_targets")
    _TARGET_KIND.drop(op.get_bind(), checkfirst=True)
    op.drop_index("ix_threads_sla_check_at", table_name="threads")
    for column in ("sla_check_at", "sla_pauses", "sla_status", "sla_policy_id"):
        op.drop_column("threads", column)
    _SLA_STATUS.drop(op.get_bind(), checkfirst=True)
    op.drop_table("sla_policies")
    op.drop_column("organizations", "business_hours")
    # notification_type keeps 'sla_warning' and 'sla_breached': PostgreSQL cannot drop an enum value
    op.execute("DELETE FROM notifications WHERE type IN ('sla_warning', 'sla_breached')")
