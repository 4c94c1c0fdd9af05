"""Actions (tasks) on a thread: create, update, and the approval of quotes and documents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from banxway.auth import Permission
from banxway.db.models import (
    Action,
    Thread,
)
from banxway.enums import (
    APPROVAL_ACTION_TYPES,
    ActionStatus,
    ActionType,
)
from banxway.errors import DomainError, PermissionDenied
from banxway.events import ActionCreated, ActionUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import active_user, apply_changes, get_or_error

if TYPE_CHECKING:
    from banxway.context import Context

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
    viewer = ctx.require(Permission.ACTION_MANAGE)
    clean_title = v.text(title, "title", max_length=300, required=True)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        if assignee_id is not None:
            await active_user(session, assignee_id, "assigneeId")
        action = Action(
            organization_id=viewer.organization_id,
            thread_id=thread.id,
            title=clean_title,
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
        if "status" in changed:
            done = action.status == ActionStatus.DONE
            action.completed_at = datetime.now(UTC) if done else None
            action.completed_by_id = viewer.user_id if done else None
        if changed:
            ctx.record(session, ActionUpdated(thread_id=action.thread_id, action_id=action.id, changed=changed))
    return action
