"""THE event registry: one pydantic model per event type, and the outbox write.

A resolver calls `record(session, event, ...)` inside the transaction of its
change, so an event exists exactly when its change was committed. Publishing
(relay to Redis after commit, the sweeper, replay for subscriptions) builds on
the `events` table; nothing else invents event names.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.db.models import Event as EventRow


class DomainEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ClassVar[str]


class ThreadEvent(DomainEvent):
    thread_id: uuid.UUID


class ThreadCreated(ThreadEvent):
    type = "THREAD_CREATED"


class ThreadUpdated(ThreadEvent):
    type = "THREAD_UPDATED"
    changed: list[str]


class ThreadAssigned(ThreadEvent):
    type = "THREAD_ASSIGNED"
    assignee_id: uuid.UUID | None
    previous_assignee_id: uuid.UUID | None


class ThreadArchived(ThreadEvent):
    type = "THREAD_ARCHIVED"


class ThreadRead(ThreadEvent):
    type = "THREAD_READ"
    user_id: uuid.UUID


class MessageAdded(ThreadEvent):
    type = "MESSAGE_ADDED"
    message_id: uuid.UUID


class MessageStatusChanged(ThreadEvent):
    type = "MESSAGE_STATUS_CHANGED"
    message_id: uuid.UUID
    status: str


class NoteAdded(ThreadEvent):
    type = "NOTE_ADDED"
    note_id: uuid.UUID
    mentioned_user_ids: list[uuid.UUID]


class ActionCreated(ThreadEvent):
    type = "ACTION_CREATED"
    action_id: uuid.UUID


class ActionUpdated(ThreadEvent):
    type = "ACTION_UPDATED"
    action_id: uuid.UUID
    changed: list[str]


class CustomerCreated(DomainEvent):
    type = "CUSTOMER_CREATED"
    customer_id: uuid.UUID


class CustomerUpdated(DomainEvent):
    type = "CUSTOMER_UPDATED"
    customer_id: uuid.UUID
    changed: list[str]


class ContactCreated(DomainEvent):
    type = "CONTACT_CREATED"
    contact_id: uuid.UUID


class ContactUpdated(DomainEvent):
    type = "CONTACT_UPDATED"
    contact_id: uuid.UUID
    changed: list[str]


class ContactMerged(DomainEvent):
    type = "CONTACT_MERGED"
    merge_id: uuid.UUID
    kept_contact_id: uuid.UUID
    merged_contact_id: uuid.UUID
    thread_ids: list[uuid.UUID]


class ContactUnmerged(DomainEvent):
    type = "CONTACT_UNMERGED"
    merge_id: uuid.UUID
    kept_contact_id: uuid.UUID
    merged_contact_id: uuid.UUID
    thread_ids: list[uuid.UUID]


class ShipmentCreated(DomainEvent):
    type = "SHIPMENT_CREATED"
    shipment_id: uuid.UUID


class ShipmentUpdated(DomainEvent):
    type = "SHIPMENT_UPDATED"
    shipment_id: uuid.UUID
    changed: list[str]


class ShipmentMilestoneAdded(DomainEvent):
    type = "SHIPMENT_MILESTONE_ADDED"
    shipment_id: uuid.UUID
    milestone_id: uuid.UUID


def _registry() -> dict[str, type[DomainEvent]]:
    found: dict[str, type[DomainEvent]] = {}
    pending = list(DomainEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "type" in cls.__dict__:
            assert cls.type not in found, f"duplicate event type {cls.type}"
            found[cls.type] = cls
    return found


EVENT_TYPES: dict[str, type[DomainEvent]] = _registry()


def record(
    session: AsyncSession, event: DomainEvent, *, organization_id: uuid.UUID, actor_id: uuid.UUID | None
) -> None:
    """Append `event` to the outbox in the session's current transaction."""
    session.add(
        EventRow(
            organization_id=organization_id,
            type=event.type,
            thread_id=getattr(event, "thread_id", None),
            actor_id=actor_id,
            payload=event.model_dump(mode="json"),
        )
    )


def parse(type_name: str, payload: dict[str, Any]) -> DomainEvent:
    """An event read back from the log."""
    return EVENT_TYPES[type_name].model_validate(payload)
