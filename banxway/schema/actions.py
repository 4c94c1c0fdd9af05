"""Actions: the tasks of a thread (call back, approve a quote, …)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from banxway import db
from banxway.resolvers import actions as action_use_cases
from banxway.schema.errors import THREAD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.users import User

if TYPE_CHECKING:
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]

ActionType = strawberry.enum(db.ActionType)
ActionStatus = strawberry.enum(db.ActionStatus)
ActionError, ActionErrorCode = error_type("Action", THREAD_CODES)


@strawberry.type
class Action(Node):
    id: strawberry.ID = _id_field("Action")
    title: str
    type: ActionType
    status: ActionStatus
    due_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Action)
    resolve_nodes = _node_resolver("action_by_id")

    @strawberry.field
    def thread(self, info: Ctx) -> ThreadRef:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def assignee(self, info: Ctx) -> User | None:
        return related(self, info, "assignee", "user_by_id", self.assignee_id)  # type: ignore[attr-defined]

    @strawberry.field
    def created_by(self, info: Ctx) -> User | None:
        return related(self, info, "created_by", "user_by_id", self.created_by_id)  # type: ignore[attr-defined]

    @strawberry.field
    def completed_by(self, info: Ctx) -> User | None:
        return related(self, info, "completed_by", "user_by_id", self.completed_by_id)  # type: ignore[attr-defined]


@strawberry.input
class ActionCreateInput:
    thread_id: strawberry.ID
    title: str
    type: ActionType | None = None
    due_at: datetime | None = None
    assignee_id: strawberry.ID | None = None


@strawberry.input
class ActionUpdateInput:
    id: strawberry.ID
    title: str | None = strawberry.UNSET
    type: ActionType | None = strawberry.UNSET
    status: ActionStatus | None = strawberry.UNSET
    due_at: datetime | None = strawberry.UNSET
    assignee_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class ActionPayload:
    action: Action | None = None
    user_errors: list[ActionError]  # type: ignore[valid-type]


@strawberry.type
class ActionMutation:
    @strawberry.mutation
    async def action_create(self, info: Ctx, input: ActionCreateInput) -> ActionPayload:
        async def call() -> dict:
            action = await action_use_cases.action_create(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                title=input.title,
                type=input.type,
                due_at=input.due_at,
                assignee_id=decode_optional(input.assignee_id, "User", "assigneeId"),
            )
            return {"action": action}

        return await mutate(ActionPayload, ActionError, ActionErrorCode, call)

    @strawberry.mutation(description="Completing a QUOTE_APPROVAL or DOCUMENT_APPROVAL action needs ACTION_APPROVE.")
    async def action_update(self, info: Ctx, input: ActionUpdateInput) -> ActionPayload:
        async def call() -> dict:
            action_id = decode(input.id, "Action", "id")
            values = changes(input, {"title": "title", "type": "type", "status": "status", "due_at": "due_at"})
            if given(input.assignee_id):
                values["assignee_id"] = decode_optional(input.assignee_id, "User", "assigneeId")
            return {"action": await action_use_cases.action_update(info.context, action_id, values)}

        return await mutate(ActionPayload, ActionError, ActionErrorCode, call)
