"""The reads behind the `inboxEvents` and `threadEvents` subscriptions: the event log after a position,
the current position, what an event is about (loaded once per process for all its subscribers), and
whether a subscriber may still receive events. They take the process state, not a request's context:
a subscription holds no session between events."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from banxway import events
from banxway.dataloaders import Loaders
from banxway.db.models import User
from banxway.db.session import SerialSession, system_session, tenant_session
from banxway.enums import Role
from banxway.state import AppState

# the payload key that names the event's subject → the loader that fetches it, and the subject's node type
_SUBJECT_KEYS = (
    ("document_id", "document_by_id", "Document"),  # before shipment_id and thread_id: a document's events are about it
    ("task_id", "agent_task_by_id", "AgentTask"),  # before note_id: AGENT_TASK_COMPLETED is about its task
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
    ("instance_id", "workflow_instance_by_id", "WorkflowInstance"),
    ("session_id", "compose_session_by_id", "ComposeSession"),
    ("invitation_id", "invitation_by_id", "Invitation"),
    ("webhook_endpoint_id", "webhook_endpoint_by_id", "WebhookEndpoint"),
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
    shared by every subscriber of the organization, instead of once per subscriber. Read-only rows.

    `get_many` loads a burst of events together: one session, and one query per kind of object for all
    of them (the loaders batch the loads of one tick)."""

    def __init__(self, state: AppState, size: int = 512) -> None:
        self._state = state
        self._size = size
        self._entries: OrderedDict[int, asyncio.Future[dict[str, tuple[str, Any]]]] = OrderedDict()

    async def get_many(
        self, organization_id: uuid.UUID, rows: list[dict[str, Any]]
    ) -> list[dict[str, tuple[str, Any]]]:
        """What each of `rows` is about, in their order; those not loaded yet are loaded together."""
        loop = asyncio.get_running_loop()
        mine: dict[int, tuple[dict[str, Any], asyncio.Future[dict[str, tuple[str, Any]]]]] = {}
        for row in rows:
            if row["id"] not in self._entries and row["id"] not in mine:
                entry: asyncio.Future[dict[str, tuple[str, Any]]] = loop.create_future()
                self._entries[row["id"]] = entry
                mine[row["id"]] = (row, entry)
        waiting = {row["id"]: self._entries[row["id"]] for row in rows}  # before an eviction below
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        if mine:
            try:
                loaded = await self._load(organization_id, [row for row, _ in mine.values()])
            except BaseException as exc:
                for event_id, (_, entry) in mine.items():
                    if self._entries.get(event_id) is entry:
                        del self._entries[event_id]
                    entry.set_exception(exc)
                    entry.exception()  # retrieved: the other waiters get it too
                raise
            for (_, entry), objects in zip(mine.values(), loaded, strict=True):
                entry.set_result(objects)
        return [await asyncio.shield(waiting[row["id"]]) for row in rows]

    async def _load(self, organization_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[dict[str, tuple[str, Any]]]:
        """One session; one set of loaders per owner (a private event's objects are loaded as its user)."""
        db = SerialSession(tenant_session(self._state.sessionmaker, organization_id))
        try:
            loaders: dict[uuid.UUID, Loaders] = {}

            def owner(row: dict[str, Any]) -> Loaders:
                user_id = row["payload"].get("user_id")
                key = uuid.UUID(user_id) if user_id else uuid.UUID(int=0)  # a private event goes only to its user
                if key not in loaders:
                    loaders[key] = Loaders(db, key)
                return loaders[key]

            return list(await asyncio.gather(*(self._load_one(owner(row), row) for row in rows)))
        finally:
            await db.session.close()

    @staticmethod
    async def _load_one(loaders: Loaders, row: dict[str, Any]) -> dict[str, tuple[str, Any]]:
        payload = row["payload"]

        async def one(loader_name: str, key: Any) -> Any:
            return await getattr(loaders, loader_name).load(uuid.UUID(str(key))) if key else None

        node_key: tuple[str, str, Any] = ("thread_by_id", "Thread", row["thread_id"])
        subjects = (_SUBJECT_BY_TYPE[row["type"]],) if row["type"] in _SUBJECT_BY_TYPE else _SUBJECT_KEYS
        for key, loader_name, type_name in subjects:
            if payload.get(key):
                node_key = (loader_name, type_name, payload[key])
                break
        related_keys: list[tuple[str, Any]] = []
        for key, loader_name in _RELATED_KEYS:
            ids = payload.get(key) or []
            related_keys.extend((loader_name, i) for i in (ids if isinstance(ids, list) else [ids]))
        thread, message, node, actor, *related = await asyncio.gather(
            one("thread_by_id", row["thread_id"]),
            one("message_by_id", payload.get("message_id")),
            one(node_key[0], node_key[2]),
            one("user_by_id", row["actor_id"]),
            *(one(loader_name, i) for loader_name, i in related_keys),
        )
        return {
            "thread": ("thread_by_id", thread),
            "message": ("message_by_id", message),
            "node": (node_key[0], node),
            "node_id": to_global_id(node_key[1], node_key[2]) if node_key[2] else None,  # type: ignore[dict-item]
            "actor": ("user_by_id", actor),
            "related": [  # type: ignore[dict-item]
                (loader_name, obj)
                for (loader_name, _), obj in zip(related_keys, related, strict=True)
                if obj is not None
            ],
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


async def current_roles(
    state: AppState, organization_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[Role, int] | None]:
    """Each user's role and session version now, or None for one who may no longer receive events (deactivated,
    gone, or moved to another organization): the users of a whole channel in one query, once a second while
    events flow. A subscriber whose token carries another session version was signed out everywhere."""
    wanted = list(dict.fromkeys(user_ids))
    roles: dict[uuid.UUID, tuple[Role, int] | None] = dict.fromkeys(wanted)
    if wanted:
        async with system_session(state.sessionmaker) as session:
            rows = (
                await session.execute(
                    select(User.id, User.role, User.session_version, User.active, User.organization_id).where(
                        User.id.in_(wanted)
                    )
                )
            ).all()
        for user_id, role, version, active, user_organization in rows:
            roles[user_id] = (role, version) if active and user_organization == organization_id else None
    return roles


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
