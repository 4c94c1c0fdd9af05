"""Message analysis in the schema: `Message.analysis` (language, sentiment, intent, entities with their spans),
`Thread.intent` / `Thread.sentiment` / `Thread.shipmentSuggestions`, and taking or leaving a suggestion."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from banxway import db, enums
from banxway.resolvers import analysis as analysis_use_cases
from banxway.schema.errors import THREAD_CODES, error_type, mutate
from banxway.schema.ids import decode
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.shipments import Shipment

if TYPE_CHECKING:
    from banxway.schema.messages import Message
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]
MessageRef = Annotated["Message", strawberry.lazy("banxway.schema.messages")]

Intent = strawberry.enum(enums.Intent, description="What a customer's message asks for.")
Sentiment = strawberry.enum(enums.Sentiment)
EntityKind = strawberry.enum(enums.EntityKind, description="A freight entity found in a message's text.")
SuggestionError, SuggestionErrorCode = error_type("Suggestion", THREAD_CODES)


@strawberry.enum
class TextSource(enum.Enum):
    SUBJECT = "SUBJECT"
    BODY = "BODY"


@strawberry.type(description="A freight entity in a message: `text` is `<source>[start:end]`, `value` normalised.")
class Entity:
    kind: EntityKind  # type: ignore[valid-type]
    value: str = strawberry.field(
        description="Normalised: a container MSCU1234565, an AWB 176-12345675, a port's UN/LOCODE, an ISO date, "
        "a weight 12500 KG, a volume 28.5 CBM."
    )
    text: str = strawberry.field(description="Exactly as written.")
    source: TextSource
    start: int = strawberry.field(description="Offset of the first character in the subject or body (per `source`).")
    end: int = strawberry.field(description="Offset after the last character.")


@strawberry.type(description="What analysis found in an inbound message.")
class MessageAnalysis:
    language: str = strawberry.field(description="ISO 639-1 code; `und` when too short to tell.")
    sentiment: Sentiment  # type: ignore[valid-type]
    sentiment_score: float = strawberry.field(description="-1 (angry) .. 1 (delighted).")
    intent: Intent  # type: ignore[valid-type]
    intent_confidence: float = strawberry.field(description="0 .. 1: how clearly the text points to one intent.")
    analyser: str = strawberry.field(description="The rules' version, with the model on top when one is configured.")
    created_at: datetime

    @strawberry.field
    def entities(self) -> list[Entity]:
        rows: list[dict[str, Any]] = self.entities  # type: ignore[assignment,attr-defined]
        return [
            Entity(
                kind=enums.EntityKind[row["kind"]],
                value=row["value"],
                text=row["text"],
                source=TextSource[row["source"]],
                start=row["start"],
                end=row["end"],
            )
            for row in rows
        ]


@strawberry.type(description="The numbers in a message that name a shipment.")
class Evidence:
    kind: EntityKind  # type: ignore[valid-type]
    value: str


@strawberry.type(description="A shipment a customer's message named, for a person to link or leave.")
class ShipmentSuggestion(Node):
    id: strawberry.ID = _id_field("ShipmentSuggestion")
    created_at: datetime

    is_type_of = _model_type_of(db.ShipmentSuggestion)
    resolve_nodes = _node_resolver("shipment_suggestion_by_id")

    @strawberry.field
    def shipment(self, info: Ctx) -> Shipment | None:
        return related(self, info, "shipment", "shipment_by_id", self.shipment_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The message that named it.")
    def message(self, info: Ctx) -> MessageRef | None:
        return related(self, info, "message", "message_by_id", self.message_id)  # type: ignore[attr-defined]

    @strawberry.field
    def evidence(self) -> list[Evidence]:
        rows: list[dict[str, str]] = self.evidence  # type: ignore[assignment,attr-defined]
        return [Evidence(kind=enums.EntityKind[row["kind"]], value=row["value"]) for row in rows]


@strawberry.input
class ShipmentSuggestionInput:
    suggestion_id: strawberry.ID


@strawberry.type
class ShipmentSuggestionPayload:
    thread: ThreadRef | None = None
    user_errors: list[SuggestionError]  # type: ignore[valid-type]


@strawberry.type
class AnalysisMutation:
    @strawberry.mutation(
        description="Link the thread to a suggested shipment (as threadUpdate would); its other suggestions go."
    )
    async def shipment_suggestion_accept(self, info: Ctx, input: ShipmentSuggestionInput) -> ShipmentSuggestionPayload:
        async def call() -> dict:
            suggestion_id = decode(input.suggestion_id, "ShipmentSuggestion", "suggestionId")
            return {"thread": await analysis_use_cases.suggestion_accept(info.context, suggestion_id)}

        return await mutate(ShipmentSuggestionPayload, SuggestionError, SuggestionErrorCode, call)

    @strawberry.mutation(description="Leave a suggested shipment: it is no longer shown on the thread.")
    async def shipment_suggestion_dismiss(self, info: Ctx, input: ShipmentSuggestionInput) -> ShipmentSuggestionPayload:
        async def call() -> dict:
            suggestion_id = decode(input.suggestion_id, "ShipmentSuggestion", "suggestionId")
            return {"thread": await analysis_use_cases.suggestion_dismiss(info.context, suggestion_id)}

        return await mutate(ShipmentSuggestionPayload, SuggestionError, SuggestionErrorCode, call)
