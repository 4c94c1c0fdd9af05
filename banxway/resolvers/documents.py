"""Shipment documents: filing a file on a shipment (`document_upload`, `document_file_from_message`), classifying
and reviewing it (`document_classify`, `document_approve`, `document_reject`), listing and searching them
(`documents_page`), what a shipment still lacks (`missing_documents`), and reading a document's text
(`document_extract_text`, run by the `extract_document_text` actor from DOCUMENT_ADDED).

Versions: a shipment has at most one current document of each type (OTHER aside: any number). Filing another of
that type makes it the new version: the current one gets `superseded_by_id` and stays readable, and every version
shares the `lineage_id` of the first (`Document.versions`). Filing and classifying lock the shipment's row, so two
uploads of one type at once come out as versions 1 and 2, never as two current ones (an index says so too).

Permissions: filing and classifying need CUSTOMER_MANAGE (SUPPORT, MANAGER, ADMIN), as shipments do; approving
and rejecting need ACTION_APPROVE (VALIDATOR, MANAGER, ADMIN); reading needs READ.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from banxway.auth import Permission
from banxway.db.models import (
    Attachment,
    Document,
    DocumentStatus,
    DocumentTextState,
    DocumentType,
    Message,
    Shipment,
    Thread,
)
from banxway.enums import ShipmentDirection, ShipmentMode
from banxway.errors import DomainError
from banxway.events import DocumentAdded, DocumentUpdated
from banxway.extraction.documents import document_entities, guess_type
from banxway.integrations.pdf_text import read_text
from banxway.integrations.storage import attachment_path
from banxway.logs import get_logger
from banxway.resolvers import validation as v
from banxway.resolvers.common import apply_changes, get_or_error
from banxway.resolvers.pagination import Page, paginate
from banxway.resolvers.threads import search_tsquery

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext

log = get_logger("banxway.documents")

# What a shipment needs, by mode and direction. A type counts as present when a current document of it is RECEIVED
# or APPROVED (a DRAFT or a REJECTED one does not).
_SEA_AIR_COMMON = (DocumentType.COMMERCIAL_INVOICE, DocumentType.PACKING_LIST)
REQUIRED_DOCUMENTS: dict[tuple[ShipmentMode, ShipmentDirection], tuple[DocumentType, ...]] = {
    (ShipmentMode.SEA, ShipmentDirection.EXPORT): (DocumentType.BILL_OF_LADING, *_SEA_AIR_COMMON),
    (ShipmentMode.SEA, ShipmentDirection.IMPORT): (
        DocumentType.BILL_OF_LADING,
        *_SEA_AIR_COMMON,
        DocumentType.DELIVERY_ORDER,
    ),
    (ShipmentMode.AIR, ShipmentDirection.EXPORT): (DocumentType.AIR_WAYBILL, *_SEA_AIR_COMMON),
    (ShipmentMode.AIR, ShipmentDirection.IMPORT): (
        DocumentType.AIR_WAYBILL,
        *_SEA_AIR_COMMON,
        DocumentType.DELIVERY_ORDER,
    ),
    (ShipmentMode.ROAD, ShipmentDirection.EXPORT): _SEA_AIR_COMMON,
    (ShipmentMode.ROAD, ShipmentDirection.IMPORT): _SEA_AIR_COMMON,
    (ShipmentMode.RAIL, ShipmentDirection.EXPORT): _SEA_AIR_COMMON,
    (ShipmentMode.RAIL, ShipmentDirection.IMPORT): _SEA_AIR_COMMON,
}
PRESENT_STATUSES = (DocumentStatus.RECEIVED, DocumentStatus.APPROVED)
FILED_STATUSES = (DocumentStatus.DRAFT, DocumentStatus.RECEIVED)
REASON_MAX = 2000
READ_TIMEOUT_SECONDS = 60  # the actor's own limit is 120 s


def missing_documents(shipment: Shipment, current: list[Document]) -> list[DocumentType]:
    """The types the shipment's mode and direction need that no current RECEIVED or APPROVED document covers."""
    present = {document.type for document in current if document.status in PRESENT_STATUSES}
    required = REQUIRED_DOCUMENTS.get((shipment.mode, shipment.direction), ())
    return [kind for kind in required if kind not in present]


# -- filing ---------------------------------------------------------------------------------------------------------


async def _current_of_type(session: AsyncSession, shipment_id: uuid.UUID, kind: DocumentType) -> Document | None:
    if kind is DocumentType.OTHER:
        return None
    return await session.scalar(
        select(Document)
        .where(Document.shipment_id == shipment_id, Document.type == kind, Document.superseded_by_id.is_(None))
        .with_for_update()
    )


def _record(ctx: Context, session: AsyncSession, document: Document, changed: list[str]) -> None:
    ctx.record(
        session,
        DocumentUpdated(
            document_id=document.id, shipment_id=document.shipment_id, thread_id=document.thread_id, changed=changed
        ),
    )


async def _file(
    ctx: Context,
    session: AsyncSession,
    *,
    shipment: Shipment,
    attachment: Attachment,
    kind: DocumentType,
    status: DocumentStatus,
    thread_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    attachment_field: str,
) -> Document:
    """A new document (the shipment's row locked by the caller); the current one of its type becomes its previous
    version."""
    viewer = ctx.viewer
    filed = await session.scalar(
        select(Document.id).where(Document.shipment_id == shipment.id, Document.attachment_id == attachment.id)
    )
    if filed is not None:
        raise DomainError(
            "TAKEN", f"The file '{attachment.filename}' is already a document of this shipment.", attachment_field
        )
    document_id = uuid.uuid4()
    current = await _current_of_type(session, shipment.id, kind)
    if current is not None:  # first, so that the one-current-per-type index holds (the key is checked at commit)
        current.superseded_by_id = document_id
        await session.flush()
    document = Document(
        id=document_id,
        organization_id=viewer.organization_id,
        shipment_id=shipment.id,
        thread_id=thread_id,
        message_id=message_id,
        attachment_id=attachment.id,
        type=kind,
        status=status,
        version=current.version + 1 if current else 1,
        lineage_id=current.lineage_id if current else document_id,
        uploaded_by_id=viewer.user_id,
        text_state=DocumentTextState.PENDING,
        entities=[],
    )
    session.add(document)
    await session.flush()
    ctx.record(
        session,
        DocumentAdded(document_id=document.id, shipment_id=shipment.id, thread_id=thread_id, document_type=kind.name),
    )
    if current is not None:
        _record(ctx, session, current, ["superseded_by_id"])
    return document


async def document_upload(
    ctx: Context,
    *,
    shipment_id: uuid.UUID | None,
    attachment_id: uuid.UUID | None,
    type: DocumentType,
    thread_id: uuid.UUID | None = None,
    status: DocumentStatus | None = None,
) -> Document:
    """File an uploaded file (POST /attachments, or a message's attachment) on a shipment as a document of `type`,
    DRAFT or RECEIVED (the default); with the thread it belongs to, when given (a thread linked to another shipment
    is INVALID). A file that came with a message keeps that message (and its thread, when none is given)."""
    ctx.require(Permission.CUSTOMER_MANAGE)
    status = status or DocumentStatus.RECEIVED
    if status not in FILED_STATUSES:
        raise DomainError("INVALID", "A document is filed as DRAFT or RECEIVED; approve or reject it after.", "status")
    async with ctx.transaction() as session:
        shipment = await get_or_error(session, Shipment, shipment_id, "shipmentId", lock=True, label="shipment")
        attachment = await get_or_error(session, Attachment, attachment_id, "attachmentId", label="attachment")
        message = await session.get(Message, attachment.message_id) if attachment.message_id else None
        if thread_id is not None:
            thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
            if thread.shipment_id is not None and thread.shipment_id != shipment.id:
                raise DomainError("INVALID", f"The thread {thread.reference} is about another shipment.", "threadId")
            if message is not None and message.thread_id != thread.id:
                message = None
        elif message is not None:  # the message's thread, unless it is about another shipment
            linked = await session.scalar(select(Thread.shipment_id).where(Thread.id == message.thread_id))
            if linked is None or linked == shipment.id:
                thread_id = message.thread_id
            else:
                message = None
        return await _file(
            ctx,
            session,
            shipment=shipment,
            attachment=attachment,
            kind=type,
            status=status,
            thread_id=thread_id,
            message_id=message.id if message else None,
            attachment_field="attachmentId",
        )


async def document_file_from_message(
    ctx: Context,
    *,
    message_id: uuid.UUID | None,
    attachment_id: uuid.UUID | None = None,
    type: DocumentType | None = None,
) -> Document:
    """File an attachment of a message (an email's, a WhatsApp media) as a RECEIVED document of the shipment its
    thread is linked to, in one step. `attachment_id` may be left out when the message has one file (inline images
    aside); `type` is guessed from the file's name when left out (OTHER when it says nothing)."""
    ctx.require(Permission.CUSTOMER_MANAGE)
    async with ctx.transaction() as session:
        message = await get_or_error(session, Message, message_id, "messageId", label="message")
        thread = await get_or_error(session, Thread, message.thread_id, "messageId", label="message")
        if thread.shipment_id is None:
            raise DomainError(
                "INVALID",
                f"The thread {thread.reference} is not linked to a shipment; link it first (threadUpdate's shipmentId).",
                "messageId",
            )
        shipment = await get_or_error(session, Shipment, thread.shipment_id, "messageId", lock=True, label="shipment")
        if attachment_id is not None:
            attachment = await session.scalar(
                select(Attachment).where(Attachment.id == attachment_id, Attachment.message_id == message.id)
            )
            if attachment is None:
                raise DomainError("NOT_FOUND", "The message has no such attachment.", "attachmentId")
        else:
            files = list(
                await session.scalars(
                    select(Attachment)
                    .where(Attachment.message_id == message.id, Attachment.inline.is_(False))
                    .order_by(Attachment.created_at, Attachment.id)
                )
            )
            if not files:
                raise DomainError("INVALID", "The message has no attached file.", "messageId")
            if len(files) > 1:
                names = ", ".join(f"'{f.filename}'" for f in files[:5])
                raise DomainError(
                    "INVALID", f"The message has {len(files)} files ({names}); say which one.", "attachmentId"
                )
            attachment = files[0]
        kind = type or DocumentType[guess_type(attachment.filename)]
        return await _file(
            ctx,
            session,
            shipment=shipment,
            attachment=attachment,
            kind=kind,
            status=DocumentStatus.RECEIVED,
            thread_id=thread.id,
            message_id=message.id,
            attachment_field="attachmentId" if attachment_id is not None else "messageId",
        )


# -- classifying and reviewing ----------------------------------------------------------------------------------------


async def _current_document(session: AsyncSession, document_id: uuid.UUID | None) -> Document:
    """The document, locked with its shipment (shipment first, as filing does); INVALID when it was superseded."""
    found = await get_or_error(session, Document, document_id, "id", label="document")
    await session.scalar(select(Shipment.id).where(Shipment.id == found.shipment_id).with_for_update())
    document = await session.scalar(
        select(Document).where(Document.id == found.id).with_for_update().execution_options(populate_existing=True)
    )
    if document is None:  # deleted meanwhile
        raise DomainError("NOT_FOUND", "No such document.", "id")
    if document.superseded_by_id is not None:
        raise DomainError("INVALID", "A newer version supersedes this document; work on the current one.", "id")
    return document


async def document_classify(ctx: Context, document_id: uuid.UUID | None, type: DocumentType) -> Document:
    """Set a document's type. Classified as a type the shipment already has a current document of, it becomes that
    one's new version. A document with earlier versions keeps its type (file it again as the other type)."""
    ctx.require(Permission.CUSTOMER_MANAGE)
    async with ctx.transaction() as session:
        document = await _current_document(session, document_id)
        if document.type is type:
            return document
        if document.version > 1:
            raise DomainError(
                "INVALID",
                f"This document is version {document.version} of a {document.type.name}; its versions keep their "
                "type (upload the file again as the other type).",
                "type",
            )
        current = await _current_of_type(session, document.shipment_id, type)
        changed = ["type"]
        if current is not None:
            current.superseded_by_id = document.id
            await session.flush()
            document.lineage_id = current.lineage_id
            document.version = current.version + 1
            changed.append("version")
        document.type = type
        await session.flush()
        _record(ctx, session, document, changed)
        if current is not None:
            _record(ctx, session, current, ["superseded_by_id"])
    return document


async def _review(ctx: Context, document_id: uuid.UUID | None, status: DocumentStatus, reason: str | None) -> Document:
    viewer = ctx.require(Permission.ACTION_APPROVE)
    async with ctx.transaction() as session:
        document = await _current_document(session, document_id)
        if document.status is status and document.rejection_reason == reason:
            return document
        changed = apply_changes(
            document,
            {
                "status": status,
                "reviewer_id": viewer.user_id,
                "reviewed_at": datetime.now(UTC),
                "rejection_reason": reason,
            },
        )
        await session.flush()
        _record(ctx, session, document, [name for name in changed if name != "reviewed_at"])
    return document


async def document_approve(ctx: Context, document_id: uuid.UUID | None) -> Document:
    """Approve a current document (a DRAFT, RECEIVED or REJECTED one): the reviewer and the time are kept."""
    return await _review(ctx, document_id, DocumentStatus.APPROVED, None)


async def document_reject(ctx: Context, document_id: uuid.UUID | None, reason: str | None) -> Document:
    """Reject a current document with a reason (required: what the customer must fix)."""
    ctx.require(Permission.ACTION_APPROVE)
    clean = v.text(reason, "reason", max_length=REASON_MAX, required=True)
    return await _review(ctx, document_id, DocumentStatus.REJECTED, clean)


# -- reading ------------------------------------------------------------------------------------------------------


def documents_query(
    ctx: Context,
    *,
    shipment_id: uuid.UUID | None = None,
    thread_id: uuid.UUID | None = None,
    type: list[DocumentType] | None = None,
    status: list[DocumentStatus] | None = None,
    search: str | None = None,
    include_superseded: bool = False,
) -> Select[Any]:
    ctx.require(Permission.READ)
    query = select(Document)
    if shipment_id is not None:
        query = query.where(Document.shipment_id == shipment_id)
    if thread_id is not None:
        query = query.where(Document.thread_id == thread_id)
    if type:
        query = query.where(Document.type.in_(type))
    if status:
        query = query.where(Document.status.in_(status))
    if not include_superseded:
        query = query.where(Document.superseded_by_id.is_(None))
    tsquery = search_tsquery(search) if search else None
    if tsquery is not None:  # (a text without a letter or digit filters nothing, as the inbox search)
        query = query.where(Document.search.op("@@")(tsquery))
    return query


DOCUMENT_ORDER = (Document.created_at, Document.id)  # newest first (descending)


async def documents_page(ctx: Context, *, first: int | None, after: str | None, **filters: Any) -> Page[Document]:
    """Documents, newest first, filtered as `documents_query` (current versions unless `include_superseded`)."""
    return await paginate(
        ctx.db, documents_query(ctx, **filters), DOCUMENT_ORDER, first=first, after=after, descending=True
    )


# -- the text ---------------------------------------------------------------------------------------------------------


async def document_extract_text(ctx: SystemContext, document_id: uuid.UUID) -> DocumentTextState | None:
    """Read a PENDING document's text (pypdf's text layer, plain text; NO_TEXT for images and scans; FAILED with
    the reason for a file that cannot be read) and the freight entities in it; then DOCUMENT_UPDATED. Idempotent:
    a document read already is left as it is. None for a document that is gone."""
    async with ctx.session() as session:  # across organizations: the document says which one
        row = (
            await session.execute(
                select(Document, Attachment)
                .join(Attachment, Attachment.id == Document.attachment_id)
                .where(Document.id == document_id)
            )
        ).first()
    if row is None:
        return None
    document, attachment = row
    if document.text_state is not DocumentTextState.PENDING:
        return document.text_state
    settings = ctx.settings
    path = attachment_path(settings.data_dir, attachment.sha256)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        state, text, pages, error = DocumentTextState.FAILED, None, None, f"The file could not be read: {exc}"
    else:
        reading = asyncio.to_thread(
            read_text,
            data,
            attachment.content_type,
            attachment.filename,
            max_pages=settings.document_text_max_pages,
            max_chars=settings.document_text_max_chars,
        )
        try:
            result = await asyncio.wait_for(reading, READ_TIMEOUT_SECONDS)
        except TimeoutError:  # a pathological PDF: given up (its thread finishes in the background), not retried
            state, text, pages = DocumentTextState.FAILED, None, None
            error = f"Reading the file took longer than {READ_TIMEOUT_SECONDS} s; it was given up."
        else:
            state, text, pages, error = DocumentTextState[result.state], result.text, result.pages, result.error
    entities = document_entities(text, reference_date=document.created_at.date()) if text else ()
    org = ctx.for_organization(document.organization_id)
    async with org.transaction() as session:
        pending = await session.scalar(
            select(Document)
            .where(Document.id == document_id, Document.text_state == DocumentTextState.PENDING)
            .with_for_update()
        )
        if pending is None:
            return None  # gone, or a concurrent delivery got there first
        pending.text_state = state
        pending.extracted_text = text
        pending.text_error = error
        pending.pages = pages
        pending.entities = [
            {"kind": e.kind.name, "value": e.value, "text": e.text, "start": e.start, "end": e.end} for e in entities
        ]
        await session.flush()
        org.record(
            session,
            DocumentUpdated(
                document_id=pending.id,
                shipment_id=pending.shipment_id,
                thread_id=pending.thread_id,
                changed=["text_state", "text", "entities"],
            ),
        )
    log.info("document text", document=str(document_id), state=state.name, pages=pages, entities=len(entities))
    return state
