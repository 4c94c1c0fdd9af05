"""Live subscriptions: `inboxEvents` and `threadEvents`, resumable with a cursor.

Each event is read from the organization's Redis channel (published by the relay
after commit) or, for a client resuming with `after`, replayed from the events
table first; ids already sent are skipped, so a resume loses and repeats nothing.
"""

from __future__ import annotations

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
from banxway.auth import Permission, has_permission
from banxway.broadcast import Signal, SubscriberTooSlow
from banxway.context import Context
from banxway.resolvers import inbox_events
from banxway.schema.ids import local_id
from banxway.schema.messages import Message
from banxway.schema.nodes import Node
from banxway.schema.threads import Thread
from banxway.schema.users import User

InboxEventType = strawberry.enum(
    enum.Enum("InboxEventType", {name: name for name in sorted(events.EVENT_TYPES)}),  # type: ignore[misc]
    description="One value per type in the event registry (banxway/events.py).",
)

_SEEN_LIMIT = 10_000


@strawberry.type(description="Something that happened in the inbox. Pass `cursor` back as `after` to resume.")
class InboxEvent:
    cursor: str
    type: InboxEventType  # type: ignore[valid-type]
    occurred_at: datetime
    actor: User | None = strawberry.field(description="Who did it; null for the system and for customers.")
    thread: Thread | None = strawberry.field(description="The thread as it is now.")
    message: Message | None = strawberry.field(description="Set for message events.")
    node: Node | None = strawberry.field(
        description="The object the event is about, as it is now: the message, note, action, customer, contact "
        "(the kept one of a merge), shipment, user, integration, email account, or the thread itself; null when "
        "it no longer exists (EMAIL_ACCOUNT_DELETED)."
    )
    node_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The global id of the object the event is about, also when it no longer exists (then `node` "
        "is null: remove it).",
    )
    changed: list[str] | None = strawberry.field(description="For *_UPDATED events: the fields that changed.")
    related: list[Node] = strawberry.field(
        default_factory=list,
        description="Other objects the event changed, as they are now: the merged contact and the moved threads "
        "and messages of a (un)merge, the notifications of NOTIFICATIONS_READ.",
    )


def _decode_event_cursor(cursor: str, retention: timedelta) -> tuple[int, int]:
    try:
        seq, event_id, created_at = events.decode_cursor(cursor)
    except events.BadCursor as exc:
        raise GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT"}) from None
    if created_at < datetime.now(UTC) - retention:
        raise GraphQLError(
            "This cursor is older than the event retention; refetch the state and subscribe without `after`.",
            extensions={"code": "CURSOR_EXPIRED"},
        )
    return seq, event_id


async def event_stream(
    info: Info[Context, None], after: str | None, thread_id: uuid.UUID | None, types: set[str] | None = None
) -> AsyncGenerator[InboxEvent, None]:
    ctx = info.context
    viewer = ctx.require(Permission.READ)
    state = ctx.state
    organization_id = viewer.organization_id
    start = _decode_event_cursor(after, timedelta(days=state.settings.event_retention_days)) if after else None
    seen: dict[int, None] = {}
    checked_at = time.monotonic()

    def remember(event_id: int) -> bool:
        """False if the event was already sent (or skipped) on this stream."""
        if event_id in seen:
            return False
        seen[event_id] = None
        if len(seen) > _SEEN_LIMIT:
            seen.pop(next(iter(seen)))
        return True

    role = viewer.role  # as it is now: refreshed with the active check below

    def visible(type_name: str, event_thread: Any, payload: dict[str, Any]) -> bool:
        if thread_id is not None and str(event_thread) != str(thread_id):
            return False
        if types is not None and type_name not in types:
            return False
        event_type = events.EVENT_TYPES[type_name]
        # administration events (integrations, email accounts) reach only the roles that may administer
        if event_type.permission is not None and not has_permission(role, event_type.permission):
            return False
        # read positions and notifications are private to their user
        return not (event_type.private and payload.get("user_id") != str(viewer.user_id))

    async def build(row: dict[str, Any]) -> InboxEvent:
        """The event with what it is about: loaded once per process (`EventObjects`), primed into this
        subscriber's loaders; the caller closes the session after the event is sent (`ctx.aclose()`)."""
        loaded = await inbox_events.event_objects(state).get(organization_id, row)
        loaders = ctx.loaders
        related: list[tuple[str, Any]] = loaded["related"]  # type: ignore[assignment]
        singles = [loaded[name] for name in ("thread", "message", "node", "actor")]
        for loader_name, obj in [*singles, *related]:
            if obj is not None:
                getattr(loaders, loader_name).prime(obj.id, obj)
        payload = row["payload"]
        return InboxEvent(
            cursor=events.encode_cursor(row["seq"], row["id"], row["created_at"]),
            type=InboxEventType[row["type"]],
            occurred_at=row["created_at"],
            actor=loaded["actor"][1],
            thread=loaded["thread"][1],
            message=loaded["message"][1],
            node=loaded["node"][1],
            node_id=loaded["node_id"],  # type: ignore[arg-type]
            changed=payload.get("changed"),
            related=[obj for _, obj in related],
        )

    async def catch_up() -> AsyncGenerator[InboxEvent, None]:
        """Every published event after `position`, from the log, page by page."""
        nonlocal position
        while True:
            rows = await inbox_events.replay(state, organization_id, position, thread_id)
            for row in rows:
                position = max(position, row["seq"])
                if remember(row["id"]) and visible(row["type"], row["thread_id"], row["payload"]):
                    yield await build(row)
                    await ctx.aclose()  # hold no connection between events
            if len(rows) < inbox_events.REPLAY_PAGE:
                return

    async with state.broadcast.subscribe(events.channel(organization_id)) as subscriber:
        try:
            if start is not None:
                position, skip_id = start
                remember(skip_id)  # the cursor's own event, even if a failed publish gave it a new seq
                async for event in catch_up():
                    yield event
            else:
                position = await inbox_events.position(state, organization_id)
            async for published in subscriber:
                if published is Signal.RESYNC:  # Redis came back: fetch what was published meanwhile
                    async for event in catch_up():
                        yield event
                    continue
                row = orjson.loads(published)
                position = max(position, row["seq"])
                if not remember(row["id"]):
                    continue
                if time.monotonic() - checked_at > inbox_events.ACTIVE_CHECK_SECONDS:
                    checked_at = time.monotonic()
                    current = await inbox_events.current_role(state, viewer.user_id, organization_id)
                    if current is None:
                        raise GraphQLError("Your account is deactivated.", extensions={"code": "UNAUTHENTICATED"})
                    role = current
                if visible(row["type"], row["thread_id"], row["payload"]):
                    row["created_at"] = datetime.fromisoformat(row["created_at"])
                    yield await build(row)
                    await ctx.aclose()  # hold no connection between events
        except SubscriberTooSlow:
            raise GraphQLError(
                "This subscription fell too far behind and was ended; subscribe again with your last cursor.",
                extensions={"code": "SLOW_CONSUMER"},
            ) from None
        finally:
            await ctx.aclose()


@strawberry.type
class EventSubscription:
    @strawberry.subscription(description="Every event of the viewer's organization; `after` resumes from a cursor.")
    async def inbox_events(
        self, info: Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[InboxEvent, None]:
        async for event in event_stream(info, after, None):
            yield event

    @strawberry.subscription(description="The events of one thread; `after` resumes from a cursor.")
    async def thread_events(
        self, info: Info[Context, None], thread_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[InboxEvent, None]:
        info.context.viewer  # noqa: B018 - authentication required
        local = local_id(thread_id, "Thread")
        thread = await info.context.loaders.thread_by_id.load(local) if local else None
        await info.context.aclose()
        if thread is None:
            raise GraphQLError("No such thread.", extensions={"code": "NOT_FOUND"})
        async for event in event_stream(info, after, thread.id):
            yield event
