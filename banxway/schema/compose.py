"""AI drafts in the schema: composeStart / composeCancel / composeFeedback, the `composeStream` subscription (the
same stream as `GET /compose/{sessionId}/stream`), and `composeStats`."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from graphql import GraphQLError

from banxway import db, enums
from banxway.errors import DomainError
from banxway.resolvers import compose as compose_use_cases
from banxway.schema.enums import Channel
from banxway.schema.errors import THREAD_CODES, error_type, mutate
from banxway.schema.ids import decode, decode_optional, filter_id
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related

if TYPE_CHECKING:
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]

ComposeTone = strawberry.enum(enums.ComposeTone, description="How a draft sounds.")
ComposeError, ComposeErrorCode = error_type("Compose", [*THREAD_CODES, "BUDGET_EXCEEDED"])


@strawberry.enum(description="PENDING until a worker takes it, STREAMING while drafts arrive, then how it ended.")
class ComposeStatus(enum.Enum):
    PENDING = "PENDING"
    STREAMING = "STREAMING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.enum
class ComposeRating(enum.Enum):
    UP = "UP"
    DOWN = "DOWN"


@strawberry.type(description="One request for AI drafts: visible to the user who asked only.")
class ComposeSession(Node):
    id: strawberry.ID = _id_field("ComposeSession")
    channel: Channel
    variants: int
    instructions: str
    provider: str = strawberry.field(description="`builtin` (no key configured) or the model that wrote the drafts.")
    prompt_version: str
    error_code: str | None = strawberry.field(description="Why it did not finish (FAILED, CANCELLED).")
    error_message: str | None
    drafts: list[str] = strawberry.field(description="The finished drafts, one per variant (empty until DONE).")
    prompt_tokens: int
    completion_tokens: int
    feedback_variant: int | None
    final_text: str | None = strawberry.field(description="What the agent sent in the end (composeFeedback).")
    edit_distance: int | None = strawberry.field(
        description="Characters inserted, deleted or replaced between the draft and `finalText` (Levenshtein)."
    )
    created_at: datetime
    finished_at: datetime | None

    is_type_of = _model_type_of(db.ComposeSession)
    resolve_nodes = _node_resolver("compose_session_by_id")

    @strawberry.field
    def status(self) -> ComposeStatus:
        return ComposeStatus(self.status)  # type: ignore[arg-type]

    @strawberry.field
    def tone(self) -> ComposeTone:  # type: ignore[valid-type]
        return enums.ComposeTone(self.tone)  # type: ignore[arg-type]

    @strawberry.field
    def feedback_rating(self) -> ComposeRating | None:
        rating = self.feedback_rating  # type: ignore[attr-defined]
        return ComposeRating(rating) if rating else None

    @strawberry.field
    def thread(self, info: Ctx) -> ThreadRef:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]


# -- the stream -------------------------------------------------------------------------------------------------


@strawberry.type(description="A piece of a draft's text; join them in order per variant.")
class ComposeDelta:
    variant: int = strawberry.field(description="0-based.")
    text: str


@strawberry.type
class ComposeDraft:
    variant: int
    text: str


@strawberry.type
class ComposeUsage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@strawberry.type(description="The drafts are complete; the stream ends.")
class ComposeDone:
    variants: list[ComposeDraft]
    usage: ComposeUsage


@strawberry.type(
    description="The drafting failed or was cancelled; the stream ends. Codes: AI_UNAVAILABLE, AI_TIMEOUT, "
    "AI_RATE_LIMITED, AI_REFUSED, AI_INVALID_OUTPUT, CANCELLED."
)
class ComposeFailure:
    code: str
    message: str


ComposeStreamEvent = Annotated[ComposeDelta | ComposeDone | ComposeFailure, strawberry.union("ComposeStreamEvent")]


def stream_event(event: compose_use_cases.ComposeEvent) -> ComposeDelta | ComposeDone | ComposeFailure:
    if isinstance(event, compose_use_cases.DeltaEvent):
        return ComposeDelta(variant=event.variant, text=event.text)
    if isinstance(event, compose_use_cases.DoneEvent):
        return ComposeDone(
            variants=[ComposeDraft(variant=index, text=text) for index, text in enumerate(event.variants)],
            usage=ComposeUsage(
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                total_tokens=event.prompt_tokens + event.completion_tokens,
            ),
        )
    return ComposeFailure(code=event.code, message=event.message)


@strawberry.type
class ComposeSubscription:
    @strawberry.subscription(
        description="A compose session's drafts as they are written: ComposeDelta items from the first token, then "
        "one ComposeDone or ComposeFailure. Ending the subscription early cancels the drafting."
    )
    async def compose_stream(self, info: Ctx, session_id: strawberry.ID) -> AsyncGenerator[ComposeStreamEvent, None]:  # type: ignore[valid-type]
        ctx = info.context
        try:
            row = await compose_use_cases.compose_session_of(ctx, decode(session_id, "ComposeSession", "sessionId"))
        except DomainError as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code}) from None
        try:
            async for event in compose_use_cases.compose_events(ctx, row):
                yield stream_event(event)
        finally:
            await ctx.aclose()


# -- mutations and figures --------------------------------------------------------------------------------------


@strawberry.input
class ComposeStartInput:
    thread_id: strawberry.ID
    instructions: str | None = strawberry.field(
        default=None, description="What the reply should say, in the agent's words (at most 2,000 characters)."
    )
    tone: ComposeTone = enums.ComposeTone.FRIENDLY  # type: ignore[valid-type]
    variants: int = strawberry.field(default=1, description="1 to 3 alternative drafts.")
    channel: Channel | None = strawberry.field(
        default=None, description="The channel the reply will go on (its length and form); default: the thread's."
    )


@strawberry.input
class ComposeSessionInput:
    session_id: strawberry.ID


@strawberry.input
class ComposeFeedbackInput:
    session_id: strawberry.ID
    variant: int = strawberry.field(default=0, description="The draft (0-based) the agent started from.")
    rating: ComposeRating | None = None
    final_text: str | None = strawberry.field(default=None, description="What the agent finally sent.")


@strawberry.type
class ComposeSessionPayload:
    session: ComposeSession | None = None
    user_errors: list[ComposeError]  # type: ignore[valid-type]


@strawberry.input(description="[from, to): a period of time.")
class PeriodInput:
    from_: datetime = strawberry.field(name="from")
    to: datetime


@strawberry.type(description="How the organization's drafts fared in a period (sessions started in it).")
class ComposeStats:
    sessions: int
    finished: int
    failed: int
    cancelled: int
    with_feedback: int
    accepted: int = strawberry.field(description="Rated UP, or sent with less than a fifth of the draft changed.")
    acceptance_rate: float | None = strawberry.field(description="accepted / withFeedback; null without feedback.")
    mean_edit_distance: float | None
    mean_edit_ratio: float | None = strawberry.field(description="Edit distance / draft length, on average.")
    tokens: int = strawberry.field(description="Tokens spent (the built-in composer's are estimates).")


@strawberry.type
class ComposeQuery:
    @strawberry.field(description="The viewer's own compose sessions, newest first (of one thread when given).")
    async def compose_sessions(
        self, info: Ctx, thread_id: strawberry.ID | None = None, first: int = 20
    ) -> list[ComposeSession]:
        thread = filter_id(thread_id, "Thread")
        return await compose_use_cases.compose_sessions(info.context, thread_id=thread, first=first)  # type: ignore[return-value]

    @strawberry.field(description="The organization's compose figures: sessions, acceptance, edits.")
    async def compose_stats(self, info: Ctx, period: PeriodInput) -> ComposeStats:
        stats = await compose_use_cases.compose_stats(info.context, start=period.from_, end=period.to)
        return ComposeStats(**{name: getattr(stats, name) for name in stats.__dataclass_fields__})


@strawberry.type
class ComposeMutation:
    @strawberry.mutation(
        description="Ask for AI drafts of a reply on a thread; read them with composeStream or GET "
        "/compose/{sessionId}/stream. Nothing is sent: a draft becomes a message only through messageSend."
    )
    async def compose_start(self, info: Ctx, input: ComposeStartInput) -> ComposeSessionPayload:
        async def call() -> dict:
            session = await compose_use_cases.compose_start(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                instructions=input.instructions,
                tone=input.tone,
                variants=input.variants,
                channel=input.channel,
            )
            return {"session": session}

        return await mutate(ComposeSessionPayload, ComposeError, ComposeErrorCode, call)

    @strawberry.mutation(description="Stop a session's drafting (within a second); its readers get CANCELLED.")
    async def compose_cancel(self, info: Ctx, input: ComposeSessionInput) -> ComposeSessionPayload:
        async def call() -> dict:
            session_id = decode_optional(input.session_id, "ComposeSession", "sessionId")
            return {"session": await compose_use_cases.compose_cancel(info.context, session_id)}

        return await mutate(ComposeSessionPayload, ComposeError, ComposeErrorCode, call)

    @strawberry.mutation(
        description="Say how a draft did: a rating and what was finally sent (its edit distance from the draft is "
        "kept). Given again, it replaces the earlier feedback."
    )
    async def compose_feedback(self, info: Ctx, input: ComposeFeedbackInput) -> ComposeSessionPayload:
        async def call() -> dict:
            session = await compose_use_cases.compose_feedback(
                info.context,
                session_id=decode(input.session_id, "ComposeSession", "sessionId"),
                variant=input.variant,
                rating=input.rating.value if input.rating else None,
                final_text=input.final_text,
            )
            return {"session": session}

        return await mutate(ComposeSessionPayload, ComposeError, ComposeErrorCode, call)
