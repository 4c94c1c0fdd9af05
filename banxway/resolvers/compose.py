"""AI drafts of a reply (compose): a session per request, streamed by the `stream_compose` actor into Redis, read
by the `composeStream` subscription and by `GET /compose/{id}/stream` (Server-Sent Events); feedback on what the
agent finally sent, and the figures a team judges the drafts by.

The streamed text is ephemeral: a Redis stream per session (`banxway:compose:<id>`, kept 10 minutes), never the
database. The finished drafts are stored on the session so that feedback can measure the agent's edits. Nothing is
ever sent by this module: a draft becomes a message only through messageSend, by a person.

The session's life: PENDING (composeStart) → STREAMING (the actor claimed it) → DONE | FAILED | CANCELLED. Readers
stop at the first terminal entry; a cancel (composeCancel, or a reader that goes away before the end) sets a flag
the actor looks at every 0.2 s, so the upstream request stops within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.auth import Permission
from banxway.db.models import (
    Action,
    ComposeSession,
    Contact,
    Customer,
    EmailAccount,
    Message,
    Organization,
    Shipment,
    ShipmentMilestone,
    Thread,
    User,
)
from banxway.enums import ActionStatus, Channel, ComposeTone, Direction, MessageStatus
from banxway.errors import DomainError
from banxway.events import ComposeStarted
from banxway.integrations import ai
from banxway.logs import get_logger
from banxway.resolvers import ai_budget
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.sla import organization_calendar

if TYPE_CHECKING:
    from banxway.context import Context, SystemContext
    from banxway.settings import Settings

log = get_logger("banxway.compose")

ACTIVE = ("PENDING", "STREAMING")
STREAM_TTL_SECONDS = 600
CANCEL_POLL_SECONDS = 0.2
# a reader gives up on a session whose actor wrote nothing for this long (a worker that died mid-stream)
IDLE_SECONDS = 60.0
MAX_INSTRUCTIONS = 2_000
MAX_HISTORY_MESSAGES = 50
# the messages a draft's context leaves out: not (yet) said to the customer
_UNSAID = (MessageStatus.SCHEDULED, MessageStatus.CANCELLED, MessageStatus.FAILED)


def stream_key(session_id: uuid.UUID) -> str:
    return f"banxway:compose:{session_id}"


def cancel_key(session_id: uuid.UUID) -> str:
    return f"banxway:compose:{session_id}:cancel"


# -- what readers receive -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    variant: int
    text: str


@dataclass(frozen=True, slots=True)
class DoneEvent:
    variants: list[str]
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: str
    message: str


ComposeEvent = DeltaEvent | DoneEvent | ErrorEvent


def _entry(event: ComposeEvent) -> dict[str, bytes]:
    if isinstance(event, DeltaEvent):
        body: dict[str, Any] = {"t": "delta", "v": event.variant, "x": event.text}
    elif isinstance(event, DoneEvent):
        body = {"t": "done", "variants": event.variants, "p": event.prompt_tokens, "c": event.completion_tokens}
    else:
        body = {"t": "error", "code": event.code, "message": event.message}
    return {"e": orjson.dumps(body)}


def _event(fields: dict[bytes, bytes]) -> ComposeEvent:
    body = orjson.loads(fields[b"e"])
    if body["t"] == "delta":
        return DeltaEvent(body["v"], body["x"])
    if body["t"] == "done":
        return DoneEvent(body["variants"], body["p"], body["c"])
    return ErrorEvent(body["code"], body["message"])


# -- composeStart ------------------------------------------------------------------------------------------------


async def compose_start(
    ctx: Context,
    *,
    thread_id: uuid.UUID | None,
    instructions: str | None = None,
    tone: ComposeTone = ComposeTone.FRIENDLY,
    variants: int = 1,
    channel: Channel | None = None,
) -> ComposeSession:
    """A new compose session for a reply on the thread; the drafts stream once the actor picks it up (from the
    COMPOSE_STARTED event). Needs MESSAGE_SEND: who may not reply may not draft."""
    viewer = ctx.require(Permission.MESSAGE_DRAFT)
    if not 1 <= variants <= 3:
        raise DomainError("INVALID", "Ask for 1 to 3 variants.", "variants")
    clean = v.text(instructions, "instructions", max_length=MAX_INSTRUCTIONS) or ""
    if channel == Channel.INTERNAL:
        raise DomainError("INVALID", "A draft is for the customer: pick a customer channel.", "channel")
    settings = ctx.settings
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        await ai_budget.check(session, settings, viewer.organization_id)
        row = ComposeSession(
            organization_id=viewer.organization_id,
            thread_id=thread.id,
            user_id=viewer.user_id,
            channel=channel or thread.primary_channel,
            tone=tone.value,
            instructions=clean,
            variants=variants,
            provider=settings.compose_model if ai_budget.uses_provider(settings) else "builtin",
            prompt_version=ai.COMPOSE_PROMPT_VERSION,
        )
        session.add(row)
        await session.flush()
        ctx.record(session, ComposeStarted(thread_id=thread.id, user_id=viewer.user_id, session_id=row.id))
    return row


async def _own_session(session: AsyncSession, viewer_id: uuid.UUID, session_id: uuid.UUID | None) -> ComposeSession:
    """The viewer's own session (another user's, or another organization's, is NOT_FOUND)."""
    row = await get_or_error(session, ComposeSession, session_id, "sessionId", label="compose session")
    if row.user_id != viewer_id:
        raise DomainError("NOT_FOUND", "No such compose session.", "sessionId")
    return row


async def compose_cancel(ctx: Context, session_id: uuid.UUID | None) -> ComposeSession:
    """Stop a session's drafting: the actor stops the upstream request within a second; readers get CANCELLED.
    A finished session stays as it is."""
    viewer = ctx.require(Permission.MESSAGE_DRAFT)
    async with ctx.transaction() as session:
        row = await _own_session(session, viewer.user_id, session_id)
        if row.status in ACTIVE:
            row.status, row.finished_at = "CANCELLED", datetime.now(UTC)
            row.error_code, row.error_message = "CANCELLED", "The draft was cancelled."
    if row.status == "CANCELLED":
        await _signal_cancel(ctx.redis, row.id)
    return row


async def _signal_cancel(redis: Any, session_id: uuid.UUID) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(cancel_key(session_id), b"1", ex=STREAM_TTL_SECONDS)
        pipe.xadd(stream_key(session_id), _entry(ErrorEvent("CANCELLED", "The draft was cancelled.")))
        pipe.expire(stream_key(session_id), STREAM_TTL_SECONDS)
        await pipe.execute()


# -- the actor: stream a session's drafts -----------------------------------------------------------------------


def _place(name: str | None, code: str | None) -> str | None:
    if name and code:
        return f"{name} ({code})"
    return name or code


async def build_context(session: AsyncSession, row: ComposeSession, settings: Settings) -> ai.ComposeContext:
    """Everything a draft may draw on, read in one session: the thread's history fitted to the token budget, the
    customer and contact, the linked shipment with its milestones, open actions, the signature."""
    thread = await session.get_one(Thread, row.thread_id)
    organization = await session.get_one(Organization, row.organization_id)
    agent = await session.get(User, row.user_id)
    calendar = await organization_calendar(session, row.organization_id)
    zone_name = calendar.timezone if calendar else organization.timezone
    zone = ZoneInfo(zone_name)
    contact = await session.get(Contact, thread.contact_id) if thread.contact_id else None
    customer = await session.get(Customer, thread.customer_id) if thread.customer_id else None
    messages = list(
        await session.scalars(
            select(Message)
            .where(
                Message.thread_id == thread.id,
                Message.channel != Channel.INTERNAL,
                Message.status.not_in(_UNSAID),
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(MAX_HISTORY_MESSAGES)
        )
    )
    messages.reverse()
    authors = {
        user.id: user.name
        for user in await session.scalars(
            select(User).where(User.id.in_({m.author_id for m in messages if m.author_id}))
        )
    }
    contact_name = contact.name if contact else None
    history = [
        ai.HistoryMessage(
            direction=m.direction,
            channel=m.channel,
            author=(contact_name or m.sender or "Customer")
            if m.direction == Direction.INBOUND
            else authors.get(m.author_id, "Agent"),  # type: ignore[arg-type]
            at=m.created_at.astimezone(zone),
            subject=m.subject,
            body=m.body or "",
        )
        for m in messages
    ]
    inbound = [m for m in messages if m.direction == Direction.INBOUND]
    shipment = await _shipment_facts(session, thread.shipment_id, zone) if thread.shipment_id else None
    actions = await session.scalars(
        select(Action)
        .where(Action.thread_id == thread.id, Action.status.in_((ActionStatus.OPEN, ActionStatus.IN_PROGRESS)))
        .order_by(Action.due_at.nulls_last(), Action.created_at)
        .limit(10)
    )
    open_actions = tuple(
        f"{a.title} (due {a.due_at.astimezone(zone):%Y-%m-%d %H:%M})" if a.due_at else a.title for a in actions
    )
    agent_name = agent.name if agent else "The team"
    signature = await _signature(session, messages, agent_name, organization.name, organization.signature)
    return ai.ComposeContext(
        organization_name=organization.name,
        signature=signature,
        agent_name=agent_name,
        thread_reference=thread.reference,
        thread_subject=thread.subject,
        channel=row.channel,
        contact_name=contact_name,
        preferred_channel=inbound[-1].channel if inbound else None,
        customer_name=customer.name if customer else None,
        history=ai.fit_history(history, settings.compose_history_tokens),
        shipment=shipment,
        open_actions=open_actions,
        instructions=row.instructions,
        tone=ComposeTone(row.tone),
        now=datetime.now(zone),
        timezone=zone_name,
    )


async def _signature(
    session: AsyncSession, messages: list[Message], agent_name: str, organization: str, default: str | None = None
) -> str:
    """The signature of the mailbox the thread's mail went through, else the organization's default signature
    (organizationUpdate), else the agent's name and the organization."""
    account_ids = [m.email_account_id for m in reversed(messages) if m.email_account_id]
    if account_ids:
        signature = await session.scalar(select(EmailAccount.signature).where(EmailAccount.id == account_ids[0]))
        if signature and signature.strip():
            return signature.strip()
    if default and default.strip():
        return default.strip()
    return f"{agent_name}\n{organization}"


async def _shipment_facts(session: AsyncSession, shipment_id: uuid.UUID, zone: ZoneInfo) -> ai.ShipmentFacts | None:
    shipment = await session.get(Shipment, shipment_id)
    if shipment is None:
        return None
    milestones = await session.scalars(
        select(ShipmentMilestone)
        .where(ShipmentMilestone.shipment_id == shipment.id)
        .order_by(
            func.coalesce(ShipmentMilestone.actual_at, ShipmentMilestone.planned_at).nulls_last(),
            ShipmentMilestone.created_at,
        )
    )

    def local(at: datetime | None) -> datetime | None:
        return at.astimezone(zone) if at else None

    return ai.ShipmentFacts(
        reference=shipment.reference,
        mode=shipment.mode.value,
        status=shipment.status.value,
        origin=_place(shipment.origin_name, shipment.origin_code),
        destination=_place(shipment.destination_name, shipment.destination_code),
        carrier=shipment.carrier,
        vessel=shipment.vessel,
        voyage=shipment.voyage,
        flight_number=shipment.flight_number,
        container_numbers=tuple(shipment.container_numbers),
        bl_number=shipment.bl_number,
        awb_number=shipment.awb_number,
        booking_number=shipment.booking_number,
        etd=local(shipment.etd),
        eta=local(shipment.eta),
        atd=local(shipment.atd),
        ata=local(shipment.ata),
        milestones=tuple(
            ai.MilestoneFact(
                type=m.type.value,
                planned_at=local(m.planned_at),
                actual_at=local(m.actual_at),
                location=_place(m.location_name, m.location_code),
                note=m.note,
            )
            for m in milestones
        ),
    )


def provider_for(settings: Settings) -> ai.ComposeProvider:
    return ai.compose_provider(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        model=settings.compose_model,
        word_delay=settings.compose_word_delay,
    )


async def stream_compose(ctx: SystemContext, session_id: uuid.UUID) -> str | None:
    """Stream the session's drafts into its Redis stream and record how it ended; the session's final status (None
    when it was not PENDING: finished, cancelled, or claimed by an earlier delivery of the actor)."""
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        row = await session.scalar(
            update(ComposeSession)
            .where(ComposeSession.id == session_id, ComposeSession.status == "PENDING")
            .values(status="STREAMING")
            .returning(ComposeSession)
        )
        if row is None:
            return None
    redis = ctx.state.redis
    key = stream_key(row.id)
    texts = [""] * row.variants
    usage = ai.ComposeUsage(0, 0)
    provider = provider_for(ctx.settings)

    async def consume() -> None:
        nonlocal usage
        async with ctx.for_organization(row.organization_id).session() as session:
            context = await build_context(session, row, ctx.settings)
        async for item in provider.stream(context, variants=row.variants):
            if isinstance(item, ai.ComposeUsage):
                usage = item
                continue
            if not 0 <= item.variant < row.variants or not item.text:
                continue
            first = not any(texts)
            texts[item.variant] += item.text
            await redis.xadd(key, _entry(DeltaEvent(item.variant, item.text)))
            if first:
                await redis.expire(key, STREAM_TTL_SECONDS)

    outcome: ComposeEvent
    task = asyncio.create_task(consume())
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL_SECONDS)
            if not done and await redis.exists(cancel_key(row.id)):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.info("compose cancelled", session_id=str(row.id))
                return "CANCELLED"
        task.result()
        outcome = DoneEvent(texts, usage.prompt_tokens, usage.completion_tokens)
    except ai.AIError as exc:
        outcome = ErrorEvent(exc.code, exc.detail)
    except Exception as exc:  # never a hung stream: whatever went wrong, the readers hear of it
        log.exception("compose failed", session_id=str(row.id))
        outcome = ErrorEvent("AI_UNAVAILABLE", f"The draft failed: {type(exc).__name__}")
    finally:
        if not task.done():
            task.cancel()
    status = await _finish(ctx, row, outcome, usage, now)
    await redis.xadd(key, _entry(outcome))
    await redis.expire(key, STREAM_TTL_SECONDS)
    return status


async def _finish(
    ctx: SystemContext, row: ComposeSession, outcome: ComposeEvent, usage: ai.ComposeUsage, started: datetime
) -> str:
    """Record the session's end (unless it was cancelled meanwhile) and charge the tokens to the month's meter."""
    status = "DONE" if isinstance(outcome, DoneEvent) else "FAILED"
    values: dict[str, Any] = {
        "status": status,
        "finished_at": datetime.now(UTC),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    }
    if isinstance(outcome, DoneEvent):
        values["drafts"] = outcome.variants
    else:
        values.update(error_code=outcome.code, error_message=outcome.message)  # type: ignore[union-attr]
    async with ctx.for_organization(row.organization_id).transaction() as session:
        finished = await session.scalar(
            update(ComposeSession)
            .where(ComposeSession.id == row.id, ComposeSession.status == "STREAMING")
            .values(**values)
            .returning(ComposeSession.status)
        )
        spent = usage.prompt_tokens + usage.completion_tokens
        if spent and row.provider != "builtin":
            await ai_budget.charge(session, row.organization_id, spent, started)
    return finished or "CANCELLED"


# -- readers: the subscription and the SSE endpoint -------------------------------------------------------------


async def compose_session_of(ctx: Context, session_id: uuid.UUID | None) -> ComposeSession:
    """The viewer's session, checked before a stream is opened (NOT_FOUND otherwise)."""
    viewer = ctx.require(Permission.MESSAGE_DRAFT)
    async with ctx.transaction() as session:
        return await _own_session(session, viewer.user_id, session_id)


async def compose_events(ctx: Context, row: ComposeSession) -> AsyncIterator[ComposeEvent]:
    """The session's events from its first token: deltas, then one DoneEvent or ErrorEvent. A reader that stops
    before the end (the client went away) cancels the drafting."""
    redis = ctx.redis
    key = stream_key(row.id)
    last = b"0-0"
    idle_since = asyncio.get_running_loop().time()
    finished = False
    try:
        while True:
            entries = await redis.xread({key: last}, count=200, block=1000)
            if entries:
                idle_since = asyncio.get_running_loop().time()
                for entry_id, fields in entries[0][1]:
                    last = entry_id
                    event = _event(fields)
                    yield event
                    if not isinstance(event, DeltaEvent):
                        finished = True
                        return
                continue
            stored = await _stored_end(ctx, row.id)
            if stored is not None:  # finished, and its stream expired (or never existed): the database remembers
                finished = True
                yield stored
                return
            if asyncio.get_running_loop().time() - idle_since > IDLE_SECONDS:
                finished = True
                yield ErrorEvent("AI_TIMEOUT", f"No word from the drafting for {IDLE_SECONDS:.0f} s; try again.")
                return
    finally:
        if not finished:
            with contextlib.suppress(Exception):
                await asyncio.shield(_reader_left(ctx, row.id))


async def _stored_end(ctx: Context, session_id: uuid.UUID) -> ComposeEvent | None:
    async with ctx.transaction() as session:
        row = await session.get(ComposeSession, session_id, populate_existing=True)
    if row is None or row.status in ACTIVE:
        return None
    if row.status == "DONE":
        return DoneEvent(list(row.drafts), row.prompt_tokens, row.completion_tokens)
    return ErrorEvent(row.error_code or row.status, row.error_message or "The draft did not finish.")


async def _reader_left(ctx: Context, session_id: uuid.UUID) -> None:
    """The client went away before the end: stop the drafting (nobody reads it)."""
    async with ctx.transaction() as session:
        cancelled = await session.scalar(
            update(ComposeSession)
            .where(ComposeSession.id == session_id, ComposeSession.status.in_(ACTIVE))
            .values(
                status="CANCELLED",
                finished_at=datetime.now(UTC),
                error_code="CANCELLED",
                error_message="The client went away.",
            )
            .returning(ComposeSession.id)
        )
    if cancelled:
        await _signal_cancel(ctx.redis, session_id)


async def compose_sessions(
    ctx: Context, *, thread_id: uuid.UUID | None = None, first: int = 20
) -> list[ComposeSession]:
    """The viewer's own compose sessions, newest first (on one thread when given): to show a thread's drafts
    again, or to reopen a stream after a reload."""
    viewer = ctx.require(Permission.MESSAGE_DRAFT)
    if not 1 <= first <= 100:
        raise DomainError("INVALID", "first must be between 1 and 100.", "first")
    query = select(ComposeSession).where(ComposeSession.user_id == viewer.user_id)
    if thread_id is not None:
        query = query.where(ComposeSession.thread_id == thread_id)
    rows = await ctx.db.scalars(query.order_by(ComposeSession.created_at.desc(), ComposeSession.id.desc()).limit(first))
    return list(rows)


# -- feedback and figures ---------------------------------------------------------------------------------------


async def compose_feedback(
    ctx: Context, *, session_id: uuid.UUID | None, variant: int, rating: str | None, final_text: str | None
) -> ComposeSession:
    """What the agent thought of a draft (UP/DOWN) and what they finally sent: the edit distance from the draft
    (Levenshtein, in characters) is kept. Given again, it replaces the earlier feedback."""
    viewer = ctx.require(Permission.MESSAGE_DRAFT)
    if rating not in (None, "UP", "DOWN"):
        raise DomainError("INVALID", "rating is UP or DOWN.", "rating")
    text = v.text(final_text, "finalText", max_length=100_000)
    async with ctx.transaction() as session:
        row = await _own_session(session, viewer.user_id, session_id)
        if row.status != "DONE":
            raise DomainError("INVALID", f"The session has no drafts to judge (it is {row.status}).", "sessionId")
        if not 0 <= variant < len(row.drafts):
            raise DomainError("INVALID", f"variant is 0 to {len(row.drafts) - 1}.", "variant")
        row.feedback_variant, row.feedback_rating = variant, rating
        row.final_text = text
        row.edit_distance = Levenshtein.distance(row.drafts[variant], text) if text is not None else None
        row.feedback_at = datetime.now(UTC)
    return row


@dataclass(frozen=True, slots=True)
class ComposeStats:
    sessions: int
    finished: int
    failed: int
    cancelled: int
    with_feedback: int
    accepted: int  # rated UP, or sent with under a fifth of the draft changed
    acceptance_rate: float | None
    mean_edit_distance: float | None
    mean_edit_ratio: float | None  # edit distance / draft length
    tokens: int


async def compose_stats(ctx: Context, *, start: datetime, end: datetime) -> ComposeStats:
    """The organization's compose figures for sessions started in [start, end): how often drafts were taken and
    how much agents changed them (READ; figures of everyone's sessions, no texts)."""
    ctx.require(Permission.READ)
    if end <= start:
        raise DomainError("INVALID", "The period ends before it starts.", "period.to")
    draft_length = func.greatest(func.length(func.array_to_string(ComposeSession.drafts, "")), 1)
    ratio = ComposeSession.edit_distance / draft_length
    accepted = (ComposeSession.feedback_rating == "UP") | (
        (ComposeSession.feedback_rating.is_(None)) & (ComposeSession.edit_distance.is_not(None)) & (ratio < 0.2)
    )
    statement = select(
        func.count(),
        func.count().filter(ComposeSession.status == "DONE"),
        func.count().filter(ComposeSession.status == "FAILED"),
        func.count().filter(ComposeSession.status == "CANCELLED"),
        func.count().filter(ComposeSession.feedback_at.is_not(None)),
        func.count().filter(ComposeSession.feedback_at.is_not(None) & accepted),
        func.avg(ComposeSession.edit_distance),
        func.avg(ratio),
        func.coalesce(func.sum(ComposeSession.prompt_tokens + ComposeSession.completion_tokens), 0),
    ).where(ComposeSession.created_at >= start, ComposeSession.created_at < end)
    async with ctx.transaction() as session:
        sessions, done, failed, cancelled, judged, taken, distance, edit_ratio, tokens = (
            await session.execute(statement)
        ).one()
    return ComposeStats(
        sessions=sessions,
        finished=done,
        failed=failed,
        cancelled=cancelled,
        with_feedback=judged,
        accepted=taken,
        acceptance_rate=taken / judged if judged else None,
        mean_edit_distance=float(distance) if distance is not None else None,
        mean_edit_ratio=float(edit_ratio) if edit_ratio is not None else None,
        tokens=int(tokens),
    )
