"""The AI agent: per organization, agents that answer customers' inbound messages from the knowledge base
(banxway.resolvers.knowledge) or hand the thread over to people; and the agents' administration.

`agent_handle_message` is run by the `run_ai_agent` actor from every MESSAGE_ADDED on a customer channel:

* **A person's reply** (an outbound message authored by a user, not by an agent or a workflow) suspends the agents
  on that thread for BANXWAY_AGENT_SUSPEND_MINUTES (`threads.bot_suspended_until`; `threadBotResume` lifts it).
* **An inbound message** on a channel an enabled agent answers, within its active hours, on a thread that has no
  assignee and is not suspended, is handled once (an `ai_agent_turns` row per message):
  1. *handover* when the intent (banxway.extraction's rules) is COMPLAINT, when the message names a handover keyword
     ("human", "agent", "person", ...), or when the agent already answered `max_turns` times on the thread;
  2. *tool*: a container, BL, AWB or booking number naming one of the organization's shipments is answered with
     that shipment's status and ETA; a message asking for a quote, a booking, documents, customs or an invoice sets
     the thread's type (when it is GENERAL) through the thread update's write path;
  3. *retrieval*: the best chunks; below the agent's `min_confidence`, handover ("low confidence"); else an answer:
     built-in, the best passage quoted with its source; with OPENAI_API_KEY, a generative answer grounded in the
     chunks (BANXWAY_AGENT_MODEL), citing them.
  An answer is sent through `message_send` on the message's channel, acting as the agent's `run_as` user (whoever
  last saved it) under the agent's name, with the idempotency key `aiagent:<message id>` — that key marks the
  message as the agent's (`Message.sentByAgent`) and makes a redelivered job send nothing twice.
  A handover assigns per the agent's handover team (its round-robin), or leaves the thread unassigned; notifies
  the assignee (or the team, or the admins when no one was assigned); adds an internal note saying why; creates an
  action "Reply to the customer"; and suspends the agent on the thread.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from banxway import events, extraction
from banxway.auth import Permission
from banxway.calendar import BusinessCalendar
from banxway.context import Context, Viewer
from banxway.db.models import AiAgent, AiAgentTurn, Message, Organization, Shipment, Team, TeamMember, Thread, User
from banxway.enums import Channel, Direction, EntityKind, Intent, NotificationType, Role, ThreadStatus, ThreadType
from banxway.errors import DomainError, PermissionDenied
from banxway.events import ThreadUpdated
from banxway.extraction.text import _joined, _new_part
from banxway.integrations.ai import AIError
from banxway.integrations.ai.knowledge import Passage, extractive_answer, generative_answer
from banxway.logs import get_logger
from banxway.resolvers import ai_budget, threads
from banxway.resolvers import validation as v
from banxway.resolvers.actions import create_action
from banxway.resolvers.analysis import LINKING_KINDS, _compact, _normalised
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.knowledge import hit_json, retrieve
from banxway.resolvers.messages import message_send
from banxway.resolvers.notes import add_note
from banxway.resolvers.notifications import notify
from banxway.resolvers.teams import Strategy, give_to_team

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import SystemContext


log = get_logger("banxway.ai_agent")

AGENT_KEY_PREFIX = "aiagent:"
MACHINE_KEY_PREFIXES = (AGENT_KEY_PREFIX, "workflow:")
TONES = ("FRIENDLY", "FORMAL", "CONCISE")
DEFAULT_KEYWORDS = ["human", "agent", "person", "representative", "someone", "real person", "talk to"]
# every customer channel but calls (EMAIL, WHATSAPP, SMS, WEB_CHAT, and Messenger/Instagram where present)
ANSWERED_CHANNELS = tuple(channel for channel in Channel if channel not in (Channel.INTERNAL, Channel.VOICE))
_TYPE_OF_INTENT = {
    Intent.QUOTE_REQUEST: ThreadType.QUOTE_REQUEST,
    Intent.BOOKING: ThreadType.BOOKING,
    Intent.TRACKING: ThreadType.SHIPMENT_UPDATE,
    Intent.DOCUMENTS: ThreadType.DOCUMENTATION,
    Intent.CUSTOMS: ThreadType.CUSTOMS,
    Intent.INVOICE: ThreadType.INVOICE,
}


def sent_by_agent(message: Message) -> bool:
    return (message.idempotency_key or "").startswith(AGENT_KEY_PREFIX)


# -- administration --------------------------------------------------------------------------------------------


def has_enabled_agent(organization_id: Any) -> ColumnElement[bool]:
    """Whether the organization (a column or value) has an enabled AI agent: its customer-channel messages are worth a
    `run_ai_agent` job (an inbound one may be answered, a person's reply suspends the agent)."""
    return select(AiAgent.id).where(AiAgent.organization_id == organization_id, AiAgent.enabled.is_(True)).exists()


async def ai_agents(ctx: Context) -> list[AiAgent]:
    ctx.require(Permission.ORG_MANAGE)
    return list(await ctx.db.scalars(select(AiAgent).order_by(AiAgent.name, AiAgent.id)))


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if name == "name":
            clean[name] = v.text(value, "name", max_length=100, required=True)
        elif name == "channels":
            channels = list(dict.fromkeys(value or []))
            for index, channel in enumerate(channels):
                if channel not in ANSWERED_CHANNELS:
                    raise DomainError("INVALID", f"An agent cannot answer on {channel.name}.", f"channels.{index}")
            clean[name] = [channel.name for channel in channels]
        elif name == "active_hours":
            clean[name] = BusinessCalendar.from_dict(value).to_dict() if value is not None else None
        elif name == "min_confidence":
            if value is None or not 0.0 <= value <= 1.0:
                raise DomainError("INVALID", "minConfidence must be between 0 and 1.", "minConfidence")
            clean[name] = value
        elif name == "handover_keywords":
            words = [" ".join(str(word).lower().split()) for word in value or []]
            if any(not word or len(word) > 50 for word in words) or len(words) > 50:
                raise DomainError("INVALID", "Up to 50 keywords of 1 to 50 characters.", "handoverKeywords")
            clean[name] = list(dict.fromkeys(words))
        elif name == "tone":
            if value not in TONES:
                raise DomainError("INVALID", f"tone must be one of {', '.join(TONES)}.", "tone")
            clean[name] = value
        elif name == "max_turns":
            if value is None or not 1 <= value <= 50:
                raise DomainError("INVALID", "maxTurns must be 1 to 50.", "maxTurns")
            clean[name] = value
        elif name == "enabled":
            clean[name] = bool(value)
        elif name == "handover_team_id":
            clean[name] = value
        else:  # pragma: no cover
            raise ValueError(name)
    return clean


def _public(agent: AiAgent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "enabled": agent.enabled,
        "channels": list(agent.channels),
        "active_hours": agent.active_hours,
        "min_confidence": agent.min_confidence,
        "handover_keywords": list(agent.handover_keywords),
        "tone": agent.tone,
        "max_turns": agent.max_turns,
        "handover_team_id": str(agent.handover_team_id) if agent.handover_team_id else None,
    }


async def _check_name(session: AsyncSession, name: str, agent_id: uuid.UUID | None) -> None:
    query = select(AiAgent.id).where(func.lower(AiAgent.name) == name.lower())
    if agent_id is not None:
        query = query.where(AiAgent.id != agent_id)
    if await session.scalar(query) is not None:
        raise DomainError("TAKEN", f"An agent named {name!r} exists already.", "name")


async def ai_agent_create(ctx: Context, values: dict[str, Any]) -> AiAgent:
    viewer = ctx.require(Permission.ORG_MANAGE)
    clean = _clean({"handover_keywords": DEFAULT_KEYWORDS, **values})
    async with ctx.transaction() as session:
        await _check_name(session, clean["name"], None)
        if clean.get("handover_team_id") is not None:
            await get_or_error(session, Team, clean["handover_team_id"], "handoverTeamId", label="team")
        agent = AiAgent(organization_id=viewer.organization_id, run_as_id=viewer.user_id, **clean)
        session.add(agent)
        await session.flush()
        await audit_change(
            ctx, session, action="aiAgentCreate", target=to_global_id("AiAgent", agent.id), after=_public(agent)
        )
    return agent


async def ai_agent_update(ctx: Context, agent_id: uuid.UUID | None, values: dict[str, Any]) -> AiAgent:
    viewer = ctx.require(Permission.ORG_MANAGE)
    clean = _clean(values)
    async with ctx.transaction() as session:
        agent = await get_or_error(session, AiAgent, agent_id, "id", lock=True, label="agent")
        if "name" in clean:
            await _check_name(session, clean["name"], agent.id)
        if clean.get("handover_team_id") is not None:
            await get_or_error(session, Team, clean["handover_team_id"], "handoverTeamId", label="team")
        before = _public(agent)
        for name, value in clean.items():
            setattr(agent, name, value)
        agent.run_as_id = viewer.user_id
        agent.updated_at = datetime.now(UTC)
        await session.flush()
        after = _public(agent)
        changed = [name for name in after if after[name] != before[name]]
        await audit_change(
            ctx,
            session,
            action="aiAgentUpdate",
            target=to_global_id("AiAgent", agent.id),
            before={name: before[name] for name in changed},
            after={name: after[name] for name in changed},
        )
    return agent


async def ai_agent_delete(ctx: Context, agent_id: uuid.UUID | None) -> uuid.UUID:
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        agent = await get_or_error(session, AiAgent, agent_id, "id", lock=True, label="agent")
        before = _public(agent)
        await session.delete(agent)
        await audit_change(
            ctx, session, action="aiAgentDelete", target=to_global_id("AiAgent", agent.id), before=before
        )
    return agent.id


async def thread_bot_resume(ctx: Context, thread_id: uuid.UUID | None) -> Thread:
    """Let the agents answer on the thread again (the suspension a person's reply or a handover started)."""
    ctx.require(Permission.MESSAGE_SEND)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        if thread.bot_suspended_until is not None:
            thread.bot_suspended_until = None
            ctx.record(session, ThreadUpdated(thread_id=thread.id, changed=["bot_suspended_until"]))
    return thread


# -- answering -------------------------------------------------------------------------------------------------


class AgentContext(Context):
    """The agent acting as its `run_as` user (that user's permissions), under the agent's name; the events it
    records have no actor, like a workflow's."""

    def record(self, session: AsyncSession, event: events.DomainEvent) -> None:
        events.record(session, event, organization_id=self.viewer.organization_id, actor_id=None)


@dataclass
class Decision:
    outcome: str  # ANSWERED, HANDED_OVER
    reason: str | None = None
    text: str | None = None
    confidence: float | None = None
    tokens: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    thread_type: ThreadType | None = None


def _wants_person(text: str, keywords: list[str]) -> str | None:
    lowered = text.lower()
    for keyword in keywords:
        if re.search(r"(?<!\w)" + re.escape(keyword) + r"(?!\w)", lowered):
            return keyword
    return None


def _in_hours(agent: AiAgent, now: datetime) -> bool:
    if not agent.active_hours:
        return True
    try:
        return BusinessCalendar.from_dict(agent.active_hours).is_open(now)
    except DomainError:
        return True


async def _shipment_answer(
    session: AsyncSession, analysis: extraction.Analysis, thread: Thread
) -> tuple[str, dict] | None:
    """The status and ETA of the one shipment the message's numbers name, among the shipments of the customer the
    thread is with (the session is the organization's): whoever writes a number — an anonymous web chat visitor
    too — learns nothing of another customer's shipment. A thread with no customer gets no shipment answer."""
    if thread.customer_id is None:
        return None
    wanted: dict[EntityKind, set[str]] = {kind: set() for kind in LINKING_KINDS}
    for entity in analysis.entities:
        if entity.kind in wanted:
            wanted[entity.kind].add(_compact(entity.value))
    if not any(wanted.values()):
        return None
    conditions = []
    if wanted[EntityKind.CONTAINER]:
        conditions.append(Shipment.container_numbers.overlap(sorted(wanted[EntityKind.CONTAINER])))
    for kind, column in (
        (EntityKind.BILL_OF_LADING, Shipment.bl_number),
        (EntityKind.AWB, Shipment.awb_number),
        (EntityKind.BOOKING, Shipment.booking_number),
    ):
        if wanted[kind]:
            conditions.append(_normalised(column).in_(sorted(wanted[kind])))
    shipments = list(
        await session.scalars(
            select(Shipment).where(Shipment.customer_id == thread.customer_id, or_(*conditions)).limit(2)
        )
    )
    if len(shipments) != 1:
        return None
    shipment = shipments[0]
    status = shipment.status.name.replace("_", " ").lower()
    arrival = (
        f"it arrived on {shipment.ata:%d %b %Y %H:%M} UTC"
        if shipment.ata
        else f"its ETA is {shipment.eta:%d %b %Y %H:%M} UTC"
        if shipment.eta
        else "its ETA is not known yet"
    )
    text = f"Shipment {shipment.reference} is {status}; {arrival}."
    return text, {"tool": "shipment_status", "shipment": shipment.reference, "status": shipment.status.name}


async def _decide(
    ctx: SystemContext, session: AsyncSession, agent: AiAgent, thread: Thread, message: Message, organization: str
) -> Decision:
    body = message.body or ""
    subject = re.sub(r"^\s*((re|fwd?|aw|wg)\s*:\s*)+", "", message.subject or "", flags=re.IGNORECASE)
    text = "\n".join(part for part in (subject, _joined(body, _new_part(body))) if part.strip())
    analysis = extraction.analyse(message.body or "", message.subject, reference_date=message.created_at.date())
    thread_type = _TYPE_OF_INTENT.get(analysis.intent) if thread.type == ThreadType.GENERAL else None
    tools: list[dict[str, Any]] = []
    if thread_type is not None:
        tools.append({"tool": "set_thread_type", "type": thread_type.name})
    if analysis.intent == Intent.COMPLAINT:
        return Decision("HANDED_OVER", "the customer complains", tools=tools, thread_type=thread_type)
    keyword = _wants_person(text, list(agent.handover_keywords))
    if keyword is not None:
        return Decision("HANDED_OVER", f"the customer asked for a person (“{keyword}”)", tools=tools)
    answered = await session.scalar(
        select(func.count())
        .select_from(AiAgentTurn)
        .where(AiAgentTurn.thread_id == thread.id, AiAgentTurn.outcome == "ANSWERED")
    )
    if (answered or 0) >= agent.max_turns:
        return Decision("HANDED_OVER", f"the agent answered {answered} times already (max turns)", tools=tools)
    found = await _shipment_answer(session, analysis, thread)
    if found is not None:
        answer, call = found
        return Decision("ANSWERED", text=answer, confidence=1.0, tools=[*tools, call], thread_type=thread_type)
    try:  # embeddings and generative answers spend the organization's monthly AI tokens
        await ai_budget.check(session, ctx.settings, thread.organization_id)
    except DomainError as exc:
        return Decision("HANDED_OVER", f"the AI budget is spent ({exc.code})", tools=tools, thread_type=thread_type)
    hits, spent = await retrieve(session, ctx.settings, text, 3)
    confidence = hits[0].confidence if hits else 0.0
    if not hits or confidence < agent.min_confidence:
        return Decision(
            "HANDED_OVER",
            f"low confidence ({confidence:.2f} < {agent.min_confidence:.2f}) in the knowledge base's answer",
            confidence=confidence,
            tokens=spent,
            tools=tools,
            thread_type=thread_type,
        )
    used = [hit for hit in hits if hit.confidence >= agent.min_confidence][:3]
    passages = [Passage(hit.source.title, hit.chunk.text, hit.source.url) for hit in used]
    settings = ctx.settings
    if settings.openai_api_key:
        try:
            answer = await generative_answer(
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                model=settings.agent_model or settings.compose_model,
                question=text,
                passages=passages,
                tone=agent.tone,
                organization=organization,
            )
        except AIError as exc:
            if exc.transient:
                raise  # the actor retries with back-off
            reason = f"the AI provider did not answer ({exc.code})"
            return Decision("HANDED_OVER", reason, confidence=confidence, tokens=spent, tools=tools)
    else:
        answer = extractive_answer(text, passages[:1], tone=agent.tone)
        used = used[:1]
    return Decision(
        "ANSWERED",
        text=answer.text,
        confidence=confidence,
        tokens=spent + answer.tokens,
        sources=[hit_json(hit) for hit in used],
        tools=tools,
        thread_type=thread_type,
    )


async def _agent_for(session: AsyncSession, channel: Channel, now: datetime) -> AiAgent | None:
    agents = await session.scalars(
        select(AiAgent)
        .where(AiAgent.enabled.is_(True), AiAgent.channels.contains([channel.name]))
        .order_by(AiAgent.name)
    )
    return next((agent for agent in agents if _in_hours(agent, now)), None)


async def _acting(ctx: SystemContext, session: AsyncSession, agent: AiAgent) -> AgentContext | None:
    user = await session.get(User, agent.run_as_id) if agent.run_as_id else None
    if user is None or not user.active:
        return None
    viewer = Viewer(user.id, user.organization_id, user.role, user.email, f"AI agent “{agent.name}”")
    return AgentContext(ctx.state, viewer_or_none=viewer)


async def _suspend(ctx: SystemContext, message: Message) -> str:
    org = ctx.for_organization(message.organization_id)
    async with org.transaction() as session:
        if await session.scalar(select(AiAgent.id).limit(1)) is None:
            return "NO_AGENT"
        thread = await session.scalar(select(Thread).where(Thread.id == message.thread_id).with_for_update())
        if thread is None:
            return "GONE"
        until = message.created_at + timedelta(minutes=ctx.settings.agent_suspend_minutes)
        if thread.bot_suspended_until is None or thread.bot_suspended_until < until:
            thread.bot_suspended_until = until
            org.record(
                session,
                ThreadUpdated(thread_id=thread.id, changed=["bot_suspended_until"], evidence=f"message {message.id}"),
            )
    return "SUSPENDED"


async def _save_turn(session: AsyncSession, agent: AiAgent, message: Message, decision: Decision, reply: Any) -> None:
    await session.execute(
        insert(AiAgentTurn)
        .values(
            organization_id=message.organization_id,
            agent_id=agent.id,
            thread_id=message.thread_id,
            message_id=message.id,
            outcome=decision.outcome,
            reason=decision.reason,
            confidence=decision.confidence,
            reply_message_id=reply,
            sources=decision.sources,
            tools=decision.tools,
        )
        .on_conflict_do_nothing(index_elements=[AiAgentTurn.message_id])
    )


async def _recipients_of_handover(session: AsyncSession, agent: AiAgent) -> list[uuid.UUID]:
    if agent.handover_team_id is not None:
        members = list(
            await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == agent.handover_team_id))
        )
        if members:
            return members
    return list(await session.scalars(select(User.id).where(User.role == Role.ADMIN, User.active.is_(True))))


async def _hand_over(
    ctx: SystemContext, acting: AgentContext | None, agent: AiAgent, message: Message, decision: Decision
) -> None:
    org = ctx.for_organization(message.organization_id)
    transaction = acting.transaction() if acting is not None else org.transaction()
    async with transaction as session:
        thread = await session.scalar(select(Thread).where(Thread.id == message.thread_id).with_for_update())
        if thread is None or await session.scalar(select(AiAgentTurn.id).where(AiAgentTurn.message_id == message.id)):
            return
        by = f"AI agent “{agent.name}”"
        chosen = None
        team = await session.get(Team, agent.handover_team_id) if agent.handover_team_id else None
        if team is not None and thread.status != ThreadStatus.ARCHIVED:
            chosen = await give_to_team(session, thread, team, Strategy.ROUND_ROBIN, actor_id=None, by=by)
        if chosen is None:
            await notify(
                session,
                thread,
                await _recipients_of_handover(session, agent),
                NotificationType.INBOUND_MESSAGE,
                f"{by} handed {thread.reference} over to you: {decision.reason}",
                actor_id=None,
                message_id=message.id,
            )
        note = f"{by} handed this conversation over: {decision.reason}."
        if decision.confidence is not None and decision.outcome == "HANDED_OVER":
            note += f" Best knowledge-base match: {decision.confidence:.2f}."
        await add_note(session, thread, author_id=None, body=note)
        if acting is not None:
            if decision.thread_type is not None:
                await threads.update_thread(acting, session, thread, {"type": decision.thread_type}, evidence=by)
            action = await create_action(
                acting,
                session,
                thread,
                f"Reply to the customer ({decision.reason})"[:300],
                None,
                None,
                chosen.id if chosen else None,
            )
            decision.tools.append({"tool": "create_action", "action": str(action.id)})
        thread.bot_suspended_until = datetime.now(UTC) + timedelta(minutes=ctx.settings.agent_suspend_minutes)
        events.record(
            session,
            ThreadUpdated(thread_id=thread.id, changed=["bot_suspended_until"], evidence=by),
            organization_id=thread.organization_id,
            actor_id=None,
        )
        if decision.tokens:
            await ai_budget.charge(session, thread.organization_id, decision.tokens, datetime.now(UTC))
        await _save_turn(session, agent, message, decision, None)


async def agent_handle_message(ctx: SystemContext, message_id: uuid.UUID) -> str:
    """What the agents do with a message (see the module's docstring); returns what happened: ANSWERED,
    HANDED_OVER, SUSPENDED, or why nothing happened (NO_AGENT, ASSIGNED, BOT_SUSPENDED, DONE, ...)."""
    async with ctx.session() as session:
        message = await session.get(Message, message_id)
    if message is None:
        return "GONE"
    if message.channel in (Channel.INTERNAL, Channel.VOICE):
        return "IGNORED"
    if message.direction == Direction.OUTBOUND:
        key = message.idempotency_key or ""
        if message.author_id is None or key.startswith(MACHINE_KEY_PREFIXES):
            return "IGNORED"
        return await _suspend(ctx, message)
    now = datetime.now(UTC)
    org = ctx.for_organization(message.organization_id)
    async with org.session() as session:
        if await session.scalar(select(AiAgentTurn.id).where(AiAgentTurn.message_id == message.id)):
            return "DONE"
        agent = await _agent_for(session, message.channel, now)
        if agent is None:
            return "NO_AGENT"
        thread = await session.get(Thread, message.thread_id)
        if thread is None or thread.status == ThreadStatus.ARCHIVED:
            return "GONE"
        if thread.assignee_id is not None:
            return "ASSIGNED"
        if thread.bot_suspended_until is not None and thread.bot_suspended_until > now:
            return "BOT_SUSPENDED"
        later = await session.scalar(
            select(Message.id)
            .where(
                Message.thread_id == thread.id,
                Message.direction == Direction.INBOUND,
                Message.created_at > message.created_at,
            )
            .limit(1)
        )
        if later is not None:
            return "SUPERSEDED"  # a newer message of the customer's gets the answer
        organization = await session.scalar(select(Organization.name).where(Organization.id == message.organization_id))
        decision = await _decide(ctx, session, agent, thread, message, organization or "us")
        acting = await _acting(ctx, session, agent)
    if decision.outcome == "ANSWERED" and acting is None:
        decision = Decision("HANDED_OVER", "the agent has no active user to send as", tools=decision.tools)
    try:
        if decision.outcome == "HANDED_OVER":
            await _hand_over(ctx, acting, agent, message, decision)
            return "HANDED_OVER"
        assert acting is not None and decision.text
        try:
            reply = await message_send(
                acting,
                thread_id=message.thread_id,
                channel=message.channel,
                body=decision.text,
                subject=_reply_subject(thread) if message.channel == Channel.EMAIL else None,
                # a thread without a contact: back to where the message came from
                to=[message.sender] if thread.contact_id is None and message.sender else None,
                idempotency_key=f"{AGENT_KEY_PREFIX}{message.id}",
            )
        except (DomainError, PermissionDenied) as exc:  # e.g. the user it acts as may no longer send
            reason = exc.message if isinstance(exc, DomainError) else str(exc)
            log.warning("AI agent could not answer; handing over", message_id=str(message.id), error=reason)
            decision = Decision("HANDED_OVER", f"the answer could not be sent ({reason})", tools=decision.tools)
            await _hand_over(ctx, acting, agent, message, decision)
            return "HANDED_OVER"
        async with acting.transaction() as session:
            if decision.thread_type is not None:
                locked = await session.scalar(select(Thread).where(Thread.id == message.thread_id).with_for_update())
                if locked is not None and locked.type == ThreadType.GENERAL:
                    await threads.update_thread(
                        acting, session, locked, {"type": decision.thread_type}, evidence=f"AI agent “{agent.name}”"
                    )
            if decision.tokens:
                await ai_budget.charge(session, message.organization_id, decision.tokens, datetime.now(UTC))
            await _save_turn(session, agent, message, decision, reply.id)
        return "ANSWERED"
    finally:
        if acting is not None:
            await acting.aclose()


def _reply_subject(thread: Thread) -> str:
    subject = thread.subject or ""
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"[:998]


async def agent_turns(ctx: Context, thread_id: uuid.UUID) -> list[AiAgentTurn]:
    ctx.require(Permission.MESSAGE_SEND)
    return list(
        await ctx.db.scalars(
            select(AiAgentTurn).where(AiAgentTurn.thread_id == thread_id).order_by(AiAgentTurn.created_at)
        )
    )
