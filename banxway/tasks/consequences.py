"""Committed event → background work. The relay calls `start` with the events it is dispatching, inside the
transaction that marks them dispatched: if enqueueing fails (Redis down) the dispatch rolls back and the sweeper
relays them again, so a crash or an outage between commit and enqueue loses nothing. Actors are idempotent, so
an event enqueued twice does no harm.

| event | when | actor |
|---|---|---|
| MESSAGE_ADDED | an outbound message waiting for delivery (QUEUED) | `deliver_message` |
| MESSAGE_ADDED | an inbound message with media to download | `fetch_message_media` |
| MESSAGE_UPDATED | a call's recording became available | `transcribe_call` |
| MESSAGE_STATUS_CHANGED | a scheduled message was released (`released`) | `deliver_message` |
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import dramatiq

from banxway.enums import Channel, Direction, MessageStatus
from banxway.events import MessageAdded, MessageStatusChanged, MessageUpdated
from banxway.settings import Settings
from banxway.state import AppState, new_state
from banxway.tasks import actors

if TYPE_CHECKING:
    from banxway.db.models import Event

DELIVERED_CHANNELS = {Channel.EMAIL.name, Channel.WHATSAPP.name, Channel.SMS.name, Channel.VOICE.name}


def _to_deliver(payload: dict[str, Any]) -> bool:
    return (
        payload.get("direction") == Direction.OUTBOUND.name
        and payload.get("status") == MessageStatus.QUEUED.name
        and payload.get("channel") in DELIVERED_CHANNELS
    )


def _with_media(payload: dict[str, Any]) -> bool:
    return payload.get("direction") == Direction.INBOUND.name and bool(payload.get("media"))


def _released(payload: dict[str, Any]) -> bool:
    return bool(payload.get("released"))


def _recorded(payload: dict[str, Any]) -> bool:
    return "recording" in (payload.get("changed") or [])


# (event type, condition on its payload, actor given the event's message_id)
RULES: list[tuple[str, Callable[[dict[str, Any]], bool], dramatiq.Actor]] = [
    (MessageAdded.type, _to_deliver, actors.deliver_message),
    (MessageAdded.type, _with_media, actors.fetch_message_media),
    (MessageUpdated.type, _recorded, actors.transcribe_call),
    (MessageStatusChanged.type, _released, actors.deliver_message),
]


def jobs(rows: Sequence[Event]) -> list[tuple[dramatiq.Actor, str]]:
    """The (actor, message id) each event calls for, in event order."""
    return [
        (actor, str(row.payload["message_id"]))
        for row in rows
        for event_type, condition, actor in RULES
        if row.type == event_type and condition(row.payload)
    ]


async def start(rows: Sequence[Event]) -> None:
    """Enqueue the work the events call for; raises when the broker cannot be reached."""
    found = jobs(rows)
    if not found:
        return

    def send_all() -> None:
        for actor, message_id in found:
            actor.send(message_id)

    await asyncio.to_thread(send_all)


def new_worker_state(settings: Settings) -> AppState:
    """A worker's state (its own engine, fewer connections); events it records start their consequences too."""
    return new_state(settings, consequences=start, pool_size=5, max_overflow=5)
