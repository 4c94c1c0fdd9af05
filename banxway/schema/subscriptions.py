"""Live subscriptions: `inboxEvents` and `threadEvents`, resumable with a cursor.

Each event is read from the organization's Redis channel (published by the relay
after commit) or, for a client resuming with `after`, replayed from the events
table first; ids already sent are skipped, so a resume loses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from banxway import events
from banxway.auth import Permission
from banxway.broadcast import Signal, SubscriberTooSlow
from banxway.context import Context, authenticate_user
from banxway.dataloaders import Loaders
from banxway.db.session import SerialSession, tenant_session
from banxway.schema.ids import local_id
from banxway.schema.messages import Message
from banxway.schema.nodes import Node
from banxway.schema.threads import Thread
from banxway.schema.users import User

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


# the payload key that names the event's subject → the loader that fetches it
_SUBJECT_KEYS = (
    ("message_id", "message_by_id"),
    ("note_id", "note_by_id"),
    ("action_id", "action_by_id"),
    ("customer_id", "customer_by_id"),
    ("kept_contact_id", "contact_by_id"),
    ("contact_id", "contact_by_id"),
    ("shipment_id", "shipment_by_id"),
    ("notification_id", "notification_by_id"),
)
# payload keys that list further objects the event changed → their loader
_RELATED_KEYS = (
    ("merged_contact_id", "contact_by_id"),
    ("thread_ids", "thread_by_id"),
    ("message_ids", "message_by_id"),
    ("notification_ids", "notification_by_id"),
)
_REPLAY_PAGE = 500


class EventObjects:
    """What recent events are about (thread, message, subject, actor), loaded once per process and
    shared by every subscriber of the organization, instead of once per subscriber. Read-only rows."""

    def __init__(self, state: Any, size: int = 512) -> None:
        self._state = state
        self._size = size
        self._entries: OrderedDict[int, asyncio.Future[dict[str, tuple[str, Any]]]] = OrderedDict()

    async def get(self, organization_id: uuid.UUID, row: dict[str, Any]) -> dict[str, tuple[str, Any]]:
        entry = self._entries.get(row["id"])
        if entry is None:
            entry = asyncio.get_running_loop().create_future()
            self._entries[row["id"]] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
            try:
                entry.set_result(await self._load(organization_id, row))
            except BaseException as exc:
                self._entries.pop(row["id"], None)
                entry.set_exception(exc)
                entry.exception()  # retrieved: the other waiters get it too
                raise
        return await asyncio.shield(entry)

    async def _load(self, organization_id: uuid.UUID, row: dict[str, Any]) -> dict[str, tuple[str, Any]]:
        payload = row["payload"]
        owner = uuid.UUID(payload["user_id"]) if payload.get("user_id") else uuid.UUID(int=0)
        db = SerialSession(tenant_session(self._state.sessionmaker, organization_id))
        try:
            loaders = Loaders(db, owner)  # a private event is only ever sent to its user
            thread = await loaders.thread_by_id.load(uuid.UUID(str(row["thread_id"]))) if row["thread_id"] else None
            message_id = payload.get("message_id")
            message = await loaders.message_by_id.load(uuid.UUID(message_id)) if message_id else None
            node: tuple[str, Any] = ("thread_by_id", thread)
            for key, loader_name in _SUBJECT_KEYS:
                if payload.get(key):
                    node = (loader_name, await getattr(loaders, loader_name).load(uuid.UUID(payload[key])))
                    break
            actor = await loaders.user_by_id.load(uuid.UUID(str(row["actor_id"]))) if row["actor_id"] else None
            related: list[tuple[str, Any]] = []
            for key, loader_name in _RELATED_KEYS:
                ids = payload.get(key) or []
                for obj in await getattr(loaders, loader_name).load_many(
                    [uuid.UUID(i) for i in (ids if isinstance(ids, list) else [ids])]
                ):
                    if obj is not None:
                        related.append((loader_name, obj))
        finally:
            await db.session.close()
        return {
            "thread": ("thread_by_id", thread),
            "message": ("message_by_id", message),
            "node": node,
            "actor": ("user_by_id", actor),
            "related": related,  # type: ignore[dict-item]
        }


def _objects(state: Any) -> EventObjects:
    objects = state.shared.get("event_objects")
    if objects is None:
        objects = state.shared["event_objects"] = EventObjects(state)
    return objects


async def _still_active(state: Any, user_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
    """Whether the user may still receive events; one query per user per second in a process, however
    many subscriptions they hold."""
    cache: dict[uuid.UUID, tuple[float, bool]] = state.shared.setdefault("active_users", {})
    checked = cache.get(user_id)
    if checked is None or time.monotonic() - checked[0] > _ACTIVE_CHECK_SECONDS:
        active = await authenticate_user(state, user_id, organization_id) is not None
        cache[user_id] = checked = (time.monotonic(), active)
    return checked[1]


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

    def visible(type_name: str, event_thread: Any, payload: dict[str, Any]) -> bool:
        if thread_id is not None and str(event_thread) != str(thread_id):
            return False
        if types is not None and type_name not in types:
            return False
        # read positions and notifications are private to their user
        return not (events.EVENT_TYPES[type_name].private and payload.get("user_id") != str(viewer.user_id))

    async def build(row: dict[str, Any]) -> InboxEvent:
        """The event with what it is about: loaded once per process (`EventObjects`), primed into this
        subscriber's loaders; the caller closes the session after the event is sent (`ctx.aclose()`)."""
        loaded = await _objects(state).get(organization_id, row)
        loaders = ctx.loaders
        related: list[tuple[str, Any]] = loaded["related"]  # type: ignore[assignment]
        singles = [value for name, value in loaded.items() if name != "related"]
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
            changed=payload.get("changed"),
            related=[obj for _, obj in related],
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
                    await ctx.aclose()  # hold no connection between events
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
                    if not await _still_active(state, viewer.user_id, organization_id):
                        raise GraphQLError("Your account is deactivated.", extensions={"code": "UNAUTHENTICATED"})
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
