"""Customers: the companies we ship for."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from banxway import db
from banxway.resolvers import contacts as contact_use_cases
from banxway.resolvers import customers as customer_use_cases
from banxway.resolvers import shipments as shipment_use_cases
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver
from banxway.schema.pagination import Connection, connection

if TYPE_CHECKING:
    from banxway.schema.contacts import Contact
    from banxway.schema.shipments import Shipment

ContactRef = Annotated["Contact", strawberry.lazy("banxway.schema.contacts")]
ShipmentRef = Annotated["Shipment", strawberry.lazy("banxway.schema.shipments")]

CustomerError, CustomerErrorCode = error_type("Customer", RECORD_CODES)


@strawberry.type
class Customer(Node):
    id: strawberry.ID = _id_field("Customer")
    name: str
    code: str | None
    email: str | None
    phone: str | None
    address: str | None
    tags: list[str]
    custom_fields: JSON
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Customer)
    resolve_nodes = _node_resolver("customer_by_id")

    @strawberry.field(description="The customer's contacts, by name.")
    async def contacts(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[ContactRef]:
        page = await contact_use_cases.contacts_page(info.context, None, self.id, first=first, after=after)  # type: ignore[arg-type]
        return connection(page)

    @strawberry.field(description="The customer's shipments, newest first.")
    async def shipments(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[ShipmentRef]:
        page = await shipment_use_cases.shipments_page(info.context, first=first, after=after, customer_id=self.id)  # type: ignore[arg-type]
        return connection(page)


# Columns read by Customer's fields that are not simply a column or a link's key (`lookahead.columns_for`).
CUSTOMER_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {"contacts": (), "shipments": ()}


@strawberry.input
class CustomerInput:
    name: str
    code: str | None = None
    email: str | None = None
    phone: str | None = strawberry.field(default=None, description="International form, +<country code><number>.")
    address: str | None = None
    tags: list[str] | None = None
    custom_fields: JSON | None = None


@strawberry.input
class CustomerUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    code: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    address: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    custom_fields: JSON | None = strawberry.UNSET


_CUSTOMER_FIELDS = {
    "name": "name",
    "code": "code",
    "email": "email",
    "phone": "phone",
    "address": "address",
    "tags": "tags",
    "custom_fields": "custom_fields",
}


@strawberry.type
class CustomerPayload:
    customer: Customer | None = None
    user_errors: list[CustomerError]  # type: ignore[valid-type]


@strawberry.type
class CustomerQuery:
    @strawberry.field(description="Customers by name; `search` matches name, code or email.")
    async def customers(
        self, info: Ctx, first: int | None = None, after: str | None = None, search: str | None = None
    ) -> Connection[Customer]:
        return connection(await customer_use_cases.customers_page(info.context, search, first=first, after=after))


@strawberry.type
class CustomerMutation:
    @strawberry.mutation
    async def customer_create(self, info: Ctx, input: CustomerInput) -> CustomerPayload:
        async def call() -> dict:
            fields = {name: getattr(input, name) for name in _CUSTOMER_FIELDS}
            return {"customer": await customer_use_cases.customer_create(info.context, **fields)}

        return await mutate(CustomerPayload, CustomerError, CustomerErrorCode, call)

    @strawberry.mutation
    async def customer_update(self, info: Ctx, input: CustomerUpdateInput) -> CustomerPayload:
        async def call() -> dict:
            customer_id = decode(input.id, "Customer", "id")
            values = changes(input, _CUSTOMER_FIELDS)
            return {"customer": await customer_use_cases.customer_update(info.context, customer_id, values)}

        return await mutate(CustomerPayload, CustomerError, CustomerErrorCode, call)
