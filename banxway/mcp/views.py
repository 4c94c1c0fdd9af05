"""What the tools, resources and prompts show an agent: threads and shipments read through the same use-cases and
per-request loaders as the GraphQL fields, as plain JSON-able dicts (tool results) or as Markdown (resources)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from banxway.auth import Permission
from banxway.errors import DomainError
from banxway.mcp.calls import global_id, local_id
from banxway.resolvers import inbox as inbox_use_cases
from banxway.resolvers import shipments as shipment_use_cases
from banxway.resolvers import threads as thread_use_cases
from banxway.resolvers.users import users_page

if TYPE_CHECKING:
    from banxway.context import Context
    from banxway.db.models import Action, Message, Note, Shipment, ShipmentMilestone, Thread

MAX_BODY = 4_000  # characters of a message or note shown; the rest is cut, and `truncated` says so
MAX_LISTED = 50  # notes and actions shown with a thread


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _value(enum_member: Any) -> Any:
    return enum_member.value if enum_member is not None else None


def _text(value: str | None, limit: int = MAX_BODY) -> dict[str, Any]:
    value = value or ""
    return {"text": value[:limit], "truncated": len(value) > limit}


# -- finding what an agent names ----------------------------------------------------------------------------------


async def find_thread(ctx: Context, thread: str) -> Thread:
    """A thread by its reference (BX-2026-0042) or global id, as the `threadByReference` and `thread(id)` queries
    find it: scoped to the viewer's organization, NOT_FOUND otherwise."""
    thread_id = local_id(thread, "Thread")
    found: Thread | None
    if thread_id is not None:
        ctx.require(Permission.READ)
        found = await ctx.loaders.thread_by_id.load(thread_id)
    else:
        found = await thread_use_cases.thread_by_reference(ctx, thread)
    if found is None:
        raise DomainError("NOT_FOUND", f"No such thread: {thread!r}.", "thread")
    return found


async def thread_key(ctx: Context, thread: str) -> tuple[uuid.UUID, str]:
    """The id a write use-case takes for `thread`, and what the audit log calls it: a global id as it is (the
    use-case reads the thread, and answers NOT_FOUND for one that is not the viewer's), a reference looked up."""
    thread_id = local_id(thread, "Thread")
    if thread_id is not None:
        return thread_id, thread.strip()
    found = await find_thread(ctx, thread)
    return found.id, found.reference


async def find_shipment_by_reference(ctx: Context, reference: str) -> Shipment | None:
    """The shipment with this reference (any case), through the `shipments(filter: {reference})` use-case."""
    if not reference.strip():
        return None
    page = await shipment_use_cases.shipments_page(ctx, first=1, after=None, reference=reference)
    return page.rows[0] if page.rows else None


async def find_shipment(ctx: Context, shipment: str) -> Shipment:
    """A shipment by its reference or global id, NOT_FOUND otherwise."""
    shipment_id = local_id(shipment, "Shipment")
    found: Shipment | None
    if shipment_id is not None:
        ctx.require(Permission.READ)
        found = await ctx.loaders.shipment_by_id.load(shipment_id)
    else:
        found = await find_shipment_by_reference(ctx, shipment)
    if found is None:
        raise DomainError("NOT_FOUND", f"No such shipment: {shipment!r}.", "shipment")
    return found


async def user_key(ctx: Context, assignee: str | None) -> uuid.UUID | None:
    """A user named by "me", a global id or an email (looked up in the `users` list); None for None."""
    if assignee is None or not assignee.strip():
        return None
    value = assignee.strip()
    if value.lower() == "me":
        return ctx.viewer.user_id
    user_id = local_id(value, "User")
    if user_id is not None or "@" not in value:
        return user_id or uuid.UUID(int=0)  # not a user: the use-case answers NOT_FOUND
    after = None
    while True:
        page = await users_page(ctx, first=100, after=after, last=None, before=None)
        for user in page.rows:
            if user.email.lower() == value.lower():
                return user.id
        if not page.has_next_page or not page.rows:
            return uuid.UUID(int=0)
        after = page.cursor(len(page.rows) - 1)


# -- threads ------------------------------------------------------------------------------------------------------


def thread_summary(thread: Thread) -> dict[str, Any]:
    """A row of the inbox; `customer`, `shipment` and `assignee` when they were loaded with it (search_threads)."""
    loaded = thread.__dict__
    customer = loaded.get("customer")
    shipment = loaded.get("shipment")
    assignee = loaded.get("assignee")
    return {
        "id": global_id("Thread", thread.id),
        "reference": thread.reference,
        "subject": thread.subject,
        "status": _value(thread.status),
        "priority": _value(thread.priority),
        "type": _value(thread.type),
        "channel": _value(thread.primary_channel),
        "customer": {"id": global_id("Customer", customer.id), "name": customer.name} if customer else None,
        "shipment": {"id": global_id("Shipment", shipment.id), "reference": shipment.reference} if shipment else None,
        "assignee": {"id": global_id("User", assignee.id), "name": assignee.name} if assignee else None,
        "intent": _value(thread.intent),
        "sentiment": _value(thread.sentiment),
        "sla_status": _value(thread.sla_status),
        "tags": list(thread.tags),
        "last_message_at": iso(thread.last_message_at),
        "updated_at": iso(thread.updated_at),
    }


@dataclass
class ThreadDetail:
    """A thread with what `get_thread` and the thread resource show, read through the viewer's Context."""

    thread: Thread
    messages: list[Message]
    messages_total: int
    notes: list[Note]
    actions: list[Action]
    shipment: Shipment | None
    milestones: list[ShipmentMilestone]
    names: dict[uuid.UUID, str]  # users, customer and contact by id


async def thread_detail(ctx: Context, thread: Thread, *, messages: int) -> ThreadDetail:
    """The thread's last `messages` messages (oldest first), notes and actions (as the Thread type's fields read
    them), its shipment with milestones, and the names of the people and companies they mention."""
    page = await inbox_use_cases.messages_page(
        ctx, thread.id, first=None, after=None, last=messages, before=None, count=True
    )
    notes = await inbox_use_cases.notes_page(ctx, thread.id, first=MAX_LISTED, after=None)
    actions = await inbox_use_cases.actions_page(ctx, thread.id, first=MAX_LISTED, after=None)
    loaders = ctx.loaders
    shipment = await loaders.shipment_by_id.load(thread.shipment_id) if thread.shipment_id else None
    milestones = list(await loaders.milestones_by_shipment_id.load(shipment.id) or []) if shipment else []
    user_ids = {thread.assignee_id}
    user_ids |= {message.author_id for message in page.rows}
    user_ids |= {note.author_id for note in notes.rows}
    user_ids |= {action.assignee_id for action in actions.rows}
    wanted = [user_id for user_id in user_ids if user_id is not None]
    names = {user.id: user.name for user in await loaders.user_by_id.load_many(wanted) if user is not None}
    customer_id = thread.customer_id or (shipment.customer_id if shipment else None)
    if customer_id is not None and (customer := await loaders.customer_by_id.load(customer_id)) is not None:
        names[customer.id] = customer.name
    if thread.contact_id is not None and (contact := await loaders.contact_by_id.load(thread.contact_id)) is not None:
        names[contact.id] = contact.name
    return ThreadDetail(thread, page.rows, page.total_count, notes.rows, actions.rows, shipment, milestones, names)


def _named(detail: ThreadDetail, type_name: str, key: uuid.UUID | None) -> dict[str, Any] | None:
    if key is None:
        return None
    return {"id": global_id(type_name, key), "name": detail.names.get(key)}


def _author(detail: ThreadDetail, message: Message) -> str | None:
    if message.author_id is not None:
        return detail.names.get(message.author_id)
    if message.contact_id is not None and message.contact_id in detail.names:
        return detail.names[message.contact_id]
    return message.sender


def thread_dict(detail: ThreadDetail) -> dict[str, Any]:
    thread = detail.thread
    customer_id = thread.customer_id or (detail.shipment.customer_id if detail.shipment else None)
    return {
        **thread_summary(thread),
        "customer": _named(detail, "Customer", customer_id),
        "contact": _named(detail, "Contact", thread.contact_id),
        "assignee": _named(detail, "User", thread.assignee_id),
        "shipment": shipment_dict(detail.shipment, detail.milestones) if detail.shipment else None,
        "messages_total": detail.messages_total,
        "messages": [
            {
                "id": global_id("Message", message.id),
                "direction": _value(message.direction),
                "channel": _value(message.channel),
                "status": _value(message.status),
                "author": _author(detail, message),
                "subject": message.subject,
                "body": _text(message.body),
                "created_at": iso(message.created_at),
            }
            for message in detail.messages
        ],
        "notes": [
            {
                "id": global_id("Note", note.id),
                "author": detail.names.get(note.author_id) if note.author_id else None,
                "body": _text(note.body),
                "created_at": iso(note.created_at),
            }
            for note in detail.notes
        ],
        "actions": [
            {
                "id": global_id("Action", action.id),
                "title": action.title,
                "type": _value(action.type),
                "status": _value(action.status),
                "due_at": iso(action.due_at),
                "assignee": _named(detail, "User", action.assignee_id),
            }
            for action in detail.actions
        ],
    }


def thread_markdown(detail: ThreadDetail) -> str:
    thread = detail.thread
    customer_id = thread.customer_id or (detail.shipment.customer_id if detail.shipment else None)
    lines = [
        f"# {thread.reference}: {thread.subject}",
        "",
        f"- Status: {_value(thread.status)} · priority {_value(thread.priority)} · type {_value(thread.type)}"
        f" · channel {_value(thread.primary_channel)}",
        f"- Customer: {detail.names.get(customer_id, '—') if customer_id else '—'}",
        f"- Contact: {detail.names.get(thread.contact_id, '—') if thread.contact_id else '—'}",
        f"- Assignee: {detail.names.get(thread.assignee_id, '—') if thread.assignee_id else 'nobody'}",
    ]
    if thread.intent or thread.sentiment:
        lines.append(f"- Intent: {_value(thread.intent) or '—'} · sentiment {_value(thread.sentiment) or '—'}")
    if thread.tags:
        lines.append(f"- Tags: {', '.join(thread.tags)}")
    lines.append(f"- Thread id: `{global_id('Thread', thread.id)}`")
    if detail.shipment is not None:
        lines += ["", *shipment_markdown(detail.shipment, detail.milestones, level=2)]
    shown = len(detail.messages)
    lines += ["", f"## Messages ({shown} of {detail.messages_total}, oldest first)" if shown else "## Messages", ""]
    if not detail.messages:
        lines.append("None yet.")
    for message in detail.messages:
        who = _author(detail, message) or "unknown"
        lines += [
            f"### {iso(message.created_at)} · {_value(message.direction)} · {_value(message.channel)} · {who}"
            f" · {_value(message.status)}",
            "",
        ]
        if message.subject:
            lines += [f"**Subject:** {message.subject}", ""]
        body = _text(message.body)
        lines += [body["text"] + (" […]" if body["truncated"] else ""), ""]
    lines += ["## Internal notes", ""]
    if not detail.notes:
        lines.append("None.")
    for note in detail.notes:
        author = detail.names.get(note.author_id, "unknown") if note.author_id else "unknown"
        lines.append(f"- {iso(note.created_at)}, {author}: {_text(note.body)['text']}")
    lines += ["", "## Actions", ""]
    if not detail.actions:
        lines.append("None.")
    for action in detail.actions:
        due = f", due {iso(action.due_at)}" if action.due_at else ""
        assignee = f", for {detail.names.get(action.assignee_id, 'someone')}" if action.assignee_id else ""
        lines.append(f"- [{_value(action.status)}] {action.title} ({_value(action.type)}{due}{assignee})")
    return "\n".join(lines).rstrip() + "\n"


# -- shipments ----------------------------------------------------------------------------------------------------


def _place(code: str | None, name: str | None) -> dict[str, Any] | None:
    return {"code": code, "name": name} if code or name else None


def _place_text(code: str | None, name: str | None) -> str:
    if code and name:
        return f"{name} ({code})"
    return name or code or "—"


def shipment_dict(shipment: Shipment, milestones: list[ShipmentMilestone]) -> dict[str, Any]:
    return {
        "id": global_id("Shipment", shipment.id),
        "reference": shipment.reference,
        "mode": _value(shipment.mode),
        "direction": _value(shipment.direction),
        "status": _value(shipment.status),
        "customer_id": global_id("Customer", shipment.customer_id),
        "origin": _place(shipment.origin_code, shipment.origin_name),
        "destination": _place(shipment.destination_code, shipment.destination_name),
        "carrier": shipment.carrier,
        "vessel": shipment.vessel,
        "voyage": shipment.voyage,
        "flight_number": shipment.flight_number,
        "container_numbers": list(shipment.container_numbers),
        "bl_number": shipment.bl_number,
        "awb_number": shipment.awb_number,
        "booking_number": shipment.booking_number,
        "etd": iso(shipment.etd),
        "eta": iso(shipment.eta),
        "atd": iso(shipment.atd),
        "ata": iso(shipment.ata),
        "milestones": [
            {
                "type": _value(milestone.type),
                "planned_at": iso(milestone.planned_at),
                "actual_at": iso(milestone.actual_at),
                "location": _place(milestone.location_code, milestone.location_name),
                "note": milestone.note,
            }
            for milestone in milestones
        ],
    }


def shipment_markdown(shipment: Shipment, milestones: list[ShipmentMilestone], *, level: int = 1) -> list[str]:
    heading = "#" * level
    facts = [
        ("Status", _value(shipment.status)),
        ("Mode", f"{_value(shipment.mode)}, {_value(shipment.direction)}"),
        (
            "Route",
            f"{_place_text(shipment.origin_code, shipment.origin_name)} → "
            f"{_place_text(shipment.destination_code, shipment.destination_name)}",
        ),
        ("Carrier", shipment.carrier),
        ("Vessel / voyage", " / ".join(v for v in (shipment.vessel, shipment.voyage) if v) or None),
        ("Flight", shipment.flight_number),
        ("Containers", ", ".join(shipment.container_numbers) or None),
        ("BL", shipment.bl_number),
        ("AWB", shipment.awb_number),
        ("Booking", shipment.booking_number),
        ("ETD / ATD", f"{iso(shipment.etd) or '—'} / {iso(shipment.atd) or '—'}"),
        ("ETA / ATA", f"{iso(shipment.eta) or '—'} / {iso(shipment.ata) or '—'}"),
    ]
    lines = [f"{heading} Shipment {shipment.reference}", ""]
    lines += [f"- {label}: {value}" for label, value in facts if value]
    lines.append(f"- Shipment id: `{global_id('Shipment', shipment.id)}`")
    lines += ["", f"{heading}# Milestones", ""]
    if not milestones:
        lines.append("None recorded.")
    else:
        lines += ["| milestone | planned | actual | location | note |", "|---|---|---|---|---|"]
        for milestone in milestones:
            place = _place_text(milestone.location_code, milestone.location_name)
            note = (milestone.note or "").replace("|", "\\|").replace("\n", " ")
            planned, actual = iso(milestone.planned_at) or "—", iso(milestone.actual_at) or "—"
            lines.append(f"| {_value(milestone.type)} | {planned} | {actual} | {place} | {note} |")
    return lines
