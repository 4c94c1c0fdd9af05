"""Customers: the companies we ship for."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError

from banxway.auth import Permission
from banxway.db.models import Customer
from banxway.errors import DomainError
from banxway.events import CustomerCreated, CustomerUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import apply_changes, get_or_error
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from banxway.context import Context


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "name":
            cleaned[name] = v.text(value, "name", max_length=200, required=True)
        elif name == "code":
            cleaned[name] = v.text(value, "code", max_length=50)
            cleaned[name] = cleaned[name].upper() if cleaned[name] else None
        elif name == "email":
            cleaned[name] = v.email(value)
        elif name == "phone":
            cleaned[name] = v.phone(value)
        elif name == "address":
            cleaned[name] = v.text(value, "address", max_length=2000)
        elif name == "tags":
            cleaned[name] = v.tags(value)
        elif name == "custom_fields":
            cleaned[name] = v.json_object(value, "customFields")
        else:  # pragma: no cover - the schema only passes known fields
            raise ValueError(name)
    return cleaned


def _taken(code: str | None) -> DomainError:
    return DomainError("TAKEN", f"Another customer already has code '{code}'.", "code")


async def customer_create(ctx: Context, **fields: Any) -> Customer:
    viewer = ctx.require(Permission.CUSTOMER_MANAGE)
    values = _clean({"tags": None, "custom_fields": None, **fields})
    try:
        async with ctx.transaction() as session:
            if values.get("code") and await session.scalar(select(Customer.id).where(Customer.code == values["code"])):
                raise _taken(values["code"])
            customer = Customer(organization_id=viewer.organization_id, **values)
            session.add(customer)
            await session.flush()
            ctx.record(session, CustomerCreated(customer_id=customer.id))
    except IntegrityError:
        raise _taken(values.get("code")) from None
    return customer


async def customer_update(ctx: Context, customer_id: uuid.UUID | None, changes: dict[str, Any]) -> Customer:
    ctx.require(Permission.CUSTOMER_MANAGE)
    values = _clean(changes)
    try:
        async with ctx.transaction() as session:
            customer = await get_or_error(session, Customer, customer_id, "id", lock=True)
            if values.get("code") and values["code"] != customer.code:
                if await session.scalar(select(Customer.id).where(Customer.code == values["code"])):
                    raise _taken(values["code"])
            changed = apply_changes(customer, values)
            if changed:
                ctx.record(session, CustomerUpdated(customer_id=customer.id, changed=changed))
    except IntegrityError:
        raise _taken(values.get("code")) from None
    return customer


def customers_query(ctx: Context, search: str | None) -> Select[Any]:
    ctx.require(Permission.READ)
    query = select(Customer)
    if search and search.strip():
        pattern = f"%{search.strip()}%"
        query = query.where(
            or_(Customer.name.ilike(pattern), Customer.code.ilike(pattern), Customer.email.ilike(pattern))
        )
    return query


CUSTOMER_ORDER = (Customer.name, Customer.id)  # the keyset of the customers list (also read by the compiled path)


async def customers_page(ctx: Context, search: str | None, *, first: int | None, after: str | None) -> Page[Customer]:
    """Customers by name; `search` matches name, code or email."""
    query = customers_query(ctx, search)
    return await paginate(ctx.db, query, CUSTOMER_ORDER, first=first, after=after)
