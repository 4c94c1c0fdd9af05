"""Notifications: a mention, an assignment, a customer's message on one's thread; listed, counted, marked
read, and received live."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from banxway import db
from banxway.resolvers import notifications as notification_use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode
from banxway.schema.messages import Message
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.notes import Note
from banxway.schema.pagination import Connection, connection
from banxway.schema.subscriptions import event_stream
from banxway.schema.threads import Thread
from banxway.schema.users import User

NotificationType = strawberry.enum(db.NotificationType)
NotificationError, NotificationErrorCode = error_type("Notification", ["INVALID", "NOT_FOUND"])


@strawberry.type(description="Something for one user to look at; only its user can see it.")
class Notification(Node):
    id: strawberry.ID = _id_field("Notification")
    type: NotificationType  # type: ignore[valid-type]
    summary: str
    read_at: datetime | None
    created_at: datetime

    is_type_of = _model_type_of(db.Notification)
    resolve_nodes = _node_resolver("notification_by_id")

    @strawberry.field
    def read(self) -> bool:
        return self.read_at is not None

    @strawberry.field
    def thread(self, info: Ctx) -> Thread | None:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def message(self, info: Ctx) -> Message | None:
        return related(self, info, "message", "message_by_id", self.message_id)  # type: ignore[attr-defined]

    @strawberry.field
    def note(self, info: Ctx) -> Note | None:
        return related(self, info, "note", "note_by_id", self.note_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Who caused it; null for a customer's message.")
    def actor(self, info: Ctx) -> User | None:
        return related(self, info, "actor", "user_by_id", self.actor_id)  # type: ignore[attr-defined]


@strawberry.input
class NotificationMarkReadInput:
    ids: list[strawberry.ID]


@strawberry.type
class NotificationsPayload:
    notifications: list[Notification] | None = None
    user_errors: list[NotificationError]  # type: ignore[valid-type]


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="The viewer's notifications, newest first.")
    async def notifications(
        self, info: Ctx, first: int | None = None, after: str | None = None, unread_only: bool | None = None
    ) -> Connection[Notification]:
        page = await notification_use_cases.notifications_page(
            info.context, bool(unread_only), first=first, after=after
        )
        return connection(page)

    @strawberry.field(description="How many of the viewer's notifications are unread.")
    async def notification_unread_count(self, info: Ctx) -> int:
        return await notification_use_cases.unread_count(info.context)


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(description="Mark some of the viewer's notifications read.")
    async def notification_mark_read(self, info: Ctx, input: NotificationMarkReadInput) -> NotificationsPayload:
        async def call() -> dict:
            ids = [decode(i, "Notification", f"ids.{n}") for n, i in enumerate(input.ids)]
            return {"notifications": await notification_use_cases.mark_read(info.context, ids)}

        return await mutate(NotificationsPayload, NotificationError, NotificationErrorCode, call)

    @strawberry.mutation(description="Mark all of the viewer's notifications read; returns those it changed.")
    async def notification_mark_all_read(self, info: Ctx) -> NotificationsPayload:
        async def call() -> dict:
            return {"notifications": await notification_use_cases.mark_read(info.context, None)}

        return await mutate(NotificationsPayload, NotificationError, NotificationErrorCode, call)


@strawberry.type
class NotificationSubscription:
    @strawberry.subscription(description="The viewer's new notifications, as they are created.")
    async def notification_received(self, info: Ctx) -> AsyncGenerator[Notification, None]:
        async for event in event_stream(info, None, None, types={"NOTIFICATION_CREATED"}):
            if event.node is not None:
                yield event.node  # type: ignore[misc]
