"""The contact resolver: which contact an address belongs to, across every channel of the organization.

For other modules (every inbound path calls it; the web chat widget calls it when a visitor gives an email):

    contact = await resolve_contact(session, organization_id, channel, address, name=None)

inside the caller's tenant transaction. `address` is the channel's address: an E.164 number for WHATSAPP, SMS and
VOICE (normalise a provider's national form first, `inbound.normalise_number`), an email for EMAIL (any case), the
channel's own id otherwise (WEB_CHAT visitor, Messenger/Instagram sender). It returns the live contact (merges
followed) and guarantees that contact has an identity on (channel, address), adding one (CONTACT_UPDATED) or creating
an unverified contact (CONTACT_CREATED) when needed. `find_contacts(session, channel, address)` answers without
writing. A known contact that gives another address (a web chat visitor typing their email):

    owner = await link_address(session, organization_id, contact.id, Channel.EMAIL, email)

adds it to that contact when nobody has it, else returns the contact that has it and suggests merging the two.

Matching: a phone number matches the same number on WHATSAPP, SMS and VOICE (one person, three identities); an email
matches email identities case-insensitively; other channels match their own channel only. When several live contacts
own the address (the same number as one contact's WhatsApp and another's SMS), the one with the identity on this very
channel wins, else the oldest; nothing is merged automatically: a merge suggestion is recorded per pair and address,
once (CONTACT_MERGE_SUGGESTED), for a person to accept (the contactMerge use-case) or dismiss.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Contact, ContactIdentity, ContactMergeSuggestion
from banxway.db.session import transaction_memo
from banxway.enums import Channel
from banxway.errors import DomainError
from banxway.events import ContactMergeSuggested, ContactMergeSuggestionResolved
from banxway.resolvers.common import get_or_error
from banxway.resolvers.contacts import merge_in

if TYPE_CHECKING:
    from banxway.context import Context

UUID_TYPE = UUID(as_uuid=True)

PHONE_CHANNELS = (Channel.WHATSAPP, Channel.SMS, Channel.VOICE)
SUGGESTION_STATUSES = ("OPEN", "ACCEPTED", "DISMISSED")


def _family(channel: Channel) -> tuple[Channel, ...]:
    """The channels whose identities an address on `channel` is matched against."""
    return PHONE_CHANNELS if channel in PHONE_CHANNELS else (channel,)


def normalise_address(channel: Channel, address: str) -> str:
    """How an address is stored and compared: emails lower-cased, everything else trimmed."""
    cleaned = address.strip()
    return cleaned.lower() if channel == Channel.EMAIL else cleaned


async def _live(session: AsyncSession, contact: Contact | None) -> Contact | None:
    seen: set[uuid.UUID] = set()
    while contact is not None and contact.merged_into_id is not None and contact.id not in seen:
        seen.add(contact.id)
        contact = await session.get(Contact, contact.merged_into_id)
    return contact


async def find_contacts(session: AsyncSession, channel: Channel, address: str) -> list[Contact]:
    """The live contacts owning `address` on `channel` or a channel of its family (merges followed), the one with
    an identity on `channel` itself first, then by age. Scoped to the session's organization."""
    value = normalise_address(channel, address)
    # email identities are stored lower-cased (contactCreate/contactUpdate, the mail parser, this module): an exact
    # match on the normalised value is case-insensitive and uses the (organization, channel, address) index
    return await _live_owners(session, await _owner_rows(session, channel, value))


async def _owner_rows(session: AsyncSession, channel: Channel, value: str) -> list[tuple[Contact, Channel]]:
    rows = await session.execute(_owners_query(), _owners_params(channel, [value]))
    return [(row[0], row[1]) for row in rows]


@functools.cache
def _owners_query() -> Select[Any]:
    """(contact, identity channel, address) of the identities with one of `:values` on the channels `:family`, the
    identity on `:channel` itself first, then the oldest contact (`_owners_params`). The identities are found first (a
    materialized CTE, on the unique (organization, channel, address) index), then their contacts by primary key:
    PostgreSQL cannot start from the organization's contacts, which it did when its statistics were stale for a
    fast-growing organization. Built once: building it took ~0.4 ms, at every lookup."""
    owners = (
        select(ContactIdentity.contact_id, ContactIdentity.channel, ContactIdentity.address)
        .where(
            ContactIdentity.channel.in_(bindparam("family", expanding=True)),
            ContactIdentity.address.in_(bindparam("values", expanding=True)),
        )
        .cte("owners")
        .prefix_with("MATERIALIZED")
    )
    return (
        select(Contact, owners.c.channel, owners.c.address)
        .join(owners, owners.c.contact_id == Contact.id)
        .order_by((owners.c.channel == bindparam("channel")).desc(), Contact.created_at, Contact.id)
    )


def _owners_params(channel: Channel, values: list[str]) -> dict[str, Any]:
    return {"family": list(_family(channel)), "values": values, "channel": channel}


async def _live_owners(session: AsyncSession, rows: list[tuple[Contact, Channel]]) -> list[Contact]:
    found: list[Contact] = []
    for contact, _ in rows:
        live = await _live(session, contact)
        if live is not None and all(live.id != c.id for c in found):
            found.append(live)
    return found


async def prefetch_contacts(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, addresses: list[str]
) -> None:
    """Look up many addresses of one channel in one statement (a page of ingested mail); `resolve_contact` then
    answers them from what was read, for the rest of the transaction."""
    values = sorted({normalise_address(channel, address) for address in addresses})
    if not values:
        return
    rows = await session.execute(_owners_query(), _owners_params(channel, values))
    owners: dict[str, list[tuple[Contact, Channel]]] = {value: [] for value in values}
    for contact, identity_channel, value in rows.all():
        owners[value].append((contact, identity_channel))
    memo = transaction_memo(session, "contacts_found")
    for value, found in owners.items():
        memo[(organization_id, channel, value)] = found


async def resolve_contact(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, address: str, *, name: str | None = None
) -> Contact:
    """The contact `address` on `channel` belongs to (see the module's docstring); created when there is none.
    Remembered for the rest of the transaction (a page of mail from one sender resolves it once)."""
    value = normalise_address(channel, address)
    resolved = transaction_memo(session, "contacts_resolved")
    known = resolved.get((organization_id, channel, value))
    if known is not None:
        return known
    contact = await _resolve(session, organization_id, channel, value, name)
    resolved[(organization_id, channel, value)] = contact
    return contact


async def _resolve(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, value: str, name: str | None
) -> Contact:
    owners = transaction_memo(session, "contacts_found").pop((organization_id, channel, value), None)
    if owners is None:
        owners = await _owner_rows(session, channel, value)
    found = await _live_owners(session, owners)
    # the first owner has the identity on this very channel already: nothing to look up or add
    has_identity = bool(found) and any(c is found[0] and ch == channel for c, ch in owners)
    if not found and transaction_memo(session, "batch").get("savepoint"):
        # inside a batch's own savepoint (a page of mail): written with the batch's flush; a concurrent creation
        # fails the batch, which is then stored item by item, each through `_create` below
        contact = Contact(id=uuid.uuid4(), organization_id=organization_id, name=(name or value)[:200], verified=False)
        session.add(contact)
        session.add(
            ContactIdentity(organization_id=organization_id, contact_id=contact.id, channel=channel, address=value)
        )
        events.record(
            session, events.ContactCreated(contact_id=contact.id), organization_id=organization_id, actor_id=None
        )
        return contact
    if not found:
        created = await _create(session, organization_id, channel, value, name)
        if created is None:  # a concurrent message from the same new sender created it first (and committed)
            return await _resolve(session, organization_id, channel, value, name)
        transaction_memo(session, "contacts_created")[created.id] = created
        events.record(
            session, events.ContactCreated(contact_id=created.id), organization_id=organization_id, actor_id=None
        )
        return created
    contact = found[0]
    if not has_identity:
        await _ensure_identity(session, organization_id, contact, channel, value)
    for other in found[1:]:
        await suggest_merge(session, organization_id, contact.id, other.id, value)
    return contact


async def _create(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, value: str, name: str | None
) -> Contact | None:
    """A new unverified contact with the identity, in one statement; None when the identity exists after all (a
    concurrent transaction added it: the INSERT waited for it to commit).

    The contact comes back as a persistent row, not as one added to the session: should a savepoint around this
    roll back, its object stays in the session's identity map (nothing keeps its id: the transaction's memos are
    forgotten on any rollback)."""
    parameters = {
        "identity_id": uuid.uuid4(),
        "contact_id": uuid.uuid4(),
        "organization_id": organization_id,
        "channel": channel,
        "address": value,
        "name": (name or value)[:200],
    }
    return await session.scalar(_create_statement(), parameters)


@functools.cache
def _create_statement() -> Any:
    """The identity is inserted first (ON CONFLICT DO NOTHING), and the contact only if it was: foreign keys are
    checked at the end of the statement. Built once."""
    organization_id = bindparam("organization_id", type_=UUID_TYPE)
    identity = (
        insert(ContactIdentity)
        .values(
            id=bindparam("identity_id", type_=UUID_TYPE),
            organization_id=organization_id,
            contact_id=bindparam("contact_id", type_=UUID_TYPE),
            channel=bindparam("channel", type_=ContactIdentity.channel.type),
            address=bindparam("address", type_=ContactIdentity.address.type),
        )
        .on_conflict_do_nothing(
            index_elements=[ContactIdentity.organization_id, ContactIdentity.channel, ContactIdentity.address]
        )
        .returning(ContactIdentity.contact_id)
        .cte("identity")
    )
    table = Contact.__table__
    row = select(
        identity.c.contact_id, organization_id, bindparam("name", type_=Contact.name.type), literal(False)
    ).select_from(identity)
    returned = [column for column in table.c if column.key != "search"]  # type: ignore[attr-defined]  # deferred
    statement = (
        table.insert()  # type: ignore[attr-defined]
        .from_select(["id", "organization_id", "name", "verified"], row)
        .add_cte(identity)
        .returning(*returned)
    )
    return select(Contact).from_statement(statement)


def created_here(session: AsyncSession, contact_id: uuid.UUID) -> bool:
    """Whether the contact was created in the session's current transaction (nobody else can see it yet)."""
    return contact_id in transaction_memo(session, "contacts_created")


async def link_address(
    session: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID, channel: Channel, address: str
) -> Contact:
    """A known contact (a web chat visitor's) gives another address (an email): the contact that owns it now.
    Nobody has it: it becomes an identity of `contact_id`'s contact (CONTACT_UPDATED). Another contact has it: that
    contact is returned, and a merge of the two is suggested (CONTACT_MERGE_SUGGESTED), never done automatically."""
    contact = await _live(session, await session.get(Contact, contact_id))
    if contact is None:
        raise DomainError("NOT_FOUND", "No such contact.", "contactId")
    value = normalise_address(channel, address)
    owners = await find_contacts(session, channel, value)
    if not owners or any(owner.id == contact.id for owner in owners):
        await _ensure_identity(session, organization_id, contact, channel, value)
        return contact
    await suggest_merge(session, organization_id, owners[0].id, contact.id, value)
    return owners[0]


async def _ensure_identity(
    session: AsyncSession, organization_id: uuid.UUID, contact: Contact, channel: Channel, address: str
) -> None:
    exists = await session.scalar(
        select(ContactIdentity.id)
        .where(ContactIdentity.channel == channel, ContactIdentity.address == address)
        .limit(1)
    )
    if exists is not None:
        return
    try:
        async with session.begin_nested():
            session.add(
                ContactIdentity(
                    organization_id=organization_id, contact_id=contact.id, channel=channel, address=address
                )
            )
            await session.flush()
    except IntegrityError:  # added concurrently
        return
    events.record(
        session,
        events.ContactUpdated(contact_id=contact.id, changed=["identities"]),
        organization_id=organization_id,
        actor_id=None,
    )


async def suggest_merge(
    session: AsyncSession, organization_id: uuid.UUID, first: uuid.UUID, second: uuid.UUID, address: str
) -> ContactMergeSuggestion | None:
    """Record that two contacts share `address` (once per pair and address); the new suggestion, or None."""
    if first == second:
        return None
    low, high = sorted((first, second))
    suggestion_id = await session.scalar(
        insert(ContactMergeSuggestion)
        .values(organization_id=organization_id, contact_id=low, other_contact_id=high, address=address)
        .on_conflict_do_nothing(constraint="uq_contact_merge_suggestions_pair_address")
        .returning(ContactMergeSuggestion.id)
    )
    if suggestion_id is None:
        return None
    events.record(
        session,
        ContactMergeSuggested(suggestion_id=suggestion_id, contact_id=low, other_contact_id=high, address=address),
        organization_id=organization_id,
        actor_id=None,
    )
    return await session.get(ContactMergeSuggestion, suggestion_id)


# -- the suggestions, for people ------------------------------------------------------------------------------------


async def contact_merge_suggestions(ctx: Context, status: str | None = "OPEN") -> list[ContactMergeSuggestion]:
    """The organization's merge suggestions with `status` (None: all), newest first (at most 500)."""
    ctx.require(Permission.READ)
    query = select(ContactMergeSuggestion)
    if status is not None:
        if status not in SUGGESTION_STATUSES:
            raise DomainError("INVALID", f"status must be one of {', '.join(SUGGESTION_STATUSES)}.", "status")
        query = query.where(ContactMergeSuggestion.status == status)
    query = query.order_by(ContactMergeSuggestion.created_at.desc(), ContactMergeSuggestion.id).limit(500)
    return list(await ctx.db.scalars(query))


async def _open_suggestion(session: AsyncSession, suggestion_id: uuid.UUID | None) -> ContactMergeSuggestion:
    suggestion = await get_or_error(
        session, ContactMergeSuggestion, suggestion_id, "id", lock=True, label="merge suggestion"
    )
    if suggestion.status != "OPEN":
        raise DomainError("INVALID_TRANSITION", f"This suggestion was already {suggestion.status.lower()}.", "id")
    return suggestion


def _resolved(ctx: Context, suggestion: ContactMergeSuggestion, status: str) -> ContactMergeSuggestionResolved:
    suggestion.status = status
    suggestion.resolved_by_id = ctx.viewer.user_id
    suggestion.resolved_at = func.now()  # type: ignore[assignment]  # the transaction's time, as the event's
    return ContactMergeSuggestionResolved(
        suggestion_id=suggestion.id,
        contact_id=suggestion.contact_id,
        other_contact_id=suggestion.other_contact_id,
        status=status,
    )


async def contact_merge_suggestion_accept(
    ctx: Context, suggestion_id: uuid.UUID | None
) -> tuple[ContactMergeSuggestion, uuid.UUID, uuid.UUID]:
    """Merge the suggestion's two contacts (the contactMerge use-case: the older contact is kept, undo with
    contactUnmerge) and mark it ACCEPTED: (suggestion, kept contact id, merged contact id)."""
    ctx.require(Permission.CONTACT_MERGE)
    async with ctx.transaction() as session:
        suggestion = await _open_suggestion(session, suggestion_id)
        pair = list(
            await session.scalars(
                select(Contact).where(Contact.id.in_([suggestion.contact_id, suggestion.other_contact_id]))
            )
        )
        if len(pair) != 2 or any(c.merged_into_id is not None for c in pair):
            raise DomainError(
                "INVALID", "One of these contacts was merged into another since; dismiss the suggestion.", "id"
            )
        kept, merged = sorted(pair, key=lambda c: (c.created_at, c.id))
        await merge_in(ctx, session, kept.id, merged.id)
        ctx.record(session, _resolved(ctx, suggestion, "ACCEPTED"))
    return suggestion, kept.id, merged.id


async def contact_merge_suggestion_dismiss(ctx: Context, suggestion_id: uuid.UUID | None) -> ContactMergeSuggestion:
    """Mark the suggestion DISMISSED: it leaves the OPEN list, and the same pair and address is not suggested again."""
    ctx.require(Permission.CONTACT_MERGE)
    async with ctx.transaction() as session:
        suggestion = await _open_suggestion(session, suggestion_id)
        ctx.record(session, _resolved(ctx, suggestion, "DISMISSED"))
    return suggestion
