"""Contacts: the people we talk to, their address on each channel, and merging duplicates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from banxway import db
from banxway.resolvers import contacts as contact_use_cases
from banxway.schema.customers import Customer
from banxway.schema.enums import Channel
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, filter_id, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.pagination import Connection, connection

ContactError, ContactErrorCode = error_type("Contact", RECORD_CODES)


@strawberry.type
class ContactIdentity:
    channel: Channel
    address: str = strawberry.field(description="Lower-cased email, E.164 phone number, or web-chat visitor id.")


@strawberry.type
class Contact(Node):
    id: strawberry.ID = _id_field("Contact")
    name: str
    title: str | None
    verified: bool = strawberry.field(description="False for contacts created from an unknown sender.")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Contact)
    resolve_nodes = _node_resolver("contact_by_id")

    @strawberry.field
    def customer(self, info: Ctx) -> Customer | None:
        return related(self, info, "customer", "customer_by_id", self.customer_id)  # type: ignore[attr-defined]

    @strawberry.field
    def identities(self, info: Ctx) -> list[ContactIdentity]:
        return info.context.loaders.identities_by_contact_id.load(self.id)  # type: ignore[return-value]

    @strawberry.field(description="The contact this one was merged into, if it was.")
    def merged_into(self, info: Ctx) -> Contact | None:
        merged = self.merged_into_id  # type: ignore[attr-defined]
        return info.context.loaders.contact_by_id.load(merged) if merged else None  # type: ignore[return-value]


# Columns read by Contact's fields that are not simply a column or a link's key (`lookahead.columns_for`).
CONTACT_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {"identities": ()}


@strawberry.input
class ContactIdentityInput:
    channel: Channel
    address: str


@strawberry.input
class ContactInput:
    name: str
    title: str | None = None
    customer_id: strawberry.ID | None = None
    identities: list[ContactIdentityInput] | None = None


@strawberry.input
class ContactUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    title: str | None = strawberry.UNSET
    customer_id: strawberry.ID | None = strawberry.UNSET
    identities: list[ContactIdentityInput] | None = strawberry.field(
        default=strawberry.UNSET, description="When given, the contact's complete set of identities."
    )


@strawberry.input
class ContactMergeInput:
    kept_contact_id: strawberry.ID
    merged_contact_id: strawberry.ID


@strawberry.input
class ContactUnmergeInput:
    contact_id: strawberry.ID = strawberry.field(description="The contact that was merged away.")


@strawberry.type
class ContactPayload:
    contact: Contact | None = None
    user_errors: list[ContactError]  # type: ignore[valid-type]


@strawberry.type
class ContactMergePayload:
    kept_contact: Contact | None = None
    merged_contact: Contact | None = None
    user_errors: list[ContactError]  # type: ignore[valid-type]


def _identities(values: list[ContactIdentityInput] | None) -> list[contact_use_cases.IdentityInput] | None:
    if values is None:
        return None
    return [contact_use_cases.IdentityInput(channel=i.channel, address=i.address) for i in values]


async def _merge_fields(info: Ctx, merge: Any) -> dict:
    kept, merged = await info.context.loaders.contact_by_id.load_many([merge.kept_contact_id, merge.merged_contact_id])
    return {"kept_contact": kept, "merged_contact": merged}


@strawberry.type
class ContactQuery:
    @strawberry.field(
        description="Contacts by name; `search` matches name or any address. Merged-away contacts are left out."
    )
    async def contacts(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        search: str | None = None,
        customer_id: strawberry.ID | None = None,
    ) -> Connection[Contact]:
        customer = filter_id(customer_id, "Customer")
        return connection(
            await contact_use_cases.contacts_page(info.context, search, customer, first=first, after=after)
        )


@strawberry.type
class ContactMutation:
    @strawberry.mutation
    async def contact_create(self, info: Ctx, input: ContactInput) -> ContactPayload:
        async def call() -> dict:
            contact = await contact_use_cases.contact_create(
                info.context,
                name=input.name,
                title=input.title,
                customer_id=decode_optional(input.customer_id, "Customer", "customerId"),
                identities=_identities(input.identities),
            )
            return {"contact": contact}

        return await mutate(ContactPayload, ContactError, ContactErrorCode, call)

    @strawberry.mutation
    async def contact_update(self, info: Ctx, input: ContactUpdateInput) -> ContactPayload:
        async def call() -> dict:
            values = changes(input, {"name": "name", "title": "title"})
            if given(input.customer_id):
                values["customer_id"] = decode_optional(input.customer_id, "Customer", "customerId")
            identities = _identities(input.identities) if given(input.identities) else None
            if given(input.identities) and identities is None:
                identities = []
            contact_id = decode(input.id, "Contact", "id")
            return {"contact": await contact_use_cases.contact_update(info.context, contact_id, values, identities)}

        return await mutate(ContactPayload, ContactError, ContactErrorCode, call)

    @strawberry.mutation(description="Merge a duplicate contact into another; undo with contactUnmerge.")
    async def contact_merge(self, info: Ctx, input: ContactMergeInput) -> ContactMergePayload:
        async def call() -> dict:
            merge = await contact_use_cases.contact_merge(
                info.context,
                decode(input.kept_contact_id, "Contact", "keptContactId"),
                decode(input.merged_contact_id, "Contact", "mergedContactId"),
            )
            return await _merge_fields(info, merge)

        return await mutate(ContactMergePayload, ContactError, ContactErrorCode, call)

    @strawberry.mutation(description="Undo the latest merge of a contact, exactly.")
    async def contact_unmerge(self, info: Ctx, input: ContactUnmergeInput) -> ContactMergePayload:
        async def call() -> dict:
            merge = await contact_use_cases.contact_unmerge(
                info.context, decode(input.contact_id, "Contact", "contactId")
            )
            return await _merge_fields(info, merge)

        return await mutate(ContactMergePayload, ContactError, ContactErrorCode, call)
