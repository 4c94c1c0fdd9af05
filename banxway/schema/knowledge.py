"""The AI agent and its knowledge base (banxway.resolvers.knowledge, banxway.resolvers.ai_agent)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from banxway.db import models as db
from banxway.resolvers import ai_agent as agent_use_cases
from banxway.resolvers import knowledge as knowledge_use_cases
from banxway.schema.enums import Channel
from banxway.schema.errors import RECORD_CODES, THREAD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, to_global_id
from banxway.schema.nodes import Ctx, _id_field, _model_type_of
from banxway.schema.threads import Thread

KnowledgeError, KnowledgeErrorCode = error_type("Knowledge", [*RECORD_CODES, "TOO_LARGE", "AI_UNAVAILABLE"])
AiAgentError, AiAgentErrorCode = error_type("AiAgent", RECORD_CODES)
ThreadBotError, ThreadBotErrorCode = error_type("ThreadBot", THREAD_CODES)


@strawberry.enum(description="What a knowledge source is made from.")
class KnowledgeSourceKind(enum.Enum):
    TEXT = "TEXT"
    MARKDOWN = "MARKDOWN"
    HTML = "HTML"
    PDF = "PDF"
    URL = "URL"


@strawberry.enum(description="How the AI agent writes.")
class AiAgentTone(enum.Enum):
    FRIENDLY = "FRIENDLY"
    FORMAL = "FORMAL"
    CONCISE = "CONCISE"


@strawberry.type(description="A text the AI agent answers from, kept as chunks of about 800 characters.")
class KnowledgeSource:
    id: strawberry.ID = _id_field("KnowledgeSource")
    title: str
    url: str | None = strawberry.field(description="A URL source's address (fetched once, when it was added).")
    characters: int = strawberry.field(description="The length of the text read from it.")
    embedding_model: str | None = strawberry.field(description="The model of its chunks' embeddings; null: none.")
    created_at: datetime

    is_type_of = _model_type_of(db.KnowledgeSource)

    @strawberry.field
    def kind(self) -> KnowledgeSourceKind:
        return KnowledgeSourceKind(self.kind)  # type: ignore[arg-type]

    @strawberry.field(description="How many chunks it was cut into.")
    async def chunk_count(self, info: Ctx) -> int:
        return await info.context.loaders.chunk_count_by_source_id.load(self.id)  # type: ignore[attr-defined,return-value]


@strawberry.type(description="A chunk of a knowledge source that matched a search, with its scores.")
class KnowledgeHit:
    chunk_id: strawberry.ID
    source: KnowledgeSource
    position: int = strawberry.field(description="The chunk's place in its source (0 first).")
    text: str
    score: float = strawberry.field(
        description="The ranking's score: the IDF-weighted share of the query's words the chunk holds (full text "
        "alone), or the reciprocal-rank-fusion score (with embeddings)."
    )
    confidence: float = strawberry.field(description="0..1: how well the chunk covers the query.")


def _hit(hit: knowledge_use_cases.Hit) -> KnowledgeHit:
    return KnowledgeHit(
        chunk_id=strawberry.ID(to_global_id("KnowledgeChunk", hit.chunk.id)),
        source=hit.source,  # type: ignore[arg-type]
        position=hit.chunk.position,
        text=hit.chunk.text,
        score=hit.score,
        confidence=hit.confidence,
    )


@strawberry.type(description="An AI agent that answers customers from the knowledge base, or hands over to people.")
class AiAgent:
    id: strawberry.ID = _id_field("AiAgent")
    name: str
    enabled: bool
    active_hours: JSON | None = strawberry.field(
        description="When it answers: a business calendar ({timezone, hours, holidays}, as businessHoursSet takes "
        "it); null: always."
    )
    min_confidence: float = strawberry.field(description="Below this knowledge-base confidence it hands over.")
    handover_keywords: list[str] = strawberry.field(
        description="Words that, in a customer's message, hand the thread over to a person."
    )
    max_turns: int = strawberry.field(description="Answers per thread before it hands over.")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.AiAgent)

    @strawberry.field(description="The channels it answers on.")
    def channels(self) -> list[Channel]:
        return [Channel[name] for name in self.channels]  # type: ignore[attr-defined]

    @strawberry.field
    def tone(self) -> AiAgentTone:
        return AiAgentTone(self.tone)  # type: ignore[arg-type]

    @strawberry.field(description="The team a handed-over thread goes to (round-robin); null: left unassigned.")
    def handover_team_id(self) -> strawberry.ID | None:
        team_id = self.handover_team_id  # type: ignore[attr-defined]
        return strawberry.ID(to_global_id("Team", team_id)) if team_id else None


@strawberry.input
class KnowledgeSourceCreateInput:
    title: str | None = strawberry.field(
        default=None, description="Default: an HTML page's <title>, the file's name, or the URL."
    )
    kind: KnowledgeSourceKind
    text: str | None = strawberry.field(default=None, description="TEXT, MARKDOWN, HTML: the content itself.")
    attachment_id: strawberry.ID | None = strawberry.field(
        default=None, description="PDF (or TEXT, MARKDOWN, HTML): an uploaded file (attachmentUpload)."
    )
    url: str | None = strawberry.field(default=None, description="URL: the page, fetched once now.")


@strawberry.input
class AiAgentCreateInput:
    name: str
    channels: list[Channel]
    enabled: bool = True
    active_hours: JSON | None = None
    min_confidence: float = 0.35
    handover_keywords: list[str] | None = strawberry.field(
        default=None, description="Default: human, agent, person, representative, someone, real person, talk to."
    )
    tone: AiAgentTone = AiAgentTone.FRIENDLY
    max_turns: int = 5
    handover_team_id: strawberry.ID | None = None


@strawberry.input(description="Fields left out stay as they are.")
class AiAgentUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    channels: list[Channel] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET
    active_hours: JSON | None = strawberry.UNSET
    min_confidence: float | None = strawberry.UNSET
    handover_keywords: list[str] | None = strawberry.UNSET
    tone: AiAgentTone | None = strawberry.UNSET
    max_turns: int | None = strawberry.UNSET
    handover_team_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class ThreadBotResumeInput:
    thread_id: strawberry.ID


@strawberry.type
class KnowledgeSourcePayload:
    knowledge_source: KnowledgeSource | None = None
    user_errors: list[KnowledgeError]  # type: ignore[valid-type]


@strawberry.type
class KnowledgeSourceDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[KnowledgeError]  # type: ignore[valid-type]


@strawberry.type
class AiAgentPayload:
    ai_agent: AiAgent | None = None
    user_errors: list[AiAgentError]  # type: ignore[valid-type]


@strawberry.type
class AiAgentDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[AiAgentError]  # type: ignore[valid-type]


@strawberry.type
class ThreadBotResumePayload:
    thread: Thread | None = None
    user_errors: list[ThreadBotError]  # type: ignore[valid-type]


_AGENT_FIELDS = {
    "name": "name",
    "channels": "channels",
    "enabled": "enabled",
    "active_hours": "active_hours",
    "min_confidence": "min_confidence",
    "handover_keywords": "handover_keywords",
    "tone": "tone",
    "max_turns": "max_turns",
    "handover_team_id": "handover_team_id",
}


def _agent_values(values: dict[str, Any]) -> dict[str, Any]:
    if "tone" in values:
        values["tone"] = values["tone"].value if values["tone"] is not None else None
    if "handover_team_id" in values:
        values["handover_team_id"] = decode_optional(values["handover_team_id"], "Team", "handoverTeamId")
    if values.get("handover_keywords", 0) is None:
        values.pop("handover_keywords")
    return values


@strawberry.type
class KnowledgeQuery:
    @strawberry.field(description="The organization's knowledge sources, oldest first. ORG_MANAGE.")
    async def knowledge_sources(self, info: Ctx) -> list[KnowledgeSource]:
        return await knowledge_use_cases.knowledge_sources(info.context)  # type: ignore[return-value]

    @strawberry.field(
        description="The chunks the AI agent would answer `query` from, best first (full-text search; hybrid with "
        "embeddings when BANXWAY_EMBEDDINGS_MODEL is set). MESSAGE_SEND."
    )
    async def knowledge_search(self, info: Ctx, query: str, first: int = 5) -> list[KnowledgeHit]:
        hits = await knowledge_use_cases.knowledge_search(info.context, query, first)
        return [_hit(hit) for hit in hits]

    @strawberry.field(description="The organization's AI agents, by name. ORG_MANAGE.")
    async def ai_agents(self, info: Ctx) -> list[AiAgent]:
        return await agent_use_cases.ai_agents(info.context)  # type: ignore[return-value]


@strawberry.type
class KnowledgeMutation:
    @strawberry.mutation(
        description="Add a knowledge source: text, Markdown, HTML, an uploaded PDF, or a web page fetched once "
        "(through the SSRF guard; 10 s; BANXWAY_KNOWLEDGE_URL_MAX_BYTES). ORG_MANAGE."
    )
    async def knowledge_source_create(self, info: Ctx, input: KnowledgeSourceCreateInput) -> KnowledgeSourcePayload:
        async def call() -> dict:
            source = await knowledge_use_cases.knowledge_source_create(
                info.context,
                title=input.title,
                kind=input.kind.value,
                text=input.text,
                attachment_id=decode_optional(input.attachment_id, "Attachment", "attachmentId"),
                url=input.url,
            )
            return {"knowledge_source": source}

        return await mutate(KnowledgeSourcePayload, KnowledgeError, KnowledgeErrorCode, call)

    @strawberry.mutation(description="Remove a knowledge source and its chunks. ORG_MANAGE.")
    async def knowledge_source_delete(self, info: Ctx, id: strawberry.ID) -> KnowledgeSourceDeletePayload:
        async def call() -> dict:
            await knowledge_use_cases.knowledge_source_delete(info.context, decode(id, "KnowledgeSource", "id"))
            return {"deleted_id": id}

        return await mutate(KnowledgeSourceDeletePayload, KnowledgeError, KnowledgeErrorCode, call)

    @strawberry.mutation(description="ORG_MANAGE. The agent sends as whoever last saved it.")
    async def ai_agent_create(self, info: Ctx, input: AiAgentCreateInput) -> AiAgentPayload:
        async def call() -> dict:
            values = _agent_values({snake: getattr(input, attr) for attr, snake in _AGENT_FIELDS.items()})
            return {"ai_agent": await agent_use_cases.ai_agent_create(info.context, values)}

        return await mutate(AiAgentPayload, AiAgentError, AiAgentErrorCode, call)

    @strawberry.mutation(description="ORG_MANAGE. The agent sends as whoever last saved it.")
    async def ai_agent_update(self, info: Ctx, input: AiAgentUpdateInput) -> AiAgentPayload:
        async def call() -> dict:
            agent_id = decode(input.id, "AiAgent", "id")
            values = _agent_values(changes(input, _AGENT_FIELDS))
            return {"ai_agent": await agent_use_cases.ai_agent_update(info.context, agent_id, values)}

        return await mutate(AiAgentPayload, AiAgentError, AiAgentErrorCode, call)

    @strawberry.mutation(description="ORG_MANAGE.")
    async def ai_agent_delete(self, info: Ctx, id: strawberry.ID) -> AiAgentDeletePayload:
        async def call() -> dict:
            await agent_use_cases.ai_agent_delete(info.context, decode(id, "AiAgent", "id"))
            return {"deleted_id": id}

        return await mutate(AiAgentDeletePayload, AiAgentError, AiAgentErrorCode, call)

    @strawberry.mutation(
        description="Let the AI agent answer on the thread again: lifts the suspension a person's reply or a "
        "handover started (Thread.botSuspendedUntil). MESSAGE_SEND."
    )
    async def thread_bot_resume(self, info: Ctx, input: ThreadBotResumeInput) -> ThreadBotResumePayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            return {"thread": await agent_use_cases.thread_bot_resume(info.context, thread_id)}

        return await mutate(ThreadBotResumePayload, ThreadBotError, ThreadBotErrorCode, call)
