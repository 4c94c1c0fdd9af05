"""Shipments and their milestones."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError

from banxway.auth import Permission
from banxway.db.models import Customer, Shipment, ShipmentMilestone
from banxway.enums import MilestoneType, ShipmentMode, ShipmentStatus
from banxway.errors import DomainError
from banxway.events import ShipmentCreated, ShipmentMilestoneAdded, ShipmentUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import apply_changes, get_or_error
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from banxway.context import Context

_SHORT_TEXT = {
    "carrier": 200,
    "vessel": 200,
    "voyage": 50,
    "flight_number": 20,
    "bl_number": 50,
    "awb_number": 20,
    "booking_number": 50,
    "origin_name": 200,
    "destination_name": 200,
}
_AS_IS = {"mode", "direction", "status", "etd", "eta", "atd", "ata"}
_CAMEL = {
    "flight_number": "flightNumber",
    "bl_number": "blNumber",
    "awb_number": "awbNumber",
    "booking_number": "bookingNumber",
    "origin_name": "origin.name",
    "destination_name": "destination.name",
    "origin_code": "origin.code",
    "destination_code": "destination.code",
    "container_numbers": "containerNumbers",
}


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        field = _CAMEL.get(name, name)
        if name == "reference":
            ref = v.text(value, "reference", max_length=50, required=True)
            cleaned[name] = ref.upper() if ref else ref
        elif name in ("origin_code", "destination_code"):
            cleaned[name] = v.locode(value, field)
        elif name == "container_numbers":
            numbers = [v.container_number(n, f"containerNumbers.{i}") for i, n in enumerate(value or [])]
            cleaned[name] = list(dict.fromkeys(numbers))
        elif name in _SHORT_TEXT:
            text = v.text(value, field, max_length=_SHORT_TEXT[name])
            cleaned[name] = text.upper() if text and name.endswith("_number") else text
        elif name in _AS_IS:
            cleaned[name] = value
        else:  # pragma: no cover
            raise ValueError(name)
    if cleaned.get("awb_number"):
        digits = cleaned["awb_number"].replace("-", "").replace(" ", "")
        if not (digits.isdigit() and len(digits) == 11 and int(digits[3:10]) % 7 == int(digits[10])):
            raise DomainError(
                "INVALID",
                f"'{cleaned['awb_number']}' is not an air waybill number (3+8 digits, mod-7 check).",
                "awbNumber",
            )
        cleaned["awb_number"] = f"{digits[:3]}-{digits[3:]}"
    return cleaned


def _check_dates(shipment: Shipment) -> None:
    for start, end in (("etd", "eta"), ("atd", "ata")):
        a, b = getattr(shipment, start), getattr(shipment, end)
        if a is not None and b is not None and b < a:
            raise DomainError("INVALID", f"{end} must not be before {start}.", end)


def _taken(reference: str) -> DomainError:
    return DomainError("TAKEN", f"Another shipment already has reference '{reference}'.", "reference")


async def shipment_create(ctx: Context, *, customer_id: uuid.UUID | None, **fields: Any) -> Shipment:
    viewer = ctx.require(Permission.CUSTOMER_MANAGE)
    values = _clean(fields)
    if values.get("mode") is None:
        values["mode"] = ShipmentMode.SEA
    values.setdefault("status", ShipmentStatus.BOOKED)
    if values["status"] is None:
        values["status"] = ShipmentStatus.BOOKED
    try:
        async with ctx.transaction() as session:
            if await session.scalar(select(Shipment.id).where(Shipment.reference == values["reference"])):
                raise _taken(values["reference"])
            if customer_id is not None:
                await get_or_error(session, Customer, customer_id, "customerId", label="customer")
            shipment = Shipment(organization_id=viewer.organization_id, customer_id=customer_id, **values)
            _check_dates(shipment)
            session.add(shipment)
            await session.flush()
            ctx.record(session, ShipmentCreated(shipment_id=shipment.id))
    except IntegrityError:
        raise _taken(values["reference"]) from None
    return shipment


async def shipment_update(ctx: Context, shipment_id: uuid.UUID | None, changes: dict[str, Any]) -> Shipment:
    ctx.require(Permission.CUSTOMER_MANAGE)
    customer_given = "customer_id" in changes
    customer_id = changes.pop("customer_id", None)
    values = _clean(changes)
    try:
        async with ctx.transaction() as session:
            shipment = await get_or_error(session, Shipment, shipment_id, "id", lock=True)
            if "reference" in values and values["reference"] != shipment.reference:
                if await session.scalar(select(Shipment.id).where(Shipment.reference == values["reference"])):
                    raise _taken(values["reference"])
            if customer_given:
                if customer_id is not None:
                    await get_or_error(session, Customer, customer_id, "customerId", label="customer")
                values["customer_id"] = customer_id
            for required in ("mode", "direction", "status"):
                if required in values and values[required] is None:
                    raise DomainError("INVALID", f"{required} cannot be cleared.", required)
            changed = apply_changes(shipment, values)
            _check_dates(shipment)
            if changed:
                ctx.record(session, ShipmentUpdated(shipment_id=shipment.id, changed=changed))
    except IntegrityError:
        raise _taken(values.get("reference", "")) from None
    return shipment


# An actual milestone fills in the shipment's own facts when they are still empty.
_MILESTONE_FACTS = {MilestoneType.DEPARTED: "atd", MilestoneType.ARRIVED: "ata"}
_MILESTONE_STATUS = {
    MilestoneType.DEPARTED: ShipmentStatus.IN_TRANSIT,
    MilestoneType.ARRIVED: ShipmentStatus.ARRIVED,
    MilestoneType.DELIVERED: ShipmentStatus.DELIVERED,
}


# A milestone moves the status forward only; CANCELLED is never left this way.
_STATUS_RANK = {
    ShipmentStatus.DRAFT: 0,
    ShipmentStatus.BOOKED: 0,
    ShipmentStatus.IN_TRANSIT: 1,
    ShipmentStatus.ARRIVED: 2,
    ShipmentStatus.CUSTOMS_HOLD: 2,
    ShipmentStatus.DELIVERED: 3,
    ShipmentStatus.CANCELLED: 9,
}


async def shipment_milestone_add(
    ctx: Context,
    shipment_id: uuid.UUID | None,
    *,
    type: MilestoneType,
    planned_at: datetime | None = None,
    actual_at: datetime | None = None,
    location_code: str | None = None,
    location_name: str | None = None,
    note: str | None = None,
) -> ShipmentMilestone:
    viewer = ctx.require(Permission.CUSTOMER_MANAGE)
    if planned_at is None and actual_at is None:
        raise DomainError("INVALID", "A milestone needs a planned or an actual time.", "plannedAt")
    code = v.locode(location_code, "location.code")
    name = v.text(location_name, "location.name", max_length=200)
    clean_note = v.text(note, "note", max_length=2000)
    async with ctx.transaction() as session:
        shipment = await get_or_error(session, Shipment, shipment_id, "shipmentId", lock=True, label="shipment")
        milestone = ShipmentMilestone(
            organization_id=viewer.organization_id,
            shipment_id=shipment.id,
            type=type,
            planned_at=planned_at,
            actual_at=actual_at,
            location_code=code,
            location_name=name,
            note=clean_note,
        )
        session.add(milestone)
        changed: list[str] = []
        if actual_at is not None:
            fact = _MILESTONE_FACTS.get(type)
            if fact and getattr(shipment, fact) is None:
                setattr(shipment, fact, actual_at)
                changed.append(fact)
            status = _MILESTONE_STATUS.get(type)
            if status and _STATUS_RANK[status] > _STATUS_RANK[shipment.status]:
                shipment.status = status
                changed.append("status")
        await session.flush()
        ctx.record(session, ShipmentMilestoneAdded(shipment_id=shipment.id, milestone_id=milestone.id))
        if changed:
            ctx.record(session, ShipmentUpdated(shipment_id=shipment.id, changed=changed))
    return milestone


def shipments_query(
    ctx: Context,
    *,
    customer_id: uuid.UUID | None = None,
    status: list[ShipmentStatus] | None = None,
    container_number: str | None = None,
    bl_number: str | None = None,
    booking_number: str | None = None,
    awb_number: str | None = None,
    reference: str | None = None,
    search: str | None = None,
) -> Select[Any]:
    ctx.require(Permission.READ)
    query = select(Shipment)
    if customer_id is not None:
        query = query.where(Shipment.customer_id == customer_id)
    if status:
        query = query.where(Shipment.status.in_(status))
    if container_number:
        query = query.where(Shipment.container_numbers.contains([container_number.replace(" ", "").upper()]))
    if bl_number:
        query = query.where(Shipment.bl_number == bl_number.strip().upper())
    if booking_number:
        query = query.where(Shipment.booking_number == booking_number.strip().upper())
    if awb_number:  # stored as written (176-12345675, 176 1234 5675): compared on the digits
        digits = "".join(ch for ch in awb_number if ch.isdigit())
        query = query.where(func.regexp_replace(Shipment.awb_number, "[^0-9]", "", "g") == digits)
    if reference:
        query = query.where(Shipment.reference == reference.strip().upper())
    if search and search.strip():
        pattern = f"%{search.strip()}%"
        query = query.where(or_(Shipment.reference.ilike(pattern), Shipment.bl_number.ilike(pattern)))
    return query


async def shipments_page(
    ctx: Context,
    *,
    first: int | None,
    after: str | None,
    customer_id: uuid.UUID | None = None,
    status: list[ShipmentStatus] | None = None,
    container_number: str | None = None,
    bl_number: str | None = None,
    booking_number: str | None = None,
    awb_number: str | None = None,
    reference: str | None = None,
    search: str | None = None,
) -> Page[Shipment]:
    """Shipments, newest first, filtered as `shipments_query`."""
    query = shipments_query(
        ctx,
        customer_id=customer_id,
        status=status,
        container_number=container_number,
        bl_number=bl_number,
        booking_number=booking_number,
        awb_number=awb_number,
        reference=reference,
        search=search,
    )
    return await paginate(ctx.db, query, SHIPMENT_ORDER, first=first, after=after, descending=True)


SHIPMENT_ORDER = (Shipment.created_at, Shipment.id)  # newest first (descending); also read by the compiled path
