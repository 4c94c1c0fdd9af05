"""Live subscriptions: `inboxEvents` and `threadEvents`, resumable with a cursor.

Each event is read from the organization's Redis channel (published by the relay
after commit) or, for a client resuming with `after`, replayed from the events
table first; ids already sent are skipped, so a resume loses and repeats nothing.
"""

from __future__ import annotations

import base64
import enum
import time
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from banxway import events
from banxway.context import Context, authenticate_user
from banxway.schema.ids import local_id
from banxway.schema.types import Message, Thread

InboxEventType = strawberry.enum(
    enum.Enum("InboxEventType", {name: name for name in sorted(events.EVENT_TYPES)}),  # type: ignore[misc]
    description="One value per type in the event registry (banxway/events.py).",
)

_ACTIVE_CHECK_SECONDS = 1.0
_SEEN_LIMIT = 10_000


@strawberry.type(description="Something that happened in the inbox. Pass `cursor` back as `after` to resume.")
class InboxEvent:
    cursor: str
    type: InboxEventType  # type: ignore[valid-type]
    occurred_at: datetime
    thread: Thread | None
    message: Message | None


def encode_event_cursor(event_id: int, created_at: datetime) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([event_id, created_at.isoformat()])).decode().rstrip("=")


def _decode_event_cursor(cursor: str, retention: timedelta) -> int:
    try:
        event_id, created = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created_at = datetime.fromisoformat(created)
        event_id = int(event_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise GraphQLError(f"'{cursor}' is not an event cursor.", extensions={"code": "BAD_USER_INPUT"}) from None
    if created_at < datetime.now(UTC) - retention:
        raise GraphQLError(
            "This cursor is older than the event retention; refetch the state and subscribe without `after`.",
            extensions={"code": "CURSOR_EXPIRED"},
        )
    return event_id


async def _event_stream(
    info: Info[Context, None], after: str | None, thread_id: uuid.UUID | None
) -> AsyncGenerator[InboxEvent, None]:
    ctx = info.context
    viewer = ctx.viewer
    state = ctx.state
    retention = timedelta(days=state.settings.event_retention_days)
    after_id = _decode_event_cursor(after, retention) if after else None
    seen: dict[int, None] = {}
    checked_at = time.monotonic()

    def visible(type_name: str, event_thread: Any, payload: dict[str, Any]) -> bool:
        if thread_id is not None and str(event_thread) != str(thread_id):
            return False
        # read positions are private to their reader
        return not (type_name == "THREAD_READ" and payload.get("user_id") != str(viewer.user_id))

    async def build(
        event_id: int, type_name: str, created_at: datetime, event_thread: Any, payload: dict
    ) -> InboxEvent:
        await ctx.aclose()  # a fresh session and fresh loaders for every event
        thread = await ctx.loaders.thread_by_id.load(uuid.UUID(str(event_thread))) if event_thread else None
        message_id = payload.get("message_id")
        message = await ctx.loaders.message_by_id.load(uuid.UUID(message_id)) if message_id else None
        return InboxEvent(
            cursor=encode_event_cursor(event_id, created_at),
            type=InboxEventType[type_name],
            occurred_at=created_at,
            thread=thread,
            message=message,
        )

    def remember(event_id: int) -> None:
        seen[event_id] = None
        if len(seen) > _SEEN_LIMIT:
            seen.pop(next(iter(seen)))

    async with state.broadcast.subscribe(events.channel(viewer.organization_id)) as subscriber:
        try:
            if after_id is not None:
                for row in await events.replay(ctx.db.session, after_id, thread_id=thread_id):
                    remember(row.id)
                    if visible(row.type, row.thread_id, row.payload):
                        yield await build(row.id, row.type, row.created_at, row.thread_id, row.payload)
            async for published in subscriber:
                data = orjson.loads(published)
                if data["id"] in seen:
                    continue
                remember(data["id"])
                if time.monotonic() - checked_at > _ACTIVE_CHECK_SECONDS:
                    checked_at = time.monotonic()
                    if not await authenticate_user(state, viewer.user_id, viewer.organization_id):
                        raise GraphQLError("Your account is deactivated.", extensions={"code": "UNAUTHENTICATED"})
                if visible(data["type"], data["thread_id"], data["payload"]):
                    created_at = datetime.fromisoformat(data["created_at"])
                    yield await build(data["id"], data["type"], created_at, data["thread_id"], data["payload"])
        finally:
            await ctx.aclose()  # the last event's session


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every event of the viewer's organization; `after` resumes from a cursor.")
    async def inbox_events(
        self, info: Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[InboxEvent, None]:
        async for event in _event_stream(info, after, None):
            yield event

    @strawberry.subscription(description="The events of one thread; `after` resumes from a cursor.")
    async def thread_events(
        self, info: Info[Context, None], thread_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[InboxEvent, None]:
        info.context.viewer  # noqa: B018 - authentication required
        local = local_id(thread_id, "Thread")
        thread = await info.context.loaders.thread_by_id.load(local) if local else None
        if thread is None:
            raise GraphQLError("No such thread.", extensions={"code": "NOT_FOUND"})
        async for event in _event_stream(info, after, thread.id):
            yield event
