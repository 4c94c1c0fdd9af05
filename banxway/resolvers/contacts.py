"""Contacts, their identities on each channel, and merging duplicates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.auth import Permission
from banxway.db.models import Contact, ContactIdentity, ContactMerge, Customer, Message, Thread
from banxway.enums import Channel
from banxway.errors import DomainError
from banxway.events import ContactCreated, ContactMerged, ContactUnmerged, ContactUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import apply_changes, get_or_error
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from banxway.context import Context


@dataclass(frozen=True)
class IdentityInput:
    channel: Channel
    address: str


def _identities(values: list[IdentityInput]) -> list[tuple[Channel, str]]:
    cleaned: list[tuple[Channel, str]] = []
    for index, identity in enumerate(values):
        pair = (identity.channel, v.identity_address(identity.channel, identity.address, f"identities.{index}.address"))
        if pair not in cleaned:
            cleaned.append(pair)
    return cleaned


async def _check_identities_free(
    session: AsyncSession, pairs: list[tuple[Channel, str]], contact_id: uuid.UUID | None
) -> None:
    for index, (channel, address) in enumerate(pairs):
        owner = await session.scalar(
            select(ContactIdentity.contact_id).where(
                ContactIdentity.channel == channel, ContactIdentity.address == address
            )
        )
        if owner is not None and owner != contact_id:
            raise DomainError(
                "TAKEN",
                f"{channel.name} address {address} already belongs to another contact.",
                ["identities", str(index), "address"],
            )


async def _customer(session: AsyncSession, customer_id: uuid.UUID | None) -> uuid.UUID | None:
    if customer_id is None:
        return None
    return (await get_or_error(session, Customer, customer_id, "customerId")).id


async def contact_create(
    ctx: Context,
    *,
    name: str,
    title: str | None = None,
    customer_id: uuid.UUID | None = None,
    identities: list[IdentityInput] | None = None,
) -> Contact:
    viewer = ctx.require(Permission.CUSTOMER_MANAGE)
    clean_name = v.text(name, "name", max_length=200, required=True)
    clean_title = v.text(title, "title", max_length=200)
    pairs = _identities(identities or [])
    try:
        async with ctx.transaction() as session:
            await _check_identities_free(session, pairs, None)
            contact = Contact(
                organization_id=viewer.organization_id,
                name=clean_name,
                title=clean_title,
                customer_id=await _customer(session, customer_id),
            )
            session.add(contact)
            await session.flush()
            for channel, address in pairs:
                session.add(
                    ContactIdentity(
                        organization_id=viewer.organization_id, contact_id=contact.id, channel=channel, address=address
                    )
                )
            ctx.record(session, ContactCreated(contact_id=contact.id))
    except IntegrityError:
        raise DomainError("TAKEN", "One of these addresses already belongs to another contact.", "identities") from None
    return contact


async def contact_update(
    ctx: Context, contact_id: uuid.UUID | None, changes: dict[str, Any], identities: list[IdentityInput] | None
) -> Contact:
    """Update fields; `identities`, when given, becomes the contact's whole set of identities."""
    viewer = ctx.require(Permission.CUSTOMER_MANAGE)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = v.text(changes["name"], "name", max_length=200, required=True)
    if "title" in changes:
        values["title"] = v.text(changes["title"], "title", max_length=200)
    pairs = _identities(identities) if identities is not None else None
    try:
        async with ctx.transaction() as session:
            contact = await get_or_error(session, Contact, contact_id, "id", lock=True)
            if contact.merged_into_id is not None:
                raise DomainError("INVALID", "This contact was merged into another; unmerge it first.", "id")
            if "customer_id" in changes:
                values["customer_id"] = await _customer(session, changes["customer_id"])
            changed = apply_changes(contact, values)
            if pairs is not None:
                await _check_identities_free(session, pairs, contact.id)
                current = list(
                    await session.scalars(select(ContactIdentity).where(ContactIdentity.contact_id == contact.id))
                )
                keep = {(i.channel, i.address) for i in current} & set(pairs)
                for identity in current:
                    if (identity.channel, identity.address) not in keep:
                        await session.delete(identity)
                await session.flush()
                for channel, address in pairs:
                    if (channel, address) not in keep:
                        session.add(
                            ContactIdentity(
                                organization_id=viewer.organization_id,
                                contact_id=contact.id,
                                channel=channel,
                                address=address,
                            )
                        )
                if set(pairs) != {(i.channel, i.address) for i in current}:
                    changed.append("identities")
            if changed:
                ctx.record(session, ContactUpdated(contact_id=contact.id, changed=changed))
    except IntegrityError:
        raise DomainError("TAKEN", "One of these addresses already belongs to another contact.", "identities") from None
    return contact


async def contact_merge(ctx: Context, kept_id: uuid.UUID | None, merged_id: uuid.UUID | None) -> ContactMerge:
    """Move the identities, threads and messages of `merged_id` to `kept_id`; recorded so it can be undone."""
    ctx.require(Permission.CONTACT_MERGE)
    if kept_id is not None and kept_id == merged_id:
        raise DomainError("INVALID", "A contact cannot be merged into itself.", "mergedContactId")
    async with ctx.transaction() as session:
        return await merge_in(ctx, session, kept_id, merged_id)


async def merge_in(
    ctx: Context, session: AsyncSession, kept_id: uuid.UUID | None, merged_id: uuid.UUID | None
) -> ContactMerge:
    """`contact_merge`'s work inside the caller's transaction (also run by contactMergeSuggestionAccept)."""
    viewer = ctx.viewer
    kept = await get_or_error(session, Contact, kept_id, "keptContactId", lock=True, label="contact")
    merged = await get_or_error(session, Contact, merged_id, "mergedContactId", lock=True, label="contact")
    for contact, field in ((kept, "keptContactId"), (merged, "mergedContactId")):
        if contact.merged_into_id is not None:
            raise DomainError("INVALID", "That contact has already been merged into another.", field)
    moved = {
        "identities": await _move(session, ContactIdentity, merged.id, kept.id),
        "threads": await _move(session, Thread, merged.id, kept.id),
        "messages": await _move(session, Message, merged.id, kept.id),
    }
    merged.merged_into_id = kept.id
    merge = ContactMerge(
        organization_id=viewer.organization_id,
        kept_contact_id=kept.id,
        merged_contact_id=merged.id,
        actor_id=viewer.user_id,
        moved=moved,
    )
    session.add(merge)
    await session.flush()
    ctx.record(
        session,
        ContactMerged(
            merge_id=merge.id,
            kept_contact_id=kept.id,
            merged_contact_id=merged.id,
            thread_ids=[uuid.UUID(t) for t in moved["threads"]],
            message_ids=[uuid.UUID(m) for m in moved["messages"]],
        ),
    )
    return merge


async def _move(session: AsyncSession, model: Any, from_id: uuid.UUID, to_id: uuid.UUID) -> list[str]:
    result = await session.execute(
        update(model).where(model.contact_id == from_id).values(contact_id=to_id).returning(model.id)
    )
    return sorted(str(row_id) for row_id in result.scalars())


async def _move_back(session: AsyncSession, model: Any, ids: list[str], from_id: uuid.UUID, to_id: uuid.UUID) -> None:
    if ids:
        await session.execute(
            update(model)
            .where(model.id.in_([uuid.UUID(i) for i in ids]), model.contact_id == from_id)
            .values(contact_id=to_id)
        )


async def contact_unmerge(ctx: Context, merged_id: uuid.UUID | None) -> ContactMerge:
    """Undo the latest merge of `merged_id`: what was moved goes back (unless moved again since)."""
    ctx.require(Permission.CONTACT_MERGE)
    async with ctx.transaction() as session:
        merged = await get_or_error(session, Contact, merged_id, "contactId", lock=True, label="contact")
        merge = await session.scalar(
            select(ContactMerge)
            .where(ContactMerge.merged_contact_id == merged.id, ContactMerge.undone_at.is_(None))
            .order_by(ContactMerge.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if merge is None or merged.merged_into_id is None:
            raise DomainError("INVALID", "This contact is not merged into another.", "contactId")
        for model, key in ((ContactIdentity, "identities"), (Thread, "threads"), (Message, "messages")):
            await _move_back(session, model, merge.moved[key], merge.kept_contact_id, merged.id)
        merged.merged_into_id = None
        merge.undone_at = datetime.now(UTC)
        ctx.record(
            session,
            ContactUnmerged(
                merge_id=merge.id,
                kept_contact_id=merge.kept_contact_id,
                merged_contact_id=merged.id,
                thread_ids=[uuid.UUID(t) for t in merge.moved["threads"]],
                message_ids=[uuid.UUID(m) for m in merge.moved["messages"]],
            ),
        )
    return merge


def contacts_query(ctx: Context, search: str | None, customer_id: uuid.UUID | None = None) -> Select[Any]:
    ctx.require(Permission.READ)
    query = select(Contact).where(Contact.merged_into_id.is_(None))
    if customer_id is not None:
        query = query.where(Contact.customer_id == customer_id)
    if search and search.strip():
        pattern = f"%{search.strip()}%"
        query = query.where(
            or_(
                Contact.name.ilike(pattern),
                exists().where(ContactIdentity.contact_id == Contact.id, ContactIdentity.address.ilike(pattern)),
            )
        )
    return query


async def contacts_page(
    ctx: Context, search: str | None, customer_id: uuid.UUID | None, *, first: int | None, after: str | None
) -> Page[Contact]:
    """Contacts by name, merged-away ones left out; `search` matches name or any address."""
    query = contacts_query(ctx, search, customer_id)
    return await paginate(ctx.db, query, (Contact.name, Contact.id), first=first, after=after)
