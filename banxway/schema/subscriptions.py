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
from banxway.auth import Permission
from banxway.broadcast import Signal
from banxway.context import Context, authenticate_user
from banxway.db.session import tenant_session
from banxway.schema.ids import local_id
from banxway.schema.types import Message, Node, Thread, User

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
    actor: User | None = strawberry.field(description="Who did it; null for the system and for customers.")
    thread: Thread | None = strawberry.field(description="The thread as it is now.")
    message: Message | None = strawberry.field(description="Set for message events.")
    node: Node | None = strawberry.field(
        description="The object the event is about, as it is now: the message, note, action, customer, contact "
        "(the kept one of a merge), shipment, or the thread itself."
    )
    changed: list[str] | None = strawberry.field(description="For *_UPDATED events: the fields that changed.")


def encode_event_cursor(seq: int, event_id: int, created_at: datetime) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([seq, event_id, created_at.isoformat()])).decode().rstrip("=")


def _decode_event_cursor(cursor: str, retention: timedelta) -> tuple[int, int]:
    """(seq, event id) of a cursor; cursors of the first release held [id, created] with seq == id."""
    try:
        fields = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if len(fields) == 2:
            fields = [fields[0], *fields]
        seq, event_id, created = fields
        created_at = datetime.fromisoformat(created)
        seq, event_id = int(seq), int(event_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise GraphQLError(f"'{cursor}' is not an event cursor.", extensions={"code": "BAD_USER_INPUT"}) from None
    if created_at.tzinfo is None or created_at < datetime.now(UTC) - retention:
        raise GraphQLError(
            "This cursor is older than the event retention; refetch the state and subscribe without `after`.",
            extensions={"code": "CURSOR_EXPIRED"},
        )
    return seq, event_id


# the payload key that names the event's subject → the loader that fetches it
_SUBJECT_KEYS = (
    ("message_id", "message_by_id"),
    ("note_id", "note_by_id"),
    ("action_id", "action_by_id"),
    ("customer_id", "customer_by_id"),
    ("kept_contact_id", "contact_by_id"),
    ("contact_id", "contact_by_id"),
    ("shipment_id", "shipment_by_id"),
)
_REPLAY_PAGE = 500


async def _event_stream(
    info: Info[Context, None], after: str | None, thread_id: uuid.UUID | None
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

    def visible(type_name: str, event_thread: Any, payload: dict[str, Any]) -> bool:
        if thread_id is not None and str(event_thread) != str(thread_id):
            return False
        # read positions are private to their reader
        return not (type_name == "THREAD_READ" and payload.get("user_id") != str(viewer.user_id))

    async def build(row: dict[str, Any]) -> InboxEvent:
        await ctx.aclose()  # a fresh session and fresh loaders for every event
        loaders = ctx.loaders
        payload = row["payload"]
        thread = await loaders.thread_by_id.load(uuid.UUID(str(row["thread_id"]))) if row["thread_id"] else None
        message_id = payload.get("message_id")
        message = await loaders.message_by_id.load(uuid.UUID(message_id)) if message_id else None
        node: Any = thread
        for key, loader in _SUBJECT_KEYS:
            if payload.get(key):
                node = await getattr(loaders, loader).load(uuid.UUID(payload[key]))
                break
        actor = await loaders.user_by_id.load(uuid.UUID(str(row["actor_id"]))) if row["actor_id"] else None
        return InboxEvent(
            cursor=encode_event_cursor(row["seq"], row["id"], row["created_at"]),
            type=InboxEventType[row["type"]],
            occurred_at=row["created_at"],
            actor=actor,
            thread=thread,
            message=message,
            node=node,
            changed=payload.get("changed"),
        )

    async def read_log(after_seq: int) -> list[dict[str, Any]]:
        async with tenant_session(state.sessionmaker, organization_id) as session, session.begin():
            rows = await events.replay(session, organization_id, after_seq, thread_id=thread_id, limit=_REPLAY_PAGE)
            return [
                {
                    "id": r.id,
                    "seq": r.seq,
                    "type": r.type,
                    "thread_id": r.thread_id,
                    "actor_id": r.actor_id,
                    "payload": r.payload,
                    "created_at": r.created_at,
                }
                for r in rows
            ]

    async def catch_up() -> AsyncGenerator[InboxEvent, None]:
        """Every published event after `position`, from the log, page by page."""
        nonlocal position
        while True:
            rows = await read_log(position)
            for row in rows:
                position = max(position, row["seq"])
                if remember(row["id"]) and visible(row["type"], row["thread_id"], row["payload"]):
                    yield await build(row)
            if len(rows) < _REPLAY_PAGE:
                return

    async with state.broadcast.subscribe(events.channel(organization_id)) as subscriber:
        try:
            if start is not None:
                position, skip_id = start
                remember(skip_id)  # the cursor's own event, even if a failed publish gave it a new seq
                async for event in catch_up():
                    yield event
            else:
                async with tenant_session(state.sessionmaker, organization_id) as session, session.begin():
                    position = await events.position(session, organization_id)
            async for published in subscriber:
                if published is Signal.RESYNC:  # Redis came back: fetch what was published meanwhile
                    async for event in catch_up():
                        yield event
                    continue
                row = orjson.loads(published)
                position = max(position, row["seq"])
                if not remember(row["id"]):
                    continue
                if time.monotonic() - checked_at > _ACTIVE_CHECK_SECONDS:
                    checked_at = time.monotonic()
                    if not await authenticate_user(state, viewer.user_id, organization_id):
                        raise GraphQLError("Your account is deactivated.", extensions={"code": "UNAUTHENTICATED"})
                if visible(row["type"], row["thread_id"], row["payload"]):
                    row["created_at"] = datetime.fromisoformat(row["created_at"])
                    yield await build(row)
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
