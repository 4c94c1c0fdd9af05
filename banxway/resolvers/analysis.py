"""Message analysis: every inbound message is read by the built-in rules (banxway.extraction: language, sentiment,
intent, freight entities with their spans), optionally with an LLM on top (BANXWAY_ANALYSIS_MODEL), and the thread
follows: its intent and sentiment are those of the customer's latest analysed message, and a message naming a known
shipment's container, BL, AWB or booking number links the thread to that shipment — unless the thread is already
linked to another, or the numbers name several shipments: then it is a suggestion for a person to take or leave.

Started by the `analyse_message` actor from the MESSAGE_ADDED event of an inbound message; idempotent (a message
is analysed once; a redelivered job finds its analysis and stops).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from banxway import extraction
from banxway.auth import Permission
from banxway.db.models import Message, MessageAnalysis, Shipment, ShipmentSuggestion, Thread
from banxway.enums import Direction, EntityKind
from banxway.errors import DomainError
from banxway.events import AnalysisCompleted, ThreadUpdated
from banxway.integrations import ai
from banxway.logs import get_logger
from banxway.resolvers import ai_budget, threads
from banxway.resolvers.common import get_or_error

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext
    from banxway.settings import Settings

log = get_logger("banxway.analysis")

# the entities that name one shipment, and the shipment column that holds each
LINKING_KINDS = (EntityKind.CONTAINER, EntityKind.BILL_OF_LADING, EntityKind.AWB, EntityKind.BOOKING)


def _normalised(column: Any) -> ColumnElement[str]:
    return func.upper(func.regexp_replace(column, "[^A-Za-z0-9]", "", "g"))


def _compact(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


async def _llm_merge(settings: Settings, message: Message, rules: extraction.Analysis) -> tuple[Any, int]:
    """The rules' analysis with the LLM's on top (when configured), and the tokens the LLM spent."""
    if not (settings.analysis_model and settings.openai_api_key):
        return rules, 0
    try:
        answer = await ai.extract_with_llm(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=settings.analysis_model,
            subject=message.subject,
            body=message.body or "",
        )
    except ai.AIError as exc:
        if exc.transient:
            raise  # the actor retries; the rules alone would lose what the model adds
        log.warning("LLM analysis refused; rules only", message_id=str(message.id), error=exc.detail)
        return rules, 0
    merged = extraction.merge(
        rules,
        body=message.body or "",
        subject=message.subject,
        language=answer.language,
        sentiment=answer.sentiment,
        sentiment_score=answer.sentiment_score,
        intent=answer.intent,
        entities=[(entity.kind, entity.text) for entity in answer.entities],
    )
    return merged, answer.usage.prompt_tokens + answer.usage.completion_tokens


def analyser_name(settings: Settings) -> str:
    if settings.analysis_model and settings.openai_api_key:
        return f"{extraction.ANALYSER_VERSION}+{settings.analysis_model}"
    return extraction.ANALYSER_VERSION


async def analyse_message(ctx: SystemContext, message_id: uuid.UUID) -> MessageAnalysis | None:
    """Analyse an inbound message once; None for a message that is gone, outbound, or analysed already."""
    async with ctx.session() as session:
        message = await session.get(Message, message_id)
        known = await session.scalar(select(MessageAnalysis.message_id).where(MessageAnalysis.message_id == message_id))
    if message is None or message.direction != Direction.INBOUND or known is not None:
        return None
    settings = ctx.settings
    rules = extraction.analyse(message.body or "", message.subject, reference_date=message.created_at.date())
    result, spent = await _llm_merge(settings, message, rules)
    org = ctx.for_organization(message.organization_id)
    async with org.transaction() as session:
        thread = await session.scalar(select(Thread).where(Thread.id == message.thread_id).with_for_update())
        if thread is None:
            return None
        inserted = await session.scalar(
            insert(MessageAnalysis)
            .values(
                organization_id=message.organization_id,
                message_id=message.id,
                thread_id=thread.id,
                language=result.language,
                sentiment=result.sentiment,
                sentiment_score=result.sentiment_score,
                intent=result.intent,
                intent_confidence=result.intent_confidence,
                entities=[_entity_json(entity) for entity in result.entities],
                analyser=analyser_name(settings),
            )
            .on_conflict_do_nothing(index_elements=[MessageAnalysis.message_id])
            .returning(MessageAnalysis)
        )
        if inserted is None:
            return None  # a concurrent delivery got there first
        if spent:
            await ai_budget.charge(session, message.organization_id, spent, datetime.now(UTC))
        await _follow(org, session, thread, message, result)
        await _link(org, session, thread, message, result.entities)
        org.record(
            session,
            AnalysisCompleted(
                thread_id=thread.id,
                message_id=message.id,
                intent=result.intent.name,
                sentiment=result.sentiment.name,
                entities=len(result.entities),
            ),
        )
    return inserted


def _entity_json(entity: extraction.Entity) -> dict[str, Any]:
    return {
        "kind": entity.kind.name,
        "value": entity.value,
        "text": entity.text,
        "source": entity.source,
        "start": entity.start,
        "end": entity.end,
    }


async def _follow(
    ctx: SystemContext, session: AsyncSession, thread: Thread, message: Message, result: extraction.Analysis
) -> None:
    """The thread's intent and sentiment become the message's, unless a later inbound message was analysed or the
    message has no text (a photo says nothing of what the customer wants)."""
    if not (message.body or "").strip() and not (message.subject or "").strip():
        return
    later = await session.scalar(
        select(func.count())
        .select_from(MessageAnalysis)
        .join(Message, Message.id == MessageAnalysis.message_id)
        .where(
            MessageAnalysis.thread_id == thread.id,
            Message.id != message.id,
            tuple_(Message.created_at, Message.id) > tuple_(literal(message.created_at), literal(message.id)),
        )
    )
    if later:
        return
    changed = [
        name
        for name, value in (("intent", result.intent), ("sentiment", result.sentiment))
        if getattr(thread, name) != value
    ]
    if changed:
        thread.intent, thread.sentiment = result.intent, result.sentiment
        ctx.record(session, ThreadUpdated(thread_id=thread.id, changed=changed))


async def _link(
    ctx: SystemContext,
    session: AsyncSession,
    thread: Thread,
    message: Message,
    entities: tuple[extraction.Entity, ...],
) -> None:
    """Link the thread to the one shipment the message's numbers name; otherwise suggest what they name."""
    wanted: dict[EntityKind, set[str]] = {kind: set() for kind in LINKING_KINDS}
    for entity in entities:
        if entity.kind in wanted:
            wanted[entity.kind].add(_compact(entity.value))
    if not any(wanted.values()):
        return
    conditions = []
    if wanted[EntityKind.CONTAINER]:
        conditions.append(Shipment.container_numbers.overlap(sorted(wanted[EntityKind.CONTAINER])))
    if wanted[EntityKind.BILL_OF_LADING]:
        conditions.append(_normalised(Shipment.bl_number).in_(sorted(wanted[EntityKind.BILL_OF_LADING])))
    if wanted[EntityKind.AWB]:
        conditions.append(_normalised(Shipment.awb_number).in_(sorted(wanted[EntityKind.AWB])))
    if wanted[EntityKind.BOOKING]:
        conditions.append(_normalised(Shipment.booking_number).in_(sorted(wanted[EntityKind.BOOKING])))
    shipments = list(await session.scalars(select(Shipment).where(or_(*conditions)).order_by(Shipment.reference)))
    if not shipments:
        return
    evidence = {shipment.id: _evidence(shipment, wanted) for shipment in shipments}
    if len(shipments) == 1 and thread.shipment_id is None:
        shipment = shipments[0]
        found = ", ".join(f"{kind} {value}" for kind, value in evidence[shipment.id])
        await threads.update_thread(
            ctx, session, thread, {"shipment_id": shipment.id}, evidence=f"{found} in message {message.id}"
        )
        return
    suggested = [shipment for shipment in shipments if shipment.id != thread.shipment_id]
    if not suggested:
        return
    added = await session.scalars(
        insert(ShipmentSuggestion)
        .values(
            [
                {
                    "organization_id": thread.organization_id,
                    "thread_id": thread.id,
                    "shipment_id": shipment.id,
                    "message_id": message.id,
                    "evidence": [{"kind": kind, "value": value} for kind, value in evidence[shipment.id]],
                }
                for shipment in suggested
            ]
        )
        .on_conflict_do_nothing(index_elements=[ShipmentSuggestion.thread_id, ShipmentSuggestion.shipment_id])
        .returning(ShipmentSuggestion.id)
    )
    if list(added):
        why = "several shipments match" if len(shipments) > 1 else "the thread is linked to another shipment"
        ctx.record(
            session,
            ThreadUpdated(
                thread_id=thread.id, changed=["shipment_suggestions"], evidence=f"{why}, in message {message.id}"
            ),
        )


def _evidence(shipment: Shipment, wanted: dict[EntityKind, set[str]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for number in shipment.container_numbers:
        if _compact(number) in wanted[EntityKind.CONTAINER]:
            found.append((EntityKind.CONTAINER.name, number))
    for kind, value in (
        (EntityKind.BILL_OF_LADING, shipment.bl_number),
        (EntityKind.AWB, shipment.awb_number),
        (EntityKind.BOOKING, shipment.booking_number),
    ):
        if value and _compact(value) in wanted[kind]:
            found.append((kind.name, value))
    return found


async def suggestion_dismiss(ctx: Context, suggestion_id: uuid.UUID | None) -> Thread:
    """Leave a shipment suggestion: it disappears from the thread (THREAD_UPDATED)."""
    ctx.require(Permission.THREAD_CREATE)
    async with ctx.transaction() as session:
        suggestion = await get_or_error(
            session, ShipmentSuggestion, suggestion_id, "suggestionId", lock=True, label="suggestion"
        )
        thread = await get_or_error(session, Thread, suggestion.thread_id, "suggestionId", lock=True, label="thread")
        if suggestion.resolved_at is None:
            suggestion.resolved_at = datetime.now(UTC)
            ctx.record(session, ThreadUpdated(thread_id=thread.id, changed=["shipment_suggestions"]))
    return thread


async def suggestion_accept(ctx: Context, suggestion_id: uuid.UUID | None) -> Thread:
    """Take a shipment suggestion: the thread is linked to its shipment (through the thread update's write path);
    the thread's other suggestions are resolved with it."""
    ctx.require(Permission.THREAD_CREATE)
    async with ctx.transaction() as session:
        suggestion = await get_or_error(
            session, ShipmentSuggestion, suggestion_id, "suggestionId", lock=True, label="suggestion"
        )
        if suggestion.resolved_at is not None:
            raise DomainError("INVALID", "That suggestion was already taken or left.", "suggestionId")
        thread = await get_or_error(session, Thread, suggestion.thread_id, "suggestionId", lock=True, label="thread")
        await threads.update_thread(ctx, session, thread, {"shipment_id": suggestion.shipment_id})
        now = datetime.now(UTC)
        for other in await session.scalars(
            select(ShipmentSuggestion).where(
                ShipmentSuggestion.thread_id == thread.id, ShipmentSuggestion.resolved_at.is_(None)
            )
        ):
            other.resolved_at = now
    return thread
