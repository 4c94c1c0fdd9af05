"""Workflows: definitions with versions, instances with their step history; events remember the workflow that
recorded them (loops and depth); notifications of type `workflow`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)


def _org() -> sa.Column:
    return sa.Column(
        "organization_id", UUID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )


def _id() -> sa.Column:
    return sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.execute("ALTER TYPE notification_type ADD VALUE IF NOT EXISTS 'workflow'")
    op.add_column("events", sa.Column("workflow_id", UUID))
    op.add_column("events", sa.Column("workflow_depth", sa.Integer()))
    op.create_table(
        "workflows",
        _id(),
        _org(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("trigger_type", sa.String(40), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True)),
        sa.Column("signing_secret", sa.Text(), nullable=False),
        sa.Column("run_as_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        _now("created_at"),
        _now("updated_at"),
    )
    op.create_index(
        "ix_workflows_trigger", "workflows", ["organization_id", "trigger_type"], postgresql_where=sa.text("active")
    )
    op.create_index(
        "ix_workflows_next_run_at",
        "workflows",
        ["next_run_at"],
        postgresql_where=sa.text("active AND next_run_at IS NOT NULL"),
    )
    op.create_table(
        "workflow_versions",
        _id(),
        _org(),
        sa.Column("workflow_id", UUID, sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(), nullable=False),
        sa.Column("created_by_id", UUID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        _now("created_at"),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_id_version"),
    )
    op.create_table(
        "workflow_instances",
        _id(),
        _org(),
        sa.Column("workflow_id", UUID, sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("version_id", UUID, sa.ForeignKey("workflow_versions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("thread_id", UUID, sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trigger_key", sa.String(100), nullable=False),
        sa.Column("trigger_type", sa.String(40), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("waiting_for", sa.String(40)),
        sa.Column("wait_action_id", UUID),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("resume", postgresql.JSONB()),
        sa.Column("error", sa.Text()),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint(
            "workflow_id", "thread_id", "trigger_key", name="uq_workflow_instances_workflow_id_thread_id_trigger_key"
        ),
    )
    op.create_index(
        "ix_workflow_instances_due_at", "workflow_instances", ["due_at"], postgresql_where=sa.text("due_at IS NOT NULL")
    )
    op.create_index(
        "ix_workflow_instances_waiting",
        "workflow_instances",
        ["organization_id", "thread_id"],
        postgresql_where=sa.text("status = 'WAITING'"),
    )
    op.create_index("ix_workflow_instances_org_created", "workflow_instances", ["organization_id", "created_at", "id"])
    op.create_table(
        "workflow_step_runs",
        _id(),
        _org(),
        sa.Column(
            "instance_id", UUID, sa.ForeignKey("workflow_instances.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_type", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _now("started_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", postgresql.JSONB()),
        sa.Column("error", sa.Text()),
        sa.UniqueConstraint(
            "instance_id", "step_index", "attempt", name="uq_workflow_step_runs_instance_id_step_index_attempt"
        ),
    )


def downgrade() -> None:
    op.drop_table("workflow_step_runs")
    op.drop_table("workflow_instances")
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
    op.drop_column("events", "workflow_depth")
    op.drop_column("events", "workflow_id")
