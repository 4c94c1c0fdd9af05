"""Shipment documents: the Document node, the `documents` list, and filing, classifying and reviewing them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from banxway import enums
from banxway.db import models
from banxway.resolvers import attachments as attachment_use_cases
from banxway.resolvers import documents as document_use_cases
from banxway.schema.analysis import Entity, TextSource
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, decode_optional, filter_id, to_global_id
from banxway.schema.messages import Attachment, Message
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.pagination import Connection, connection
from banxway.schema.users import User

if TYPE_CHECKING:
    from banxway.schema.shipments import Shipment
    from banxway.schema.threads import Thread

ShipmentRef = Annotated["Shipment", strawberry.lazy("banxway.schema.shipments")]
ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]

DocumentType = strawberry.enum(models.DocumentType, description="What a shipment document is.")
DocumentStatus = strawberry.enum(
    models.DocumentStatus,
    description="DRAFT or RECEIVED when filed; APPROVED or REJECTED by a reviewer (VALIDATOR, MANAGER, ADMIN).",
)
DocumentTextState = strawberry.enum(
    models.DocumentTextState,
    description="Whether the document's text was read: PENDING (not yet), EXTRACTED, NO_TEXT (an image or a scan: "
    "no OCR here) or FAILED (encrypted or broken; `textError` says why).",
)
DocumentError, DocumentErrorCode = error_type("Document", ["INVALID", "NOT_FOUND", "TAKEN", "TOO_LONG"])


@strawberry.type(description="A file filed on a shipment: a bill of lading, an invoice, a packing list, ...")
class Document(Node):
    id: strawberry.ID = _id_field("Document")
    type: DocumentType  # type: ignore[valid-type]
    status: DocumentStatus  # type: ignore[valid-type]
    version: int = strawberry.field(description="1 for the first of its type on the shipment, then 2, 3, ...")
    reviewed_at: datetime | None
    rejection_reason: str | None
    text_state: DocumentTextState  # type: ignore[valid-type]
    text_error: str | None = strawberry.field(
        description="Why there is no text (NO_TEXT, FAILED), or what was left out (pages or characters past the "
        "limits)."
    )
    pages: int | None = strawberry.field(description="The PDF's page count, once read.")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(models.Document)
    resolve_nodes = _node_resolver("document_by_id")

    @strawberry.field(description="Whether this is the shipment's current version of its type (not superseded).")
    def is_current(self) -> bool:
        return self.superseded_by_id is None  # type: ignore[attr-defined]

    @strawberry.field(description="The text read from the file (searchable with `documents(filter: {search})`).")
    async def text(self, info: Ctx) -> str | None:
        return await info.context.loaders.document_text_by_id.load(self.id)  # type: ignore[arg-type]

    @strawberry.field(description="The freight entities found in the text (containers, BL numbers, ports, ...).")
    def entities(self) -> list[Entity]:
        rows: list[dict[str, Any]] = self.entities  # type: ignore[assignment,attr-defined]
        return [
            Entity(
                kind=enums.EntityKind[row["kind"]],
                value=row["value"],
                text=row["text"],
                source=TextSource.BODY,
                start=row["start"],
                end=row["end"],
            )
            for row in rows
        ]

    @strawberry.field
    def shipment(self, info: Ctx) -> ShipmentRef:
        return related(self, info, "shipment", "shipment_by_id", self.shipment_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The thread the document came with or was filed from.")
    def thread(self, info: Ctx) -> ThreadRef | None:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The message the file came with (an email's attachment, a WhatsApp media).")
    def message(self, info: Ctx) -> Message | None:
        return related(self, info, "message", "message_by_id", self.message_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The stored file (its name, type, size and download URLs).")
    def attachment(self, info: Ctx) -> Attachment | None:
        return related(self, info, "attachment", "attachment_by_id", self.attachment_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The download path of the file; needs `Authorization: Bearer <token>`.")
    def url(self) -> str:
        return f"/attachments/{to_global_id('Attachment', self.attachment_id)}"  # type: ignore[attr-defined]

    @strawberry.field(
        description="A signed download path of the file that needs no Authorization header (as "
        "`Attachment.downloadUrl`)."
    )
    async def download_url(self, info: Ctx) -> str | None:
        attachment = await info.context.loaders.attachment_by_id.load(self.attachment_id)  # type: ignore[attr-defined]
        if attachment is None:
            return None
        query = attachment_use_cases.signed_query(info.context, attachment)
        return f"/attachments/{to_global_id('Attachment', attachment.id)}?{query}"

    @strawberry.field(description="Who approved or rejected it.")
    def reviewer(self, info: Ctx) -> User | None:
        return related(self, info, "reviewer", "user_by_id", self.reviewer_id)  # type: ignore[attr-defined]

    @strawberry.field
    def uploaded_by(self, info: Ctx) -> User | None:
        return related(self, info, "uploaded_by", "user_by_id", self.uploaded_by_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The newer version that replaced this one; null for the current one.")
    def superseded_by(self, info: Ctx) -> Document | None:
        return related(self, info, "superseded_by", "document_by_id", self.superseded_by_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Every version of this document, the first one first (this one included).")
    async def versions(self, info: Ctx) -> list[Document]:
        return await info.context.loaders.documents_by_lineage_id.load(self.lineage_id)  # type: ignore[attr-defined,return-value]

    @strawberry.field(description="The versions before this one, the first one first.")
    async def previous_versions(self, info: Ctx) -> list[Document]:
        rows = await info.context.loaders.documents_by_lineage_id.load(self.lineage_id)  # type: ignore[attr-defined]
        return [row for row in rows or [] if row.version < self.version]


@strawberry.input
class DocumentFilter:
    shipment_id: strawberry.ID | None = None
    thread_id: strawberry.ID | None = None
    type: list[DocumentType] | None = strawberry.field(default=None, description="Any of these types.")  # type: ignore[valid-type]
    status: list[DocumentStatus] | None = strawberry.field(default=None, description="Any of these statuses.")  # type: ignore[valid-type]
    search: str | None = strawberry.field(
        default=None, description="Words of the documents' text (each as a prefix: `MSCU12` finds MSCU1234566)."
    )
    include_superseded: bool = strawberry.field(default=False, description="Also the versions replaced since.")


@strawberry.input
class DocumentUploadInput:
    shipment_id: strawberry.ID
    attachment_id: strawberry.ID = strawberry.field(description="A file uploaded with POST /attachments.")
    type: DocumentType  # type: ignore[valid-type]
    thread_id: strawberry.ID | None = None
    status: DocumentStatus | None = strawberry.field(default=None, description="DRAFT or RECEIVED (the default).")  # type: ignore[valid-type]


@strawberry.input
class DocumentFileFromMessageInput:
    message_id: strawberry.ID
    attachment_id: strawberry.ID | None = strawberry.field(
        default=None, description="Which of the message's files; may be left out when it has one."
    )
    type: DocumentType | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Default: guessed from the file's name (OTHER when it says nothing)."
    )


@strawberry.input
class DocumentClassifyInput:
    id: strawberry.ID
    type: DocumentType  # type: ignore[valid-type]


@strawberry.input
class DocumentApproveInput:
    id: strawberry.ID


@strawberry.input
class DocumentRejectInput:
    id: strawberry.ID
    reason: str = strawberry.field(description="What is wrong (required, at most 2000 characters).")


@strawberry.type
class DocumentPayload:
    document: Document | None = None
    user_errors: list[DocumentError]  # type: ignore[valid-type]


def document_filter(where: DocumentFilter | None) -> dict[str, Any]:
    where = where or DocumentFilter()
    return {
        "shipment_id": filter_id(where.shipment_id, "Shipment"),
        "thread_id": filter_id(where.thread_id, "Thread"),
        "type": where.type,
        "status": where.status,
        "search": where.search,
        "include_superseded": where.include_superseded,
    }


@strawberry.type
class DocumentQuery:
    @strawberry.field(description="Shipment documents, newest first (current versions unless includeSuperseded).")
    async def documents(
        self, info: Ctx, first: int | None = None, after: str | None = None, filter: DocumentFilter | None = None
    ) -> Connection[Document]:
        page = await document_use_cases.documents_page(
            info.context, first=first, after=after, **document_filter(filter)
        )
        return connection(page)


async def _payload(call: Any) -> DocumentPayload:
    return await mutate(DocumentPayload, DocumentError, DocumentErrorCode, call)


@strawberry.type
class DocumentMutation:
    @strawberry.mutation(
        description="File an uploaded file (POST /attachments) on a shipment; a document of a type the shipment "
        "already has becomes its new version."
    )
    async def document_upload(self, info: Ctx, input: DocumentUploadInput) -> DocumentPayload:
        async def call() -> dict:
            document = await document_use_cases.document_upload(
                info.context,
                shipment_id=decode(input.shipment_id, "Shipment", "shipmentId"),
                attachment_id=decode(input.attachment_id, "Attachment", "attachmentId"),
                type=input.type,
                thread_id=decode_optional(input.thread_id, "Thread", "threadId"),
                status=input.status,
            )
            return {"document": document}

        return await _payload(call)

    @strawberry.mutation(
        description="File a message's attachment (an email's, a WhatsApp media) as a document of the shipment its "
        "thread is linked to."
    )
    async def document_file_from_message(self, info: Ctx, input: DocumentFileFromMessageInput) -> DocumentPayload:
        async def call() -> dict:
            document = await document_use_cases.document_file_from_message(
                info.context,
                message_id=decode(input.message_id, "Message", "messageId"),
                attachment_id=decode_optional(input.attachment_id, "Attachment", "attachmentId"),
                type=input.type,
            )
            return {"document": document}

        return await _payload(call)

    @strawberry.mutation(description="Set a document's type.")
    async def document_classify(self, info: Ctx, input: DocumentClassifyInput) -> DocumentPayload:
        async def call() -> dict:
            document_id = decode(input.id, "Document", "id")
            return {"document": await document_use_cases.document_classify(info.context, document_id, input.type)}

        return await _payload(call)

    @strawberry.mutation(description="Approve a document (VALIDATOR, MANAGER, ADMIN).")
    async def document_approve(self, info: Ctx, input: DocumentApproveInput) -> DocumentPayload:
        async def call() -> dict:
            document_id = decode(input.id, "Document", "id")
            return {"document": await document_use_cases.document_approve(info.context, document_id)}

        return await _payload(call)

    @strawberry.mutation(description="Reject a document with a reason (VALIDATOR, MANAGER, ADMIN).")
    async def document_reject(self, info: Ctx, input: DocumentRejectInput) -> DocumentPayload:
        async def call() -> dict:
            document_id = decode(input.id, "Document", "id")
            return {"document": await document_use_cases.document_reject(info.context, document_id, input.reason)}

        return await _payload(call)
