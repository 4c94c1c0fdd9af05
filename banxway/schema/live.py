"""Typing and presence: who is writing in a thread, and who has it open (query, mutation and subscriptions)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import orjson
import strawberry
from graphql import GraphQLError

from banxway import db, presence
from banxway.broadcast import Signal
from banxway.errors import DomainError
from banxway.resolvers import presence as presence_use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, local_id
from banxway.schema.nodes import Ctx
from banxway.schema.threads import Thread
from banxway.schema.users import User

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


async def _thread(info: Ctx, thread_id: strawberry.ID) -> db.Thread:
    """The thread to follow (READ); a missing one is a NOT_FOUND error."""
    try:
        return await presence_use_cases.watched_thread(info.context, local_id(thread_id, "Thread"))
    except DomainError as exc:
        raise GraphQLError(exc.message, extensions={"code": exc.code}) from None


async def _viewer_list(info: Ctx, thread: db.Thread) -> list[ThreadViewer]:
    return [
        ThreadViewer(user=v.user, viewing=v.viewing, composing=v.composing, since=v.since)  # type: ignore[arg-type]
        for v in await presence_use_cases.thread_viewers(info.context, thread)
    ]


@strawberry.type
class LiveQuery:
    @strawberry.field(description="Who has the thread open or is writing in it now.")
    async def thread_viewers(self, info: Ctx, thread_id: strawberry.ID) -> list[ThreadViewer]:
        return await _viewer_list(info, await _thread(info, thread_id))


@strawberry.type
class LiveMutation:
    @strawberry.mutation(description="Say that the viewer is (or stopped) writing in a thread; lapses after 5 s.")
    async def thread_typing(self, info: Ctx, input: ThreadTypingInput) -> ThreadTypingPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            return {"expires_at": await presence_use_cases.thread_typing(info.context, thread_id, input.is_typing)}

        return await mutate(ThreadTypingPayload, TypingError, TypingErrorCode, call)


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(description="Colleagues starting and stopping to write in a thread (not the viewer).")
    async def typing(self, info: Ctx, thread_id: strawberry.ID) -> AsyncGenerator[TypingEvent, None]:
        ctx = info.context
        thread = await _thread(info, thread_id)
        viewer = ctx.viewer
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
        thread = await _thread(info, thread_id)
        connection_id = uuid.uuid4().hex
        channel = presence.typing_channel(ctx.viewer.organization_id, thread.id)
        async with ctx.state.broadcast.subscribe(channel) as sub:
            await presence_use_cases.set_viewing(ctx, thread, connection_id, True)
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
                        await presence_use_cases.set_viewing(ctx, thread, connection_id, True, announce=False)
                        refreshed = time.monotonic()
            finally:
                await presence_use_cases.set_viewing(ctx, thread, connection_id, False)
