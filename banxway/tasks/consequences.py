"""Committed event → background work. The relay calls `start` with the events it is dispatching, inside the
transaction that marks them dispatched: if enqueueing fails (Redis down) the dispatch rolls back and the sweeper
relays them again, so a crash or an outage between commit and enqueue loses nothing. Actors are idempotent, so
an event enqueued twice does no harm.

| event | when | actor |
|---|---|---|
| MESSAGE_ADDED | an outbound message waiting for delivery (QUEUED) | `deliver_message` |
| MESSAGE_ADDED | an inbound message with media to download | `fetch_message_media` |
| MESSAGE_UPDATED | a call's recording became available | `transcribe_call` |
| MESSAGE_UPDATED | a scheduled message's time was moved (`send_at`) | `rearm_release` |
| MESSAGE_STATUS_CHANGED | a scheduled message was released (`released`) | `deliver_message` |
| MESSAGE_ADDED | an inbound message (not an internal one) | `analyse_message` |
| MESSAGE_ADDED | a message on a customer channel (not internal, not a call), in an organization with an enabled AI agent: it may answer an inbound one; a person's reply suspends it | `run_ai_agent` |
| COMPOSE_STARTED | someone asked for AI drafts | `stream_compose` |
| AGENT_TASK_CREATED | someone asked an external agent's tool to work on a thread | `run_agent_task` |
| INVITATION_CREATED | an admin invited someone (userInvite) | `send_invitation` |
| NOTIFICATION_CREATED | its user asked for its type by email (`email`) | `send_notification_email` |
| DOCUMENT_ADDED | a document was filed on a shipment | `extract_document_text` |
| the types of workflow_engine.TRIGGER_EVENTS | in an organization with an active workflow or a waiting instance | `start_workflows` |
| WEBHOOK_DELIVERIES_QUEUED | an admin retried a webhook delivery or replayed an endpoint | `send_webhook_deliveries` |
| any public type | in an organization with an enabled webhook endpoint subscribed to it | `deliver_webhooks` |
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import dramatiq

from banxway.enums import Channel, Direction, MessageStatus
from banxway.events import (
    AgentTaskCreated,
    ComposeStarted,
    DocumentAdded,
    InvitationCreated,
    MessageAdded,
    MessageStatusChanged,
    MessageUpdated,
    NotificationCreated,
    WebhookDeliveriesQueued,
)
from banxway.resolvers.relay_needs import organization_facts
from banxway.resolvers.webhook_endpoints import subscribable_types, webhook_event_ids
from banxway.resolvers.workflow_engine import TRIGGER_EVENTS
from banxway.settings import Settings
from banxway.state import AppState, new_state
from banxway.tasks import actors

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.db.models import Event

DELIVERED_CHANNELS = {Channel.EMAIL.name, Channel.WHATSAPP.name, Channel.SMS.name, Channel.VOICE.name}
DELIVERED_CHANNELS |= {Channel.MESSENGER.name, Channel.INSTAGRAM.name}  # through the Meta Send API
DELIVERED_CHANNELS.add(Channel.WEB_CHAT.name)  # the web chat "sender" marks it SENT (resolvers.web_chat)


def _to_deliver(payload: dict[str, Any]) -> bool:
    return (
        payload.get("direction") == Direction.OUTBOUND.name
        and payload.get("status") == MessageStatus.QUEUED.name
        and payload.get("channel") in DELIVERED_CHANNELS
    )


def _with_media(payload: dict[str, Any]) -> bool:
    return payload.get("direction") == Direction.INBOUND.name and bool(payload.get("media"))


def _inbound(payload: dict[str, Any]) -> bool:
    return payload.get("direction") == Direction.INBOUND.name and payload.get("channel") != Channel.INTERNAL.name


def _for_ai_agent(payload: dict[str, Any]) -> bool:
    return payload.get("channel") not in (None, Channel.INTERNAL.name, Channel.VOICE.name)


def _always(payload: dict[str, Any]) -> bool:
    return True


def _released(payload: dict[str, Any]) -> bool:
    return bool(payload.get("released"))


def _recorded(payload: dict[str, Any]) -> bool:
    return "recording" in (payload.get("changed") or [])


def _rescheduled(payload: dict[str, Any]) -> bool:
    return "send_at" in (payload.get("changed") or [])


def _by_email(payload: dict[str, Any]) -> bool:
    return bool(payload.get("email"))


# (event type, condition on its payload, actor, the payload key of the id the actor is given)
RULES: list[tuple[str, Callable[[dict[str, Any]], bool], dramatiq.Actor, str]] = [
    (MessageAdded.type, _to_deliver, actors.deliver_message, "message_id"),
    (MessageAdded.type, _with_media, actors.fetch_message_media, "message_id"),
    (MessageAdded.type, _inbound, actors.analyse_message, "message_id"),
    (MessageUpdated.type, _recorded, actors.transcribe_call, "message_id"),
    (MessageUpdated.type, _rescheduled, actors.rearm_release, "message_id"),
    (MessageStatusChanged.type, _released, actors.deliver_message, "message_id"),
    (ComposeStarted.type, _always, actors.stream_compose, "session_id"),
    (AgentTaskCreated.type, _always, actors.run_agent_task, "task_id"),
    (WebhookDeliveriesQueued.type, _always, actors.send_webhook_deliveries, "webhook_endpoint_id"),
    (InvitationCreated.type, _always, actors.send_invitation, "invitation_id"),
    (NotificationCreated.type, _by_email, actors.send_notification_email, "notification_id"),
    (DocumentAdded.type, _always, actors.extract_document_text, "document_id"),
]


def jobs(rows: Sequence[Event]) -> list[tuple[dramatiq.Actor, str]]:
    """The (actor, id) each event calls for, in event order."""
    return [
        (actor, str(row.payload[key]))
        for row in rows
        for event_type, condition, actor, key in RULES
        if row.type == event_type and condition(row.payload)
    ]


async def start(session: AsyncSession, rows: Sequence[Event]) -> None:
    """Enqueue the work the events call for (`session`: the dispatching transaction's); raises when the broker
    cannot be reached."""
    found: list[tuple[dramatiq.Actor, str | int]] = list(jobs(rows))
    triggers = [row for row in rows if row.type in TRIGGER_EVENTS]
    for_agents = [row for row in rows if row.type == MessageAdded.type and _for_ai_agent(row.payload)]
    sendable = set(subscribable_types())
    to_send = [row for row in rows if row.type in sendable]
    facts = await organization_facts(
        session,
        {row.organization_id for row in (*triggers, *for_agents, *to_send)},
        workflows=bool(triggers),
        agents=bool(for_agents),
        webhooks=bool(to_send),
    )
    found += [(actors.start_workflows, row.id) for row in triggers if facts[row.organization_id].automated]
    found += [
        (actors.run_ai_agent, str(row.payload["message_id"]))
        for row in for_agents
        if facts[row.organization_id].has_agent
    ]
    subscribed = {organization: fact.webhook_types for organization, fact in facts.items()}
    found += [(actors.deliver_webhooks, event_id) for event_id in webhook_event_ids(to_send, subscribed)]
    if not found:
        return

    def send_all() -> None:
        for actor, argument in found:
            actor.send(argument)

    await asyncio.to_thread(send_all)


def new_worker_state(settings: Settings) -> AppState:
    """A worker's state (its own engine, fewer connections); events it records start their consequences too."""
    return new_state(settings, consequences=start, pool_size=5, max_overflow=5)
