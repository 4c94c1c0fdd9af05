"""The reads behind the `inboxEvents` and `threadEvents` subscriptions: the event log after a position,
the current position, what an event is about (loaded once per process for all its subscribers), and
whether a subscriber may still receive events. They take the process state, not a request's context:
a subscription holds no session between events."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import OrderedDict
from typing import Any

from banxway import events
from banxway.context import authenticate_user
from banxway.dataloaders import Loaders
from banxway.db.session import SerialSession, tenant_session
from banxway.enums import Role
from banxway.state import AppState

# the payload key that names the event's subject → the loader that fetches it, and the subject's node type
_SUBJECT_KEYS = (
    ("message_id", "message_by_id", "Message"),
    ("note_id", "note_by_id", "Note"),
    ("action_id", "action_by_id", "Action"),
    ("customer_id", "customer_by_id", "Customer"),
    ("kept_contact_id", "contact_by_id", "Contact"),
    ("contact_id", "contact_by_id", "Contact"),
    ("shipment_id", "shipment_by_id", "Shipment"),
    ("notification_id", "notification_by_id", "Notification"),
    ("integration_id", "integration_by_id", "Integration"),
    ("email_account_id", "email_account_by_id", "EmailAccount"),
)
# events whose subject is a user (elsewhere `user_id` names whom a private event is for, not its subject)
_USER_SUBJECT = ("user_id", "user_by_id", "User")
_SUBJECT_BY_TYPE = {events.UserCreated.type: _USER_SUBJECT, events.UserUpdated.type: _USER_SUBJECT}
# payload keys that list further objects the event changed → their loader
_RELATED_KEYS = (
    ("merged_contact_id", "contact_by_id"),
    ("thread_ids", "thread_by_id"),
    ("message_ids", "message_by_id"),
    ("notification_ids", "notification_by_id"),
)
REPLAY_PAGE = 500
ACTIVE_CHECK_SECONDS = 1.0


class EventObjects:
    """What recent events are about (thread, message, subject, actor), loaded once per process and
    shared by every subscriber of the organization, instead of once per subscriber. Read-only rows."""

    def __init__(self, state: AppState, size: int = 512) -> None:
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
            node_id = to_global_id("Thread", row["thread_id"]) if row["thread_id"] else None
            subjects = (_SUBJECT_BY_TYPE[row["type"]],) if row["type"] in _SUBJECT_BY_TYPE else _SUBJECT_KEYS
            for key, loader_name, type_name in subjects:
                if payload.get(key):
                    node = (loader_name, await getattr(loaders, loader_name).load(uuid.UUID(payload[key])))
                    node_id = to_global_id(type_name, payload[key])
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
            "node_id": node_id,  # type: ignore[dict-item]
            "actor": ("user_by_id", actor),
            "related": related,  # type: ignore[dict-item]
        }


def to_global_id(type_name: str, local_id: object) -> str:
    """base64("Type:uuid"), as banxway.schema.ids writes node ids (the schema layer is above this one)."""
    return base64.b64encode(f"{type_name}:{local_id}".encode()).decode()


def event_objects(state: AppState) -> EventObjects:
    """The process's `EventObjects` (in `state.shared`)."""
    objects = state.shared.get("event_objects")
    if objects is None:
        objects = state.shared["event_objects"] = EventObjects(state)
    return objects


async def current_role(state: AppState, user_id: uuid.UUID, organization_id: uuid.UUID) -> Role | None:
    """The user's role now (which administration events they may receive), None if they may no longer receive
    events; one query per user per second in a process, however many subscriptions they hold."""
    cache: dict[uuid.UUID, tuple[float, Role | None]] = state.shared.setdefault("active_users", {})
    checked = cache.get(user_id)
    if checked is None or time.monotonic() - checked[0] > ACTIVE_CHECK_SECONDS:
        user = await authenticate_user(state, user_id, organization_id)
        cache[user_id] = checked = (time.monotonic(), user.role if user is not None else None)
    return checked[1]


async def replay(
    state: AppState, organization_id: uuid.UUID, after_seq: int, thread_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    """The next `REPLAY_PAGE` events after `after_seq` (of one thread, if given), as the relay publishes them."""
    async with tenant_session(state.sessionmaker, organization_id) as session, session.begin():
        rows = await events.replay(session, organization_id, after_seq, thread_id=thread_id, limit=REPLAY_PAGE)
        return [events.envelope_fields(row) for row in rows]


async def position(state: AppState, organization_id: uuid.UUID) -> int:
    """The organization's latest event position: a new subscriber streams what comes after it."""
    async with tenant_session(state.sessionmaker, organization_id) as session, session.begin():
        return await events.position(session, organization_id)
