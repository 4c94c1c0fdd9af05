"""Actions (tasks) on a thread: create, update, and the approval of quotes and documents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from banxway.auth import Permission
from banxway.db.models import (
    Action,
    Thread,
)
from banxway.enums import (
    APPROVAL_ACTION_TYPES,
    ActionStatus,
    ActionType,
    NotificationType,
)
from banxway.errors import DomainError, PermissionDenied
from banxway.events import ActionCreated, ActionUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import active_user, apply_changes, get_or_error
from banxway.resolvers.notifications import notify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext

OPEN_ACTION_STATUSES = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)

_ACTION_TRANSITIONS = {
    ActionStatus.OPEN: {ActionStatus.IN_PROGRESS, ActionStatus.DONE, ActionStatus.CANCELLED},
    ActionStatus.IN_PROGRESS: {ActionStatus.OPEN, ActionStatus.DONE, ActionStatus.CANCELLED},
    ActionStatus.DONE: {ActionStatus.OPEN},
    ActionStatus.CANCELLED: {ActionStatus.OPEN},
}


async def action_create(
    ctx: Context,
    *,
    thread_id: uuid.UUID | None,
    title: str,
    type: ActionType | None = None,
    due_at: datetime | None = None,
    assignee_id: uuid.UUID | None = None,
) -> Action:
    ctx.require(Permission.ACTION_MANAGE)
    clean_title = v.text(title, "title", max_length=300, required=True)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        return await create_action(ctx, session, thread, clean_title, type, due_at, assignee_id)


async def create_action(
    ctx: Context,
    session: AsyncSession,
    thread: Thread,
    title: str,
    type: ActionType | None,
    due_at: datetime | None,
    assignee_id: uuid.UUID | None,
) -> Action:
    """The one write path of a new action (actionCreate, a workflow's CREATE_ACTION step); the caller checked
    ACTION_MANAGE and the title."""
    viewer = ctx.viewer
    if assignee_id is not None:
        await active_user(session, assignee_id, "assigneeId")
    action = Action(
        organization_id=viewer.organization_id,
        thread_id=thread.id,
        title=title,
        type=type or ActionType.TASK,
        status=ActionStatus.OPEN,
        due_at=due_at,
        assignee_id=assignee_id,
        created_by_id=viewer.user_id,
    )
    session.add(action)
    await session.flush()
    ctx.record(session, ActionCreated(thread_id=thread.id, action_id=action.id))
    return action


def _needs_approver(action: Action, new_status: ActionStatus, new_type: ActionType) -> bool:
    """Whether the change is an approver's to make: completing an approval (judged by its stored type as well as
    the new one, so that it cannot be turned into a task and completed in one update), changing the type of an
    approval, or moving a completed approval out of DONE."""
    approval = action.type in APPROVAL_ACTION_TYPES or new_type in APPROVAL_ACTION_TYPES
    completing = new_status == ActionStatus.DONE and action.status != ActionStatus.DONE
    retyping = action.type in APPROVAL_ACTION_TYPES and new_type != action.type
    undoing = action.status == ActionStatus.DONE and new_status != ActionStatus.DONE
    return (approval and completing) or retyping or (action.type in APPROVAL_ACTION_TYPES and undoing)


async def action_update(ctx: Context, action_id: uuid.UUID | None, changes: dict[str, Any]) -> Action:
    viewer = ctx.require(Permission.ACTION_MANAGE)
    values: dict[str, Any] = {}
    if "title" in changes:
        values["title"] = v.text(changes["title"], "title", max_length=300, required=True)
    for name in ("type", "status"):
        if name in changes:
            if changes[name] is None:
                raise DomainError("INVALID", f"{name} cannot be cleared.", name)
            values[name] = changes[name]
    if "due_at" in changes:
        values["due_at"] = changes["due_at"]
    async with ctx.transaction() as session:
        action = await get_or_error(session, Action, action_id, "id", lock=True)
        if "assignee_id" in changes:
            if changes["assignee_id"] is not None:
                await active_user(session, changes["assignee_id"], "assigneeId")
            values["assignee_id"] = changes["assignee_id"]
        new_status = values.get("status", action.status)
        if new_status != action.status and new_status not in _ACTION_TRANSITIONS[action.status]:
            raise DomainError(
                "INVALID_TRANSITION", f"An action cannot go from {action.status.name} to {new_status.name}.", "status"
            )
        if _needs_approver(action, new_status, values.get("type", action.type)) and not viewer.can(
            Permission.ACTION_APPROVE
        ):
            raise PermissionDenied(f"Role {viewer.role.name} may not {Permission.ACTION_APPROVE.value}")
        changed = apply_changes(action, values)
        if "due_at" in changed:
            action.reminded_at = None  # the reminder follows the new due time
        if "status" in changed:
            done = action.status == ActionStatus.DONE
            action.completed_at = datetime.now(UTC) if done else None
            action.completed_by_id = viewer.user_id if done else None
        if changed:
            ctx.record(session, ActionUpdated(thread_id=action.thread_id, action_id=action.id, changed=changed))
    return action


# -- reminders ------------------------------------------------------------------------------------------------


async def actions_due(ctx: SystemContext, within: timedelta) -> list[tuple[uuid.UUID, datetime]]:
    """(action id, due_at) of the open actions due before now + `within` whose reminder has not gone."""
    horizon = datetime.now(UTC) + within
    async with ctx.session() as session:
        rows = await session.execute(
            select(Action.id, Action.due_at)
            .where(Action.due_at <= horizon, Action.reminded_at.is_(None), Action.status.in_(OPEN_ACTION_STATUSES))
            .order_by(Action.due_at)
            .limit(10_000)
        )
        return [(row[0], row[1]) for row in rows]


async def action_remind(ctx: SystemContext, action_id: uuid.UUID) -> bool:
    """The timer of an action's due time: a notification to its assignee (its creator when nobody is assigned),
    once per due time; nothing for an action done, cancelled or moved later meanwhile."""
    async with ctx.session() as probe:
        organization_id = await probe.scalar(select(Action.organization_id).where(Action.id == action_id))
    if organization_id is None:
        return False
    now = datetime.now(UTC)
    async with ctx.for_organization(organization_id).transaction() as session:
        action = await session.scalar(select(Action).where(Action.id == action_id).with_for_update())
        if (
            action is None
            or action.reminded_at is not None
            or action.due_at is None
            or action.due_at > now
            or action.status not in OPEN_ACTION_STATUSES
        ):
            return False
        action.reminded_at = now
        thread = await session.get(Thread, action.thread_id)
        assert thread is not None
        await notify(
            session,
            thread,
            [action.assignee_id or action.created_by_id],
            NotificationType.ACTION_DUE,
            f"Due now on {thread.reference}: {action.title}",
            actor_id=None,
        )
    return True
