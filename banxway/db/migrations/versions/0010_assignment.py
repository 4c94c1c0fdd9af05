"""Teams and assignment rules: teams and their members (a round-robin pointer per team), threads.team_id, and per
user a capacity (max open threads) and availability; threads.snoozed_until (hidden from the inbox until then).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _organization() -> sa.Column:
    return sa.Column(
        "organization_id",
        postgresql.UUID(as_uuid=True),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _organization(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "last_assigned_user_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL")
        ),
        _created_at(),
        sa.UniqueConstraint("organization_id", "name", name="uq_teams_organization_id_name"),
    )
    op.create_table(
        "team_members",
        _organization(),
        sa.Column(
            "team_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
        _created_at(),
    )
    op.add_column(
        "threads",
        sa.Column(
            "team_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("teams.id", ondelete="SET NULL", name="fk_threads_team_id_teams"),
        ),
    )
    op.create_index("ix_threads_team_id", "threads", ["team_id"])
    op.add_column("threads", sa.Column("snoozed_until", sa.DateTime(timezone=True)))
    # the inbox count stays index-only with the snooze filter
    op.drop_index("ix_threads_org_status", table_name="threads")
    op.create_index(
        "ix_threads_org_status", "threads", ["organization_id", "status"], postgresql_include=["snoozed_until"]
    )
    op.create_index(
        "ix_threads_snoozed_until", "threads", ["snoozed_until"], postgresql_where=sa.text("snoozed_until IS NOT NULL")
    )
    op.add_column("users", sa.Column("max_open_threads", sa.Integer()))
    op.add_column("users", sa.Column("available", sa.Boolean(), nullable=False, server_default=sa.text("true")))


def downgrade() -> None:
    op.drop_column("users", "available")
    op.drop_column("users", "max_open_threads")
    op.drop_index("ix_threads_snoozed_until", table_name="threads")
    op.drop_index("ix_threads_org_status", table_name="threads")
    op.create_index("ix_threads_org_status", "threads", ["organization_id", "status"])
    op.drop_column("threads", "snoozed_until")
    op.drop_index("ix_threads_team_id", table_name="threads")
    op.drop_column("threads", "team_id")
    op.drop_table("team_members")
    op.drop_table("teams")
