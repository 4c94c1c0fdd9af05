"""Object types. Each maps onto one SQLAlchemy model (`is_type_of`), so resolvers
return ORM rows and plain fields are read as attributes, without resolvers.
Relations are synchronous when the list's root resolver prefetched them, and go
through the request's dataloaders otherwise."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from banxway import db
from banxway.channels.email.transport import Security
from banxway.context import Context
from banxway.resolvers.inbox import MESSAGES_ATTR, UNREAD_ATTR, MessageWindow, messages_page
from banxway.resolvers.pagination import paginate
from banxway.schema.pagination import Connection, connection

Role = strawberry.enum(db.Role, description="What a user may do; see the README's permission matrix.")
Channel = strawberry.enum(db.Channel)
Direction = strawberry.enum(db.Direction)
MessageStatus = strawberry.enum(db.MessageStatus)
ThreadStatus = strawberry.enum(db.ThreadStatus)
Priority = strawberry.enum(db.Priority)
ThreadType = strawberry.enum(db.ThreadType)
ShipmentMode = strawberry.enum(db.ShipmentMode)
ShipmentDirection = strawberry.enum(db.ShipmentDirection)
ShipmentStatus = strawberry.enum(db.ShipmentStatus)
MilestoneType = strawberry.enum(db.MilestoneType)
ActionType = strawberry.enum(db.ActionType)
ActionStatus = strawberry.enum(db.ActionStatus)

Ctx = Info[Context, None]


def to_global_id(type_name: str, local_id: object) -> str:
    """base64("Type:uuid"), the Relay global id (the same encoding as strawberry.relay.GlobalID)."""
    return base64.b64encode(f"{type_name}:{local_id}".encode()).decode()


@strawberry.interface(description="An object with a Globally Unique ID.")
class Node:
    id: strawberry.ID = strawberry.field(description="The Globally Unique ID of this object.")


def _id_field(type_name: str) -> Any:
    """`id` of a node type: computed straight from the row (no GlobalID object per value)."""

    def resolve(root: Any) -> strawberry.ID:
        return strawberry.ID(to_global_id(type_name, root.id))

    return strawberry.field(resolver=resolve, description="The Globally Unique ID of this object.")


def _model_type_of(model: type) -> Any:
    def is_type_of(cls: type, obj: Any, info: Info) -> bool:
        return isinstance(obj, (cls, model))

    return classmethod(is_type_of)


def _node_resolver(loader_name: str) -> Any:
    async def resolve_nodes(cls: type, *, info: Ctx, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids: list[uuid.UUID | None] = []
        for node_id in node_ids:
            try:
                ids.append(uuid.UUID(str(node_id)))
            except ValueError:
                ids.append(None)
        loader = getattr(info.context.loaders, loader_name)
        found = await loader.load_many([i for i in ids if i is not None])
        by_id = {row.id: row for row in found if row is not None}
        return [by_id.get(i) if i is not None else None for i in ids]

    return classmethod(resolve_nodes)


def related(root: Any, info: Ctx, attribute: str, loader_name: str, foreign_key: uuid.UUID | None) -> Any:
    """A many-to-one link: None without a key; the row when a page query joined it into
    `root.<attribute>`; otherwise a batched load through the request's loader."""
    if foreign_key is None:
        return None
    if attribute in root.__dict__:  # loaded by the page query (a joined many-to-one)
        return root.__dict__[attribute]
    return getattr(info.context.loaders, loader_name).load(foreign_key)


@strawberry.type
class Organization(Node):
    id: strawberry.ID = _id_field("Organization")
    name: str
    slug: str
    created_at: datetime

    is_type_of = _model_type_of(db.Organization)

    @classmethod
    async def resolve_nodes(cls, *, info: Ctx, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        """Only the viewer's own organization; any other is as absent as a missing one."""
        own = str(info.context.viewer.organization_id)
        return [
            await info.context.loaders.organization_by_id.load(uuid.UUID(own)) if i == own else None for i in node_ids
        ]


@strawberry.type
class User(Node):
    id: strawberry.ID = _id_field("User")
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime

    is_type_of = _model_type_of(db.User)
    resolve_nodes = _node_resolver("user_by_id")

    @strawberry.field
    def organization(self, info: Ctx) -> Organization:
        return related(self, info, "organization", "organization_by_id", self.organization_id)  # type: ignore[attr-defined]


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
    async def contacts(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Contact]:
        query = select(db.Contact).where(db.Contact.customer_id == self.id, db.Contact.merged_into_id.is_(None))
        return connection(
            await paginate(info.context.db, query, (db.Contact.name, db.Contact.id), first=first, after=after)
        )

    @strawberry.field(description="The customer's shipments, newest first.")
    async def shipments(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Shipment]:
        query = select(db.Shipment).where(db.Shipment.customer_id == self.id)
        keys = (db.Shipment.created_at, db.Shipment.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after, descending=True))


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
    async def threads(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Thread]:
        query = select(db.Thread).where(db.Thread.shipment_id == self.id)
        keys = (db.Thread.last_activity_at, db.Thread.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after, descending=True))


@strawberry.type
class Message(Node):
    id: strawberry.ID = _id_field("Message")
    channel: Channel
    direction: Direction
    status: MessageStatus
    body: str
    subject: str | None
    html: str | None
    sender: str | None
    recipients: list[str]
    error: str | None = strawberry.field(description="Why delivery failed, in the provider's words.")
    segments: int | None = strawberry.field(
        description="SMS: the segments the body is sent in (GSM-7: 160, then 153 each; UCS-2: 70, then 67)."
    )
    created_at: datetime

    is_type_of = _model_type_of(db.Message)
    resolve_nodes = _node_resolver("message_by_id")

    @strawberry.field
    def thread(self, info: Ctx) -> Thread:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def author(self, info: Ctx) -> User | None:
        return related(self, info, "author", "user_by_id", self.author_id)  # type: ignore[attr-defined]

    @strawberry.field
    def contact(self, info: Ctx) -> Contact | None:
        return related(self, info, "contact", "contact_by_id", self.contact_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Files of the message.")
    async def attachments(self, info: Ctx) -> list[Attachment]:
        return await info.context.loaders.attachments_by_message_id.load(self.id)  # type: ignore[attr-defined,return-value]

    @strawberry.field(description="An inbound email's whole text, quoted history included (`body` is the reply).")
    async def full_body(self, info: Ctx) -> str | None:
        return await info.context.db.scalar(select(db.Message.full_body).where(db.Message.id == self.id))  # type: ignore[attr-defined]

    @strawberry.field(description="A VOICE message's call: status, length, recording and transcript.")
    async def call(self, info: Ctx) -> Call | None:
        if self.channel != db.Channel.VOICE:  # type: ignore[comparison-overlap]
            return None
        headers = await info.context.loaders.headers_by_message_id.load(self.id) or {}  # type: ignore[attr-defined]
        return Call(
            status=headers.get("call_status"),
            duration_seconds=headers.get("duration"),
            recorded=bool(headers.get("recording_url")),
            transcript=headers.get("transcript"),
            transcript_error=headers.get("transcript_error"),
        )


@strawberry.type(description="What the provider reported about a call.")
class Call:
    status: str | None = strawberry.field(description="The provider's word: in-progress, completed, busy, ….")
    duration_seconds: int | None
    recorded: bool
    transcript: str | None
    transcript_error: str | None = strawberry.field(description="Why there is no transcript.")


@strawberry.type(description="A file attached to a message; download it from `url` with the access token.")
class Attachment(Node):
    id: strawberry.ID = _id_field("Attachment")
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool
    content_id: str | None

    is_type_of = _model_type_of(db.Attachment)

    @strawberry.field(description="The download path, relative to the API's origin.")
    def url(self) -> str:
        return f"/attachments/{to_global_id('Attachment', self.id)}"  # type: ignore[attr-defined]


MailSecurity = strawberry.enum(Security, name="MailSecurity", description="NONE, STARTTLS, or TLS from the start.")


@strawberry.type(description="A mailbox read over IMAP and sent from over SMTP; passwords are never shown.")
class EmailAccount(Node):
    id: strawberry.ID = _id_field("EmailAccount")
    name: str
    email: str
    from_name: str | None
    signature: str | None
    imap_host: str
    imap_port: int
    imap_security: MailSecurity  # type: ignore[valid-type]
    imap_username: str
    imap_folder: str
    smtp_host: str
    smtp_port: int
    smtp_security: MailSecurity  # type: ignore[valid-type]
    smtp_username: str | None
    active: bool
    last_polled_at: datetime | None
    last_error: str | None = strawberry.field(description="Why the last poll failed, in the server's words.")
    created_at: datetime

    is_type_of = _model_type_of(db.EmailAccount)


@strawberry.type
class Note(Node):
    id: strawberry.ID = _id_field("Note")
    body: str
    created_at: datetime

    is_type_of = _model_type_of(db.Note)
    resolve_nodes = _node_resolver("note_by_id")

    @strawberry.field
    def thread(self, info: Ctx) -> Thread:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def author(self, info: Ctx) -> User | None:
        return related(self, info, "author", "user_by_id", self.author_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Colleagues @mentioned in the note.")
    async def mentions(self, info: Ctx) -> list[User]:
        users = await info.context.loaders.user_by_id.load_many(self.mentioned_user_ids)  # type: ignore[attr-defined]
        return [user for user in users if user is not None]  # type: ignore[misc]


@strawberry.type
class Action(Node):
    id: strawberry.ID = _id_field("Action")
    title: str
    type: ActionType
    status: ActionStatus
    due_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Action)
    resolve_nodes = _node_resolver("action_by_id")

    @strawberry.field
    def thread(self, info: Ctx) -> Thread:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def assignee(self, info: Ctx) -> User | None:
        return related(self, info, "assignee", "user_by_id", self.assignee_id)  # type: ignore[attr-defined]

    @strawberry.field
    def created_by(self, info: Ctx) -> User | None:
        return related(self, info, "created_by", "user_by_id", self.created_by_id)  # type: ignore[attr-defined]

    @strawberry.field
    def completed_by(self, info: Ctx) -> User | None:
        return related(self, info, "completed_by", "user_by_id", self.completed_by_id)  # type: ignore[attr-defined]


@strawberry.type
class Thread(Node):
    id: strawberry.ID = _id_field("Thread")
    reference: str = strawberry.field(description="BX-YYYY-NNNN, unique in the organization.")
    subject: str
    type: ThreadType
    status: ThreadStatus
    priority: Priority
    primary_channel: Channel
    tags: list[str]
    last_message_at: datetime | None
    first_response_at: datetime | None
    sla_due_at: datetime | None
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Thread)
    resolve_nodes = _node_resolver("thread_by_id")

    @strawberry.field
    def customer(self, info: Ctx) -> Customer | None:
        return related(self, info, "customer", "customer_by_id", self.customer_id)  # type: ignore[attr-defined]

    @strawberry.field
    def contact(self, info: Ctx) -> Contact | None:
        return related(self, info, "contact", "contact_by_id", self.contact_id)  # type: ignore[attr-defined]

    @strawberry.field
    def shipment(self, info: Ctx) -> Shipment | None:
        return related(self, info, "shipment", "shipment_by_id", self.shipment_id)  # type: ignore[attr-defined]

    @strawberry.field
    def assignee(self, info: Ctx) -> User | None:
        return related(self, info, "assignee", "user_by_id", self.assignee_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Messages since the viewer last read the thread, not counting their own.")
    def unread_count(self, info: Ctx) -> int:
        prefetched = self.__dict__.get(UNREAD_ATTR)
        if prefetched is not None:
            return prefetched
        return info.context.loaders.unread_count_by_thread_id.load(self.id)  # type: ignore[return-value]

    @strawberry.field(description="Messages, oldest first. `last: 3` gives the three most recent.")
    def messages(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Message]:
        if after is None and before is None and (first is None) != (last is None):
            window = MessageWindow(size=min(first or last or 0, 100), from_end=last is not None)
            page = self.__dict__.get(MESSAGES_ATTR, {}).get(window.key)
            if page is not None:
                return connection(page)

        async def load() -> Connection[Message]:
            page = await messages_page(
                info.context, self.id, first=first, after=after, last=last, before=before, count=True
            )
            return connection(page)

        return load()  # type: ignore[return-value]

    @strawberry.field(description="Internal notes, oldest first.")
    async def notes(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Note]:
        query = select(db.Note).where(db.Note.thread_id == self.id)
        return connection(
            await paginate(info.context.db, query, (db.Note.created_at, db.Note.id), first=first, after=after)
        )

    @strawberry.field(description="Actions (tasks), oldest first.")
    async def actions(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Action]:
        query = select(db.Action).where(db.Action.thread_id == self.id)
        keys = (db.Action.created_at, db.Action.id)
        return connection(await paginate(info.context.db, query, keys, first=first, after=after))


# Columns read by fields that are not simply a column or a link's key (for look-ahead
# column loading, `lookahead.columns_for`). `()` means the field needs only the row's id.
FIELD_COLUMNS: dict[type, dict[str, tuple[str, ...]]] = {
    db.Customer: {"contacts": (), "shipments": ()},
    db.Contact: {"identities": ()},
    db.Shipment: {
        "origin": ("origin_code", "origin_name"),
        "destination": ("destination_code", "destination_name"),
        "milestones": (),
        "threads": (),
    },
    db.User: {},
    db.Message: {},
}


NotificationType = strawberry.enum(db.NotificationType)


@strawberry.type(description="Something for one user to look at; only its user can see it.")
class Notification(Node):
    id: strawberry.ID = _id_field("Notification")
    type: NotificationType  # type: ignore[valid-type]
    summary: str
    read_at: datetime | None
    created_at: datetime

    is_type_of = _model_type_of(db.Notification)
    resolve_nodes = _node_resolver("notification_by_id")

    @strawberry.field
    def read(self) -> bool:
        return self.read_at is not None

    @strawberry.field
    def thread(self, info: Ctx) -> Thread | None:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def message(self, info: Ctx) -> Message | None:
        return related(self, info, "message", "message_by_id", self.message_id)  # type: ignore[attr-defined]

    @strawberry.field
    def note(self, info: Ctx) -> Note | None:
        return related(self, info, "note", "note_by_id", self.note_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Who caused it; null for a customer's message.")
    def actor(self, info: Ctx) -> User | None:
        return related(self, info, "actor", "user_by_id", self.actor_id)  # type: ignore[attr-defined]


NODE_TYPES: dict[str, type[Node]] = {
    cls.__name__: cls
    for cls in (Organization, User, Customer, Contact, Shipment, Thread, Message, Note, Action, Notification)
}
