"""Live subscriptions: `inboxEvents` and `threadEvents`, resumable with a cursor.

Each event is read from the organization's Redis channel (published by the relay
after commit) or, for a client resuming with `after`, replayed from the events
table first; ids already sent are skipped, so a resume loses and repeats nothing.
Over a WebSocket, subscribers with the same selection share one execution and one
serialisation of each event (`banxway.fanout`).
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from collections.abc import AsyncGenerator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from banxway import events, fanout
from banxway.auth import Permission
from banxway.broadcast import SubscriberTooSlow
from banxway.context import Context
from banxway.schema.ids import local_id
from banxway.schema.messages import Message
from banxway.schema.nodes import Node
from banxway.schema.threads import Thread
from banxway.schema.users import User

InboxEventType = strawberry.enum(
    enum.Enum("InboxEventType", {name: name for name in sorted(events.EVENT_TYPES)}),  # type: ignore[misc]
    description="One value per type in the event registry (banxway/events.py).",
)


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


def build_event(row: dict[str, Any], loaded: dict[str, Any]) -> InboxEvent:
    """The event with what it is about (`EventObjects`: loaded once per process, shared read-only)."""
    payload = row["payload"]
    return InboxEvent(
        cursor=events.encode_cursor(row["seq"], row["id"], row["created_at"]),
        type=InboxEventType[row["type"]],
        occurred_at=row["created_at"],
        actor=loaded["actor"][1],
        thread=loaded["thread"][1],
        message=loaded["message"][1],
        node=loaded["node"][1],
        node_id=loaded["node_id"],
        changed=payload.get("changed"),
        related=[obj for _, obj in loaded["related"]],
    )


@contextlib.contextmanager
def _ended_as_errors() -> Iterator[None]:
    """How the fan-out ends a subscription, as the client sees it."""
    try:
        yield
    except SubscriberTooSlow:
        raise GraphQLError(
            "This subscription fell too far behind and was ended; subscribe again with your last cursor.",
            extensions={"code": "SLOW_CONSUMER"},
        ) from None
    except fanout.SubscriberDeactivated:
        raise GraphQLError(
            "You were signed out (your account was deactivated, your password changed, or the API token was "
            "revoked or expired); sign in again.",
            extensions={"code": "UNAUTHENTICATED"},
        ) from None


async def event_stream(
    info: Info[Context, None],
    after: str | None,
    thread_id: uuid.UUID | None,
    types: set[str] | None = None,
    *,
    multiplexed: bool = False,
) -> AsyncGenerator[InboxEvent, None]:
    """The viewer's events after `after` (from the log), then live ones (`banxway.fanout`).

    `multiplexed` (inboxEvents, threadEvents) inside a WebSocket operation: the events are sent from here, as
    payloads shared with the alike subscribers of this process, and nothing is yielded. Otherwise each event
    object (built once per process) is yielded, and Strawberry executes the selection for this subscriber."""
    ctx = info.context
    viewer = ctx.require(Permission.READ)
    state = ctx.state
    start = _decode_event_cursor(after, timedelta(days=state.settings.event_retention_days)) if after else None
    sink = fanout.current_sink() if multiplexed else None
    hub = fanout.hub(state)
    try:
        with _ended_as_errors():
            if sink is not None:
                async with hub.subscribe(viewer, build_event, thread_id=thread_id, start=start, info=info) as member:
                    await member.serve()  # until the subscription ends (it raises why) or is cancelled
                return
            async with hub.subscribe(viewer, build_event, thread_id=thread_id, types=types, start=start) as member:
                async for event, loaded in member.entries():
                    fanout.prime(ctx.loaders, loaded)
                    yield event
                    await ctx.aclose()  # hold no connection between events
    finally:
        await ctx.aclose()


@strawberry.type
class EventSubscription:
    @strawberry.subscription(description="Every event of the viewer's organization; `after` resumes from a cursor.")
    async def inbox_events(
        self, info: Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[InboxEvent, None]:
        async for event in event_stream(info, after, None, multiplexed=True):
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
        async for event in event_stream(info, after, thread.id, multiplexed=True):
            yield event
