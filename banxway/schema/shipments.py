"""Shipments and their milestones."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from banxway import db
from banxway.resolvers import documents as document_use_cases
from banxway.resolvers import shipments as shipment_use_cases
from banxway.resolvers import threads as thread_use_cases
from banxway.schema.customers import Customer
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, filter_id, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.pagination import Connection, connection

if TYPE_CHECKING:
    from banxway.schema.documents import Document, DocumentType
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]
DocumentRef = Annotated["Document", strawberry.lazy("banxway.schema.documents")]
DocumentTypeRef = Annotated["DocumentType", strawberry.lazy("banxway.schema.documents")]

ShipmentMode = strawberry.enum(db.ShipmentMode)
ShipmentDirection = strawberry.enum(db.ShipmentDirection)
ShipmentStatus = strawberry.enum(db.ShipmentStatus)
MilestoneType = strawberry.enum(db.MilestoneType)
ShipmentError, ShipmentErrorCode = error_type("Shipment", RECORD_CODES)


@strawberry.type
class Location:
    code: str | None = strawberry.field(description="UN/LOCODE, e.g. INNSA.")
    name: str | None


def _location(code: str | None, name: str | None) -> Location | None:
    return Location(code=code, name=name) if code or name else None


@strawberry.type
class ShipmentMilestone:
    type: MilestoneType
    planned_at: datetime | None
    actual_at: datetime | None
    note: str | None
    created_at: datetime

    is_type_of = _model_type_of(db.ShipmentMilestone)

    @strawberry.field
    def location(self) -> Location | None:
        return _location(self.location_code, self.location_name)  # type: ignore[attr-defined]


@strawberry.type
class Shipment(Node):
    id: strawberry.ID = _id_field("Shipment")
    reference: str
    mode: ShipmentMode
    direction: ShipmentDirection
    status: ShipmentStatus
    carrier: str | None
    vessel: str | None
    voyage: str | None
    flight_number: str | None
    container_numbers: list[str]
    bl_number: str | None
    awb_number: str | None
    booking_number: str | None
    etd: datetime | None
    eta: datetime | None
    atd: datetime | None
    ata: datetime | None
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Shipment)
    resolve_nodes = _node_resolver("shipment_by_id")

    @strawberry.field
    def customer(self, info: Ctx) -> Customer | None:
        return related(self, info, "customer", "customer_by_id", self.customer_id)  # type: ignore[attr-defined]

    @strawberry.field
    def origin(self) -> Location | None:
        return _location(self.origin_code, self.origin_name)  # type: ignore[attr-defined]

    @strawberry.field
    def destination(self) -> Location | None:
        return _location(self.destination_code, self.destination_name)  # type: ignore[attr-defined]

    @strawberry.field(description="Milestones in planned/actual order.")
    def milestones(self, info: Ctx) -> list[ShipmentMilestone]:
        return info.context.loaders.milestones_by_shipment_id.load(self.id)  # type: ignore[return-value]

    @strawberry.field(description="Threads about this shipment, most recent activity first.")
    async def threads(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[ThreadRef]:
        page = await thread_use_cases.shipment_threads_page(info.context, self.id, first=first, after=after)  # type: ignore[arg-type]
        return connection(page)

    @strawberry.field(description="The shipment's documents, current versions only, the oldest first.")
    async def documents(self, info: Ctx) -> list[DocumentRef]:
        return await info.context.loaders.documents_by_shipment_id.load(self.id)  # type: ignore[arg-type,return-value]

    @strawberry.field(
        description="The document types the shipment's mode and direction call for that no current RECEIVED or "
        "APPROVED document covers yet."
    )
    async def missing_documents(self, info: Ctx) -> list[DocumentTypeRef]:
        current = await info.context.loaders.documents_by_shipment_id.load(self.id)  # type: ignore[arg-type]
        return document_use_cases.missing_documents(self, current or [])  # type: ignore[arg-type,return-value]


# Columns read by Shipment's fields that are not simply a column or a link's key (`lookahead.columns_for`).
SHIPMENT_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "origin": ("origin_code", "origin_name"),
    "destination": ("destination_code", "destination_name"),
    "milestones": (),
    "threads": (),
    "documents": (),
    "missingDocuments": ("mode", "direction"),
}


@strawberry.input
class ShipmentFilter:
    customer_id: strawberry.ID | None = None
    status: list[ShipmentStatus] | None = None
    container_number: str | None = None
    bl_number: str | None = None
    booking_number: str | None = None
    awb_number: str | None = strawberry.field(default=None, description="With or without its dash and spaces.")
    reference: str | None = strawberry.field(default=None, description="The exact reference (any case).")
    search: str | None = strawberry.field(default=None, description="Part of the reference or BL number.")


@strawberry.input
class LocationInput:
    code: str | None = strawberry.field(default=None, description="UN/LOCODE, e.g. INNSA.")
    name: str | None = None


@strawberry.input
class ShipmentInput:
    reference: str
    customer_id: strawberry.ID | None = None
    mode: ShipmentMode | None = None
    direction: ShipmentDirection
    status: ShipmentStatus | None = None
    origin: LocationInput | None = None
    destination: LocationInput | None = None
    carrier: str | None = None
    vessel: str | None = None
    voyage: str | None = None
    flight_number: str | None = None
    container_numbers: list[str] | None = strawberry.field(default=None, description="ISO 6346, check digit verified.")
    bl_number: str | None = None
    awb_number: str | None = None
    booking_number: str | None = None
    etd: datetime | None = None
    eta: datetime | None = None
    atd: datetime | None = None
    ata: datetime | None = None


@strawberry.input
class ShipmentUpdateInput:
    id: strawberry.ID
    reference: str | None = strawberry.UNSET
    customer_id: strawberry.ID | None = strawberry.UNSET
    mode: ShipmentMode | None = strawberry.UNSET
    direction: ShipmentDirection | None = strawberry.UNSET
    status: ShipmentStatus | None = strawberry.UNSET
    origin: LocationInput | None = strawberry.UNSET
    destination: LocationInput | None = strawberry.UNSET
    carrier: str | None = strawberry.UNSET
    vessel: str | None = strawberry.UNSET
    voyage: str | None = strawberry.UNSET
    flight_number: str | None = strawberry.UNSET
    container_numbers: list[str] | None = strawberry.UNSET
    bl_number: str | None = strawberry.UNSET
    awb_number: str | None = strawberry.UNSET
    booking_number: str | None = strawberry.UNSET
    etd: datetime | None = strawberry.UNSET
    eta: datetime | None = strawberry.UNSET
    atd: datetime | None = strawberry.UNSET
    ata: datetime | None = strawberry.UNSET


_SHIPMENT_PLAIN = [
    "reference",
    "mode",
    "direction",
    "status",
    "carrier",
    "vessel",
    "voyage",
    "flight_number",
    "container_numbers",
    "bl_number",
    "awb_number",
    "booking_number",
    "etd",
    "eta",
    "atd",
    "ata",
]


def _shipment_fields(input: Any) -> dict[str, Any]:
    values = changes(input, {name: name for name in _SHIPMENT_PLAIN})
    for place in ("origin", "destination"):
        location = getattr(input, place)
        if given(location):
            values[f"{place}_code"] = location.code if location else None
            values[f"{place}_name"] = location.name if location else None
    return values


@strawberry.input
class ShipmentMilestoneAddInput:
    shipment_id: strawberry.ID
    type: MilestoneType
    planned_at: datetime | None = None
    actual_at: datetime | None = None
    location: LocationInput | None = None
    note: str | None = None


@strawberry.type
class ShipmentPayload:
    shipment: Shipment | None = None
    user_errors: list[ShipmentError]  # type: ignore[valid-type]


@strawberry.type
class ShipmentMilestonePayload:
    milestone: ShipmentMilestone | None = None
    shipment: Shipment | None = None
    user_errors: list[ShipmentError]  # type: ignore[valid-type]


def shipment_filter(where: ShipmentFilter | None) -> dict[str, Any]:
    """The filter as `shipments_query`'s arguments."""
    where = where or ShipmentFilter()
    return {
        "customer_id": filter_id(where.customer_id, "Customer"),
        "status": where.status,
        "container_number": where.container_number,
        "bl_number": where.bl_number,
        "booking_number": where.booking_number,
        "awb_number": where.awb_number,
        "reference": where.reference,
        "search": where.search,
    }


@strawberry.type
class ShipmentQuery:
    @strawberry.field(description="Shipments, newest first.")
    async def shipments(
        self, info: Ctx, first: int | None = None, after: str | None = None, filter: ShipmentFilter | None = None
    ) -> Connection[Shipment]:
        page = await shipment_use_cases.shipments_page(
            info.context, first=first, after=after, **shipment_filter(filter)
        )
        return connection(page)


@strawberry.type
class ShipmentMutation:
    @strawberry.mutation
    async def shipment_create(self, info: Ctx, input: ShipmentInput) -> ShipmentPayload:
        async def call() -> dict:
            shipment = await shipment_use_cases.shipment_create(
                info.context,
                customer_id=decode_optional(input.customer_id, "Customer", "customerId"),
                **_shipment_fields(input),
            )
            return {"shipment": shipment}

        return await mutate(ShipmentPayload, ShipmentError, ShipmentErrorCode, call)

    @strawberry.mutation
    async def shipment_update(self, info: Ctx, input: ShipmentUpdateInput) -> ShipmentPayload:
        async def call() -> dict:
            shipment_id = decode(input.id, "Shipment", "id")
            values = _shipment_fields(input)
            if given(input.customer_id):
                values["customer_id"] = decode_optional(input.customer_id, "Customer", "customerId")
            return {"shipment": await shipment_use_cases.shipment_update(info.context, shipment_id, values)}

        return await mutate(ShipmentPayload, ShipmentError, ShipmentErrorCode, call)

    @strawberry.mutation
    async def shipment_milestone_add(self, info: Ctx, input: ShipmentMilestoneAddInput) -> ShipmentMilestonePayload:
        async def call() -> dict:
            milestone = await shipment_use_cases.shipment_milestone_add(
                info.context,
                decode(input.shipment_id, "Shipment", "shipmentId"),
                type=input.type,
                planned_at=input.planned_at,
                actual_at=input.actual_at,
                location_code=input.location.code if input.location else None,
                location_name=input.location.name if input.location else None,
                note=input.note,
            )
            info.context.loaders.milestones_by_shipment_id._cache.pop(milestone.shipment_id, None)
            shipment = await info.context.loaders.shipment_by_id.load(milestone.shipment_id)
            return {"milestone": milestone, "shipment": shipment}

        return await mutate(ShipmentMilestonePayload, ShipmentError, ShipmentErrorCode, call)
