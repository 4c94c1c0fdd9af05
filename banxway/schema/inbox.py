"""Inbox queries and mutations: customers, contacts, shipments, threads, messages, notes, actions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from banxway import db
from banxway.context import Context
from banxway.resolvers import contacts as contact_use_cases
from banxway.resolvers import customers as customer_use_cases
from banxway.resolvers import messages as message_use_cases
from banxway.resolvers import shipments as shipment_use_cases
from banxway.resolvers import threads as thread_use_cases
from banxway.resolvers.inbox import MessageWindow, ThreadPrefetch, threads_page
from banxway.resolvers.pagination import paginate
from banxway.schema import lookahead
from banxway.schema.errors import (
    ActionError,
    ActionErrorCode,
    ContactError,
    ContactErrorCode,
    CustomerError,
    CustomerErrorCode,
    MessageError,
    MessageErrorCode,
    NoteError,
    NoteErrorCode,
    ShipmentError,
    ShipmentErrorCode,
    ThreadError,
    ThreadErrorCode,
    mutate,
)
from banxway.schema.ids import decode, decode_optional, given, local_id
from banxway.schema.integrations import TemplateSendInput
from banxway.schema.pagination import Connection, connection
from banxway.schema.types import (
    FIELD_COLUMNS,
    Action,
    ActionStatus,
    ActionType,
    Channel,
    Contact,
    Customer,
    Message,
    MilestoneType,
    Note,
    Priority,
    Shipment,
    ShipmentDirection,
    ShipmentMilestone,
    ShipmentMode,
    ShipmentStatus,
    Thread,
    ThreadStatus,
    ThreadType,
)

Ctx = Info[Context, None]


def _changes(input: Any, names: dict[str, str]) -> dict[str, Any]:
    """{snake_name: value} for the input fields that were given (null included)."""
    return {snake: getattr(input, attr) for attr, snake in names.items() if given(getattr(input, attr))}


# -- queries -----------------------------------------------------------------------


@strawberry.enum
class ThreadOrder(enum.Enum):
    LAST_ACTIVITY_DESC = "LAST_ACTIVITY_DESC"
    CREATED_DESC = "CREATED_DESC"
    PRIORITY = "PRIORITY"
    SLA_DUE = "SLA_DUE"


@strawberry.input(description="All given conditions must hold. Without `status`, archived threads are left out.")
class ThreadFilter:
    status: list[ThreadStatus] | None = None
    assignee_id: strawberry.ID | None = None
    assigned_to_me: bool | None = None
    unassigned: bool | None = None
    customer_id: strawberry.ID | None = None
    contact_id: strawberry.ID | None = None
    shipment_id: strawberry.ID | None = None
    channel: Channel | None = None
    type: ThreadType | None = None
    priority: Priority | None = None
    tag: str | None = None
    search: str | None = strawberry.field(default=None, description="Full-text over subject and message bodies.")
    updated_since: datetime | None = None


@strawberry.input
class ShipmentFilter:
    customer_id: strawberry.ID | None = None
    status: list[ShipmentStatus] | None = None
    container_number: str | None = None
    bl_number: str | None = None
    booking_number: str | None = None
    search: str | None = strawberry.field(default=None, description="Part of the reference or BL number.")


def _filter_id(value: strawberry.ID | None, type_name: str) -> Any:
    """A filter on an id that is not one of ours matches nothing (the nil uuid), never everything."""
    return None if value is None else decode(value, type_name, "filter")


def _thread_filter(where: ThreadFilter | None) -> thread_use_cases.ThreadFilter | None:
    if where is None:
        return None
    return thread_use_cases.ThreadFilter(
        status=where.status,
        assignee_id=_filter_id(where.assignee_id, "User"),
        assigned_to_me=where.assigned_to_me,
        unassigned=where.unassigned,
        customer_id=_filter_id(where.customer_id, "Customer"),
        contact_id=_filter_id(where.contact_id, "Contact"),
        shipment_id=_filter_id(where.shipment_id, "Shipment"),
        channel=where.channel,
        type=where.type,
        priority=where.priority,
        tag=where.tag,
        search=where.search,
        updated_since=where.updated_since,
    )


def _thread_prefetch(info: Ctx) -> tuple[ThreadPrefetch, bool]:
    """What the selection under `threads` needs, and whether it asks for totalCount."""
    field = info.selected_fields[0]
    nodes = lookahead.connection_nodes(field)
    links = {}
    for name, model in (
        ("customer", db.Customer),
        ("contact", db.Contact),
        ("shipment", db.Shipment),
        ("assignee", db.User),
    ):
        selected = lookahead.children(nodes, name)
        if selected:
            links[name] = lookahead.columns_for(model, selected, FIELD_COLUMNS[model])
    windows = []
    for messages in lookahead.children(nodes, "messages"):
        args = messages.arguments
        first, last = lookahead.int_argument(args, "first"), lookahead.int_argument(args, "last")
        if args.get("after") is None and args.get("before") is None and (first is None) != (last is None):
            columns = lookahead.columns_for(db.Message, lookahead.connection_nodes(messages), FIELD_COLUMNS[db.Message])
            windows.append(MessageWindow(size=min(first or last or 0, 100), from_end=last is not None, columns=columns))
    prefetch = ThreadPrefetch(
        links=tuple(sorted(links.items())),
        unread=lookahead.selects(nodes, "unreadCount"),
        message_windows=tuple(dict.fromkeys(windows)),
    )
    return prefetch, lookahead.selects([field], "totalCount")


@strawberry.type
class InboxQuery:
    @strawberry.field(description="The shared inbox: threads the viewer may see, most recent activity first.")
    async def threads(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ThreadFilter | None = None,
        order_by: ThreadOrder = ThreadOrder.LAST_ACTIVITY_DESC,
    ) -> Connection[Thread]:
        prefetch, count = _thread_prefetch(info)
        page = await threads_page(
            info.context,
            _thread_filter(filter),
            order_by.value,
            first=first,
            after=after,
            last=last,
            before=before,
            prefetch=prefetch,
            count=count,
        )
        return connection(page)

    @strawberry.field(description="A thread by id; null if it does not exist or is not yours.")
    def thread(self, info: Ctx, id: strawberry.ID) -> Thread | None:
        thread_id = local_id(id, "Thread")
        info.context.viewer  # noqa: B018 - authentication required
        return info.context.loaders.thread_by_id.load(thread_id) if thread_id else None  # type: ignore[return-value]

    @strawberry.field(description="A thread by its reference (BX-2026-0042).")
    async def thread_by_reference(self, info: Ctx, reference: str) -> Thread | None:
        info.context.viewer  # noqa: B018
        return await info.context.db.scalar(select(db.Thread).where(db.Thread.reference == reference.strip().upper()))

    @strawberry.field(description="Customers by name; `search` matches name, code or email.")
    async def customers(
        self, info: Ctx, first: int | None = None, after: str | None = None, search: str | None = None
    ) -> Connection[Customer]:
        query = customer_use_cases.customers_query(info.context, search)
        keys = (db.Customer.name, db.Customer.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after))

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
        query = contact_use_cases.contacts_query(info.context, search, _filter_id(customer_id, "Customer"))
        keys = (db.Contact.name, db.Contact.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after))

    @strawberry.field(description="Shipments, newest first.")
    async def shipments(
        self, info: Ctx, first: int | None = None, after: str | None = None, filter: ShipmentFilter | None = None
    ) -> Connection[Shipment]:
        where = filter or ShipmentFilter()
        query = shipment_use_cases.shipments_query(
            info.context,
            customer_id=_filter_id(where.customer_id, "Customer"),
            status=where.status,
            container_number=where.container_number,
            bl_number=where.bl_number,
            booking_number=where.booking_number,
            search=where.search,
        )
        keys = (db.Shipment.created_at, db.Shipment.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after, descending=True))


# -- customers ---------------------------------------------------------------------------


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


# -- contacts ----------------------------------------------------------------------------


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


# -- shipments ---------------------------------------------------------------------------


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
    values = _changes(input, {name: name for name in _SHIPMENT_PLAIN})
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


# -- threads -----------------------------------------------------------------------------


@strawberry.input
class ThreadCreateInput:
    subject: str
    type: ThreadType | None = None
    primary_channel: Channel | None = None
    priority: Priority | None = None
    customer_id: strawberry.ID | None = None
    contact_id: strawberry.ID | None = None
    shipment_id: strawberry.ID | None = None
    tags: list[str] | None = None


@strawberry.input
class ThreadUpdateInput:
    id: strawberry.ID
    subject: str | None = strawberry.UNSET
    type: ThreadType | None = strawberry.UNSET
    status: ThreadStatus | None = strawberry.UNSET
    priority: Priority | None = strawberry.UNSET
    primary_channel: Channel | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    customer_id: strawberry.ID | None = strawberry.UNSET
    contact_id: strawberry.ID | None = strawberry.UNSET
    shipment_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class ThreadAssignInput:
    thread_id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(default=None, description="null unassigns.")


@strawberry.input
class ThreadArchiveInput:
    thread_id: strawberry.ID


@strawberry.input
class ThreadMarkReadInput:
    thread_id: strawberry.ID


@strawberry.type
class ThreadPayload:
    thread: Thread | None = None
    user_errors: list[ThreadError]  # type: ignore[valid-type]


# -- messages, notes, actions ------------------------------------------------------------------


@strawberry.input
class MessageSendInput:
    thread_id: strawberry.ID
    channel: Channel
    body: str = strawberry.field(default="", description="Required unless a WhatsApp template is sent.")
    subject: str | None = None
    html: str | None = None
    to: list[str] | None = strawberry.field(
        default=None, description="Recipients; default: the thread contact's address on the channel."
    )
    attachment_ids: list[strawberry.ID] | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key returns the first message instead of sending twice."
    )
    based_on_cursor: str | None = strawberry.field(
        default=None,
        description="The cursor of the last InboxEvent the writer saw: if someone else added a message to the "
        "thread since, the send fails with THREAD_CHANGED (collision guard).",
    )
    force: bool = strawberry.field(default=False, description="Send even if the thread changed (see basedOnCursor).")
    template: TemplateSendInput | None = strawberry.field(
        default=None,
        description="WhatsApp: send an approved template (the only thing allowed outside the 24-hour window).",
    )


@strawberry.type
class MessagePayload:
    message: Message | None = None
    user_errors: list[MessageError]  # type: ignore[valid-type]


@strawberry.input
class NoteAddInput:
    thread_id: strawberry.ID
    body: str = strawberry.field(description="`@email` of a colleague mentions them.")
    mentioned_user_ids: list[strawberry.ID] | None = None


@strawberry.type
class NotePayload:
    note: Note | None = None
    user_errors: list[NoteError]  # type: ignore[valid-type]


@strawberry.input
class ActionCreateInput:
    thread_id: strawberry.ID
    title: str
    type: ActionType | None = None
    due_at: datetime | None = None
    assignee_id: strawberry.ID | None = None


@strawberry.input
class ActionUpdateInput:
    id: strawberry.ID
    title: str | None = strawberry.UNSET
    type: ActionType | None = strawberry.UNSET
    status: ActionStatus | None = strawberry.UNSET
    due_at: datetime | None = strawberry.UNSET
    assignee_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class ActionPayload:
    action: Action | None = None
    user_errors: list[ActionError]  # type: ignore[valid-type]


@strawberry.type
class InboxMutation:
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
            changes = _changes(input, _CUSTOMER_FIELDS)
            return {"customer": await customer_use_cases.customer_update(info.context, customer_id, changes)}

        return await mutate(CustomerPayload, CustomerError, CustomerErrorCode, call)

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
            changes = _changes(input, {"name": "name", "title": "title"})
            if given(input.customer_id):
                changes["customer_id"] = decode_optional(input.customer_id, "Customer", "customerId")
            identities = _identities(input.identities) if given(input.identities) else None
            if given(input.identities) and identities is None:
                identities = []
            contact_id = decode(input.id, "Contact", "id")
            return {"contact": await contact_use_cases.contact_update(info.context, contact_id, changes, identities)}

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
            changes = _shipment_fields(input)
            if given(input.customer_id):
                changes["customer_id"] = decode_optional(input.customer_id, "Customer", "customerId")
            return {"shipment": await shipment_use_cases.shipment_update(info.context, shipment_id, changes)}

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

    @strawberry.mutation
    async def thread_create(self, info: Ctx, input: ThreadCreateInput) -> ThreadPayload:
        async def call() -> dict:
            thread = await thread_use_cases.thread_create(
                info.context,
                subject=input.subject,
                type=input.type,
                primary_channel=input.primary_channel,
                priority=input.priority,
                customer_id=decode_optional(input.customer_id, "Customer", "customerId"),
                contact_id=decode_optional(input.contact_id, "Contact", "contactId"),
                shipment_id=decode_optional(input.shipment_id, "Shipment", "shipmentId"),
                tags=input.tags,
            )
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_update(self, info: Ctx, input: ThreadUpdateInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.id, "Thread", "id")
            changes = _changes(
                input,
                {
                    "subject": "subject",
                    "type": "type",
                    "status": "status",
                    "priority": "priority",
                    "primary_channel": "primary_channel",
                    "tags": "tags",
                },
            )
            for attr, type_name, field in (
                ("customer_id", "Customer", "customerId"),
                ("contact_id", "Contact", "contactId"),
                ("shipment_id", "Shipment", "shipmentId"),
            ):
                if given(getattr(input, attr)):
                    changes[attr] = decode_optional(getattr(input, attr), type_name, field)
            return {"thread": await thread_use_cases.thread_update(info.context, thread_id, changes)}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_assign(self, info: Ctx, input: ThreadAssignInput) -> ThreadPayload:
        async def call() -> dict:
            thread = await thread_use_cases.thread_assign(
                info.context,
                decode(input.thread_id, "Thread", "threadId"),
                decode_optional(input.assignee_id, "User", "assigneeId"),
            )
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_archive(self, info: Ctx, input: ThreadArchiveInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            return {"thread": await thread_use_cases.thread_archive(info.context, thread_id)}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_mark_read(self, info: Ctx, input: ThreadMarkReadInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            thread = await thread_use_cases.thread_mark_read(info.context, thread_id)
            info.context.loaders.unread_count_by_thread_id._cache.pop(thread.id, None)
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation(description="Send a message: QUEUED for its channel, or SENT at once when INTERNAL.")
    async def message_send(self, info: Ctx, input: MessageSendInput) -> MessagePayload:
        async def call() -> dict:
            message = await message_use_cases.message_send(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                channel=input.channel,
                body=input.body,
                subject=input.subject,
                html=input.html,
                to=input.to,
                attachment_ids=[decode(a, "Attachment", "attachmentIds") for a in input.attachment_ids or []],
                idempotency_key=input.idempotency_key,
                based_on_cursor=input.based_on_cursor,
                force=input.force,
                template=input.template.choice() if input.template is not None else None,
            )
            return {"message": message}

        return await mutate(MessagePayload, MessageError, MessageErrorCode, call)

    @strawberry.mutation
    async def note_add(self, info: Ctx, input: NoteAddInput) -> NotePayload:
        async def call() -> dict:
            note = await message_use_cases.note_add(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                body=input.body,
                mentioned_user_ids=[
                    decode(u, "User", f"mentionedUserIds.{i}") for i, u in enumerate(input.mentioned_user_ids or [])
                ],
            )
            return {"note": note}

        return await mutate(NotePayload, NoteError, NoteErrorCode, call)

    @strawberry.mutation
    async def action_create(self, info: Ctx, input: ActionCreateInput) -> ActionPayload:
        async def call() -> dict:
            action = await message_use_cases.action_create(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                title=input.title,
                type=input.type,
                due_at=input.due_at,
                assignee_id=decode_optional(input.assignee_id, "User", "assigneeId"),
            )
            return {"action": action}

        return await mutate(ActionPayload, ActionError, ActionErrorCode, call)

    @strawberry.mutation(description="Completing a QUOTE_APPROVAL or DOCUMENT_APPROVAL action needs ACTION_APPROVE.")
    async def action_update(self, info: Ctx, input: ActionUpdateInput) -> ActionPayload:
        async def call() -> dict:
            action_id = decode(input.id, "Action", "id")
            changes = _changes(input, {"title": "title", "type": "type", "status": "status", "due_at": "due_at"})
            if given(input.assignee_id):
                changes["assignee_id"] = decode_optional(input.assignee_id, "User", "assigneeId")
            return {"action": await message_use_cases.action_update(info.context, action_id, changes)}

        return await mutate(ActionPayload, ActionError, ActionErrorCode, call)


async def _merge_fields(info: Ctx, merge: Any) -> dict:
    kept, merged = await info.context.loaders.contact_by_id.load_many([merge.kept_contact_id, merge.merged_contact_id])
    return {"kept_contact": kept, "merged_contact": merged}
