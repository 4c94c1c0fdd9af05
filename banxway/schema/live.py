"""Notifications, typing and presence: queries, mutations and subscriptions."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import orjson
import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from banxway import db, presence
from banxway.auth import Permission
from banxway.broadcast import Signal
from banxway.context import Context
from banxway.errors import DomainError
from banxway.resolvers import notifications as notification_use_cases
from banxway.resolvers.pagination import paginate
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, local_id
from banxway.schema.pagination import Connection, connection
from banxway.schema.subscriptions import event_stream
from banxway.schema.types import Notification, Thread, User

Ctx = Info[Context, None]

NotificationError, NotificationErrorCode = error_type("Notification", ["INVALID", "NOT_FOUND"])
TypingError, TypingErrorCode = error_type("Typing", ["INVALID", "NOT_FOUND"])


@strawberry.type(description="Someone started or stopped writing in a thread.")
class TypingEvent:
    thread: Thread
    user: User
    is_typing: bool
    expires_at: datetime | None = strawberry.field(
        description="When the signal lapses unless renewed (5 s after the last one); null when it stopped."
    )


@strawberry.type(description="A colleague with the thread open, or writing in it.")
class ThreadViewer:
    user: User
    viewing: bool
    composing: bool
    since: datetime


@strawberry.type(description="Who is in a thread now; sent again whenever that changes.")
class ThreadViewers:
    thread: Thread
    viewers: list[ThreadViewer]


@strawberry.input
class ThreadTypingInput:
    thread_id: strawberry.ID
    is_typing: bool = True


@strawberry.type
class ThreadTypingPayload:
    expires_at: datetime | None = None
    user_errors: list[TypingError]  # type: ignore[valid-type]


@strawberry.input
class NotificationMarkReadInput:
    ids: list[strawberry.ID]


@strawberry.type
class NotificationsPayload:
    notifications: list[Notification] | None = None
    user_errors: list[NotificationError]  # type: ignore[valid-type]


async def _thread(info: Ctx, thread_id: strawberry.ID) -> db.Thread:
    local = local_id(thread_id, "Thread")
    thread = await info.context.loaders.thread_by_id.load(local) if local else None
    if thread is None:
        raise GraphQLError("No such thread.", extensions={"code": "NOT_FOUND"})
    return thread


async def _viewer_list(info: Ctx, thread: db.Thread) -> list[ThreadViewer]:
    ctx = info.context
    found = await presence.viewers(ctx.redis, thread.organization_id, thread.id)
    users = await ctx.loaders.user_by_id.load_many([p.user_id for p in found])
    return [
        ThreadViewer(
            user=user,  # type: ignore[arg-type]
            viewing=p.viewing,
            composing=p.composing,
            since=datetime.fromtimestamp(p.since, UTC),
        )
        for p, user in zip(found, users, strict=True)
        if user is not None
    ]


@strawberry.type
class LiveQuery:
    @strawberry.field(description="The viewer's notifications, newest first.")
    async def notifications(
        self, info: Ctx, first: int | None = None, after: str | None = None, unread_only: bool | None = None
    ) -> Connection[Notification]:
        query = notification_use_cases.notifications_query(info.context, bool(unread_only))
        keys = (db.Notification.created_at, db.Notification.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after, descending=True))

    @strawberry.field(description="How many of the viewer's notifications are unread.")
    async def notification_unread_count(self, info: Ctx) -> int:
        return await notification_use_cases.unread_count(info.context)

    @strawberry.field(description="Who has the thread open or is writing in it now.")
    async def thread_viewers(self, info: Ctx, thread_id: strawberry.ID) -> list[ThreadViewer]:
        info.context.require(Permission.READ)
        return await _viewer_list(info, await _thread(info, thread_id))


@strawberry.type
class LiveMutation:
    @strawberry.mutation(description="Say that the viewer is (or stopped) writing in a thread; lapses after 5 s.")
    async def thread_typing(self, info: Ctx, input: ThreadTypingInput) -> ThreadTypingPayload:
        ctx = info.context
        viewer = ctx.require(Permission.NOTE_ADD)

        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            thread = await ctx.loaders.thread_by_id.load(thread_id) if thread_id else None
            if thread is None:
                raise DomainError("NOT_FOUND", "No such thread.", "threadId")
            until = await presence.set_typing(
                ctx.redis, viewer.organization_id, thread.id, viewer.user_id, input.is_typing
            )
            return {"expires_at": datetime.fromtimestamp(until, UTC) if until else None}

        return await mutate(ThreadTypingPayload, TypingError, TypingErrorCode, call)

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
class LiveSubscription:
    @strawberry.subscription(description="The viewer's new notifications, as they are created.")
    async def notification_received(self, info: Ctx) -> AsyncGenerator[Notification, None]:
        async for event in event_stream(info, None, None, types={"NOTIFICATION_CREATED"}):
            if event.node is not None:
                yield event.node  # type: ignore[misc]

    @strawberry.subscription(description="Colleagues starting and stopping to write in a thread (not the viewer).")
    async def typing(self, info: Ctx, thread_id: strawberry.ID) -> AsyncGenerator[TypingEvent, None]:
        ctx = info.context
        viewer = ctx.require(Permission.READ)
        thread = await _thread(info, thread_id)
        await ctx.aclose()
        until: dict[uuid.UUID, float] = {}
        async with ctx.state.broadcast.subscribe(presence.typing_channel(viewer.organization_id, thread.id)) as sub:
            while True:
                wait = max(0.0, min(until.values()) - time.time()) if until else None
                item = await sub.next(wait)
                changes: list[tuple[uuid.UUID, float | None]] = []
                if item is None:  # a signal lapsed
                    now = time.time()
                    changes = [(user, None) for user, deadline in until.items() if deadline <= now]
                elif item is not Signal.RESYNC:
                    data = orjson.loads(item)
                    user = uuid.UUID(data["user_id"])
                    if data["typing"] is not None and user != viewer.user_id:
                        changes = [(user, data["at"] + presence.TYPING_TTL if data["typing"] else None)]
                for user, deadline in changes:
                    if deadline is None:
                        until.pop(user, None)
                    else:
                        until[user] = deadline
                    yield TypingEvent(
                        thread=await ctx.loaders.thread_by_id.load(thread.id),  # type: ignore[arg-type]
                        user=await ctx.loaders.user_by_id.load(user),  # type: ignore[arg-type]
                        is_typing=deadline is not None,
                        expires_at=datetime.fromtimestamp(deadline, UTC) if deadline else None,
                    )
                    await ctx.aclose()  # hold no connection while waiting

    @strawberry.subscription(
        description="Who has the thread open or is writing in it; the viewer counts as viewing while subscribed."
    )
    async def thread_viewers(self, info: Ctx, thread_id: strawberry.ID) -> AsyncGenerator[ThreadViewers, None]:
        ctx = info.context
        viewer = ctx.require(Permission.READ)
        thread = await _thread(info, thread_id)
        org, redis = viewer.organization_id, ctx.redis
        connection_id = uuid.uuid4().hex
        channel = presence.typing_channel(org, thread.id)
        async with ctx.state.broadcast.subscribe(channel) as sub:
            await presence.set_viewing(redis, org, thread.id, viewer.user_id, connection_id, True)
            refreshed = time.monotonic()
            try:
                last: list[tuple[uuid.UUID, bool, bool]] | None = None
                while True:
                    current = await _viewer_list(info, thread)
                    snapshot = [(v.user.id, v.viewing, v.composing) for v in current]  # type: ignore[attr-defined]
                    if snapshot != last:
                        last = snapshot
                        yield ThreadViewers(
                            thread=await ctx.loaders.thread_by_id.load(thread.id),  # type: ignore[arg-type]
                            viewers=current,
                        )
                    anyone_composing = any(v.composing for v in current)
                    await ctx.aclose()  # hold no connection while waiting
                    await sub.next(1.0 if anyone_composing else presence.REFRESH)
                    if time.monotonic() - refreshed > presence.REFRESH / 2:
                        await presence.set_viewing(
                            redis, org, thread.id, viewer.user_id, connection_id, True, announce=False
                        )
                        refreshed = time.monotonic()
            finally:
                await presence.set_viewing(redis, org, thread.id, viewer.user_id, connection_id, False)
