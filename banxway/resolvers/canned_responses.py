"""Canned responses: saved replies with `{{variables}}`, shared by the organization (ADMIN and MANAGER manage
them: AUTOMATION_MANAGE) or personal (anyone who writes — MESSAGE_SEND or NOTE_ADD — manages their own).

A viewer sees the shared ones and their own, never another user's personal ones (those are NOT_FOUND). Templates
are checked when saved: an unknown variable is refused. Rendering is one regex pass over the saved text — the
values put in are never read as template text again, so nothing in a contact's name can inject anything.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, text

from banxway.auth import Permission
from banxway.db.models import CannedResponse, Contact, Customer, Shipment, Thread
from banxway.enums import Channel
from banxway.errors import DomainError, PermissionDenied
from banxway.resolvers import validation as v

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, Viewer

BODY_LIMIT = 10_000
NAME_LIMIT = 100
VARIABLES = (
    "contact.name",
    "contact.first_name",
    "customer.name",
    "thread.reference",
    "thread.subject",
    "shipment.reference",
    "shipment.eta",
    "shipment.containers",
    "agent.name",
)
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SHORTCUT = re.compile(r"^/?([a-z0-9][a-z0-9_-]{0,48})$")


def _scope(viewer: Viewer) -> Any:
    """What the viewer may see: the shared responses, and their own."""
    return CannedResponse.owner_id.is_(None) | (CannedResponse.owner_id == viewer.user_id)


def _may_manage(ctx: Context, personal: bool) -> Viewer:
    if not personal:
        return ctx.require(Permission.AUTOMATION_MANAGE)
    viewer = ctx.require(Permission.READ)
    if not (viewer.can(Permission.MESSAGE_SEND) or viewer.can(Permission.NOTE_ADD)):
        raise PermissionDenied(f"Role {viewer.role.name} may not keep canned responses")
    return viewer


def check_template(body: str, field: str = "body") -> None:
    """Refuse a template that uses a variable we do not fill."""
    for match in _VARIABLE.finditer(body):
        if match.group(1) not in VARIABLES:
            raise DomainError(
                "INVALID",
                f"Unknown variable {{{{{match.group(1)}}}}}; known: {', '.join(VARIABLES)}.",
                field,
            )


def _shortcut(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    match = _SHORTCUT.match(value.strip().lower())
    if match is None:
        raise DomainError(
            "INVALID", "A shortcut is a slash and up to 49 letters, digits, - or _ (e.g. /quote).", "shortcut"
        )
    return "/" + match.group(1)


async def _unique(
    session: AsyncSession,
    scope: tuple[uuid.UUID, uuid.UUID | None],
    name: str,
    shortcut: str | None,
    exclude: uuid.UUID | None,
) -> None:
    """`scope`: (organization, owner or None for the shared ones)."""
    organization_id, owner_id = scope
    # serialise the writes of one scope, so that two concurrent creates cannot both pass the check below
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"canned:{organization_id}:{owner_id}"},
    )
    same_scope = CannedResponse.owner_id.is_not_distinct_from(owner_id) & CannedResponse.id.is_distinct_from(exclude)
    if await session.scalar(
        select(CannedResponse.id).where(same_scope, func.lower(CannedResponse.name) == name.lower())
    ):
        raise DomainError("TAKEN", "Another canned response has that name.", "name")
    if shortcut is not None and await session.scalar(
        select(CannedResponse.id).where(same_scope, CannedResponse.shortcut == shortcut)
    ):
        raise DomainError("TAKEN", "Another canned response has that shortcut.", "shortcut")


def _clean(changes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = v.text(changes["name"], "name", max_length=NAME_LIMIT, required=True)
    if "shortcut" in changes:
        values["shortcut"] = _shortcut(changes["shortcut"])
    if "body" in changes:
        body = changes["body"]
        if body is None or not body.strip():
            raise DomainError("INVALID", "body must not be empty.", "body")
        if len(body) > BODY_LIMIT:
            raise DomainError("TOO_LONG", f"body has {len(body)} characters; at most {BODY_LIMIT} are allowed.", "body")
        check_template(body)
        values["body"] = body
    if "channel" in changes:
        values["channel"] = changes["channel"]
    return values


async def canned_responses(ctx: Context, search: str | None = None, channel: Channel | None = None) -> list[Any]:
    """The organization's shared responses and the viewer's own, by name; with `channel`, those offered on it."""
    viewer = ctx.require(Permission.READ)
    query = select(CannedResponse).where(_scope(viewer))
    if channel is not None:
        query = query.where(CannedResponse.channel.is_(None) | (CannedResponse.channel == channel))
    if search and search.strip():
        pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                CannedResponse.name.ilike(pattern),
                CannedResponse.shortcut.ilike(pattern),
                CannedResponse.body.ilike(pattern),
            )
        )
    query = query.order_by(func.lower(CannedResponse.name), CannedResponse.owner_id.is_not(None), CannedResponse.id)
    return list(await ctx.db.scalars(query.limit(500)))


async def _visible(
    session: Any, viewer: Viewer, response_id: uuid.UUID | None, *, lock: bool = False
) -> CannedResponse:
    if response_id is None:
        raise DomainError("NOT_FOUND", "No such canned response.", "id")
    query = select(CannedResponse).where(CannedResponse.id == response_id, _scope(viewer))
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise DomainError("NOT_FOUND", "No such canned response.", "id")
    return row


async def canned_response_create(ctx: Context, values: dict[str, Any], *, personal: bool = False) -> CannedResponse:
    """`values`: name, body, and optionally shortcut and channel."""
    viewer = _may_manage(ctx, personal)
    clean = _clean(
        {"shortcut": None, "channel": None, **values, "name": values.get("name"), "body": values.get("body")}
    )
    owner_id = viewer.user_id if personal else None
    async with ctx.transaction() as session:
        await _unique(session, (viewer.organization_id, owner_id), clean["name"], clean["shortcut"], None)
        row = CannedResponse(organization_id=viewer.organization_id, owner_id=owner_id, **clean)
        session.add(row)
        await session.flush()
    return row


async def canned_response_update(
    ctx: Context, response_id: uuid.UUID | None, changes: dict[str, Any]
) -> CannedResponse:
    """`changes`: any of name, body, shortcut and channel (null clears the last two)."""
    viewer = ctx.require(Permission.READ)
    clean = _clean(changes)
    async with ctx.transaction() as session:
        row = await _visible(session, viewer, response_id, lock=True)
        _may_manage(ctx, row.owner_id is not None)
        name = clean.get("name", row.name)
        shortcut = clean.get("shortcut", row.shortcut)
        if "name" in clean or "shortcut" in clean:
            await _unique(session, (row.organization_id, row.owner_id), name, shortcut, row.id)
        for attribute, value in clean.items():
            setattr(row, attribute, value)
        await session.flush()
    return row


async def canned_response_delete(ctx: Context, response_id: uuid.UUID | None) -> uuid.UUID:
    viewer = ctx.require(Permission.READ)
    async with ctx.transaction() as session:
        row = await _visible(session, viewer, response_id, lock=True)
        _may_manage(ctx, row.owner_id is not None)
        await session.delete(row)
    return row.id


def _first_name(name: str | None) -> str | None:
    return name.split()[0] if name and name.split() else None


async def _values(ctx: Context, viewer: Viewer, thread: Thread | None) -> dict[str, str | None]:
    async def one(model: Any, row_id: uuid.UUID | None) -> Any:
        return await ctx.db.scalar(select(model).where(model.id == row_id)) if row_id is not None else None

    contact = await one(Contact, thread.contact_id if thread else None)
    customer = await one(Customer, thread.customer_id if thread else None)
    shipment = await one(Shipment, thread.shipment_id if thread else None)
    return {
        "contact.name": contact.name if contact else None,
        "contact.first_name": _first_name(contact.name) if contact else None,
        "customer.name": customer.name if customer else None,
        "thread.reference": thread.reference if thread else None,
        "thread.subject": thread.subject if thread else None,
        "shipment.reference": shipment.reference if shipment else None,
        "shipment.eta": f"{shipment.eta:%d %b %Y}" if shipment and shipment.eta else None,
        "shipment.containers": ", ".join(shipment.container_numbers) if shipment else None,
        "agent.name": viewer.name,
    }


async def fill(ctx: Context, body: str, thread: Thread) -> str:
    """`body`'s variables filled from the thread and the viewer (a workflow's SEND_REPLY step)."""
    return render(body, await _values(ctx, ctx.viewer, thread))


def render(body: str, values: dict[str, str | None]) -> str:
    """Each `{{variable}}` replaced by its value (empty when it has none), in one pass."""
    return _VARIABLE.sub(lambda match: values.get(match.group(1)) or "", body)


async def canned_response_render(
    ctx: Context, response_id: uuid.UUID | None, thread_id: uuid.UUID | None
) -> str | None:
    """The response's text with the thread's values filled in; None when the response or the thread (if one is
    given) does not exist or is not the viewer's to see."""
    viewer = ctx.require(Permission.READ)
    if response_id is None:
        return None
    row = await ctx.db.scalar(select(CannedResponse).where(CannedResponse.id == response_id, _scope(viewer)))
    if row is None:
        return None
    thread = None
    if thread_id is not None:
        thread = await ctx.db.scalar(select(Thread).where(Thread.id == thread_id))
        if thread is None:
            return None
    return render(row.body, await _values(ctx, viewer, thread))
