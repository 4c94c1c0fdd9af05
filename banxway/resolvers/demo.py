"""The demo organization that `serve --demo` and `seed --demo` create (idempotent).

It has no email account or provider integration: its replies are sent through the development sink, which
`serve --demo` turns on (BANXWAY_DEV_SINK), so that they turn SENT, DELIVERED and (WhatsApp) READ.

Everything is written through the same use-cases the API calls, by the demo admin,
so the demo exercises the real write paths (inbound messages through
`message_receive`, the path the channels use).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from banxway import db
from banxway.auth import hash_password
from banxway.context import Context, Viewer
from banxway.db.models import Organization, User
from banxway.db.session import system_session, write_transaction
from banxway.enums import Role
from banxway.errors import DomainError
from banxway.extraction import container_check_digit
from banxway.resolvers import (
    actions,
    contacts,
    customers,
    messages,
    notes,
    shipments,
    sla,
    teams,
    threads,
    workflows,
)
from banxway.resolvers.contacts import IdentityInput
from banxway.resolvers.inbound import message_receive
from banxway.resolvers.users import organization_create

if TYPE_CHECKING:
    from banxway.state import AppState

DEMO_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@demo.banxway.dev"
DEMO_PASSWORD = "banxway-demo"

DEMO_TEAM = [
    ("manager@demo.banxway.dev", "Meera Manager", Role.MANAGER),
    ("validator@demo.banxway.dev", "Victor Validator", Role.VALIDATOR),
    ("support@demo.banxway.dev", "Sana Support", Role.SUPPORT),
    ("viewer@demo.banxway.dev", "Vikram Viewer", Role.VIEWER),
]

CUSTOMERS = [
    ("Tata Steel Exports", "TATA", "logistics@tatasteel.example", "+91 22 6665 8282"),
    ("Hamburg Machinery GmbH", "HMG", "import@hamburg-machinery.example", "+49 40 3861 0000"),
    ("Sunrise Textiles", "SUNTEX", "shipping@sunrisetextiles.example", "+91 79 2658 4000"),
    ("Pacific Electronics Ltd", "PACEL", "ops@pacific-electronics.example", "+65 6221 0000"),
]

CONTACTS = [
    # name, title, customer code, email, whatsapp/sms phone
    ("Priya Shah", "Logistics Manager", "TATA", "priya.shah@tatasteel.example", "+91 98200 12345"),
    ("Rohan Mehta", "Export Executive", "TATA", "rohan.mehta@tatasteel.example", "+91 98200 67890"),
    ("Jonas Becker", "Head of Purchasing", "HMG", "j.becker@hamburg-machinery.example", "+49 151 2345 6789"),
    ("Anita Desai", "Shipping Coordinator", "SUNTEX", "anita@sunrisetextiles.example", "+91 98250 11223"),
    ("Wei Lin", "Supply Chain Lead", "PACEL", "wei.lin@pacific-electronics.example", "+65 9123 4567"),
]


def _container(owner: str, serial: int) -> str:
    body = f"{owner}{serial:06d}"
    return f"{body}{container_check_digit(body)}"


@dataclass(frozen=True)
class DemoLogin:
    organization: str
    email: str
    password: str
    replies_skipped: int = 0  # replies not sent: their channel is not configured and the development sink is off


async def seed_demo(state: AppState) -> DemoLogin:
    """Create the demo organization, a user of every role and a freight dataset, unless they exist."""
    async with system_session(state.sessionmaker) as session:
        organization = await session.scalar(select(Organization).where(Organization.slug == DEMO_SLUG))
        if organization is None:
            organization, _ = await organization_create(
                session,
                name="Demo Freight Forwarders",
                slug=DEMO_SLUG,
                admin_email=DEMO_ADMIN_EMAIL,
                admin_password=DEMO_PASSWORD,
                admin_name="Asha Admin",
            )
        async with write_transaction(session):
            existing = set(await session.scalars(select(User.email).where(User.organization_id == organization.id)))
            for email, name, role in DEMO_TEAM:
                if email not in existing:
                    session.add(
                        User(
                            organization_id=organization.id,
                            email=email,
                            name=name,
                            role=role,
                            password_hash=hash_password(DEMO_PASSWORD),
                        )
                    )
        admin = await session.scalar(
            select(User).where(User.email == DEMO_ADMIN_EMAIL, User.organization_id == organization.id)
        )
        has_data = await session.scalar(
            select(func.count()).select_from(db.Customer).where(db.Customer.organization_id == organization.id)
        )
    skipped = await _seed_dataset(state, organization.id, admin) if not has_data else 0
    return DemoLogin(DEMO_SLUG, DEMO_ADMIN_EMAIL, DEMO_PASSWORD, skipped)


# Mumbai office hours: split shifts on weekdays, Saturday mornings, India's public holidays.
DEMO_BUSINESS_HOURS = {
    "timezone": "Asia/Kolkata",
    "hours": {
        **{day: [["09:30", "13:30"], ["14:30", "18:30"]] for day in ("monday", "tuesday", "wednesday", "thursday")},
        "friday": [["09:30", "13:30"], ["14:30", "18:30"]],
        "saturday": [["10:00", "14:00"]],
    },
    "holidays": {"country": "IN", "subdivision": "MH", "dates": []},
}


async def _seed_service_levels(ctx: Context, organization_id) -> None:
    """Business hours, two SLA policies ("Urgent quotes": first response in 30 business minutes) and the Sea
    Export team, before the threads, so that the threads run their SLA."""
    await sla.business_hours_set(ctx, DEMO_BUSINESS_HOURS)
    await sla.sla_policy_create(
        ctx,
        {
            "name": "Urgent quotes",
            "position": 1,
            "conditions": {"priorities": ["URGENT", "HIGH"], "thread_types": ["QUOTE_REQUEST"]},
            "first_response_minutes": 30,
            "resolution_minutes": 8 * 60,
            "warn_before_minutes": 10,
            "breach_actions": {"notify_assignee": True, "notify_managers": True, "raise_priority": True},
        },
    )
    await sla.sla_policy_create(
        ctx,
        {
            "name": "Standard",
            "position": 10,
            "first_response_minutes": 4 * 60,
            "next_response_minutes": 4 * 60,
            "resolution_minutes": 3 * 9 * 60,
            "warn_before_minutes": 30,
            "breach_actions": {"notify_assignee": True},
        },
    )
    async with system_session(ctx.state.sessionmaker) as session:
        members = list(
            await session.scalars(
                select(User.id).where(
                    User.organization_id == organization_id, User.role.in_([Role.SUPPORT, Role.MANAGER])
                )
            )
        )
    await teams.team_create(ctx, "Sea Export", list(members))


async def _seed_dataset(state: AppState, organization_id, admin: User) -> int:
    """The demo's customers, shipments and threads; how many replies could not be sent (CHANNEL_NOT_CONFIGURED:
    the demo organization has no accounts, and without the development sink its replies have nowhere to go)."""
    ctx = Context(state=state, viewer_or_none=Viewer(admin.id, organization_id, Role.ADMIN, admin.email, admin.name))
    skipped = 0
    try:
        await _seed_service_levels(ctx, organization_id)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        by_code = {}
        for name, code, email, phone in CUSTOMERS:
            by_code[code] = await customers.customer_create(
                ctx, name=name, code=code, email=email, phone=phone, tags=["key-account"] if code == "TATA" else []
            )
        people = []
        for name, title, code, email, phone in CONTACTS:
            people.append(
                await contacts.contact_create(
                    ctx,
                    name=name,
                    title=title,
                    customer_id=by_code[code].id,
                    identities=[
                        IdentityInput(db.Channel.EMAIL, email),
                        IdentityInput(db.Channel.WHATSAPP, phone),
                        IdentityInput(db.Channel.SMS, phone),
                    ],
                )
            )
        sea = await shipments.shipment_create(
            ctx,
            customer_id=by_code["TATA"].id,
            reference="SE-2026-0417",
            mode=db.ShipmentMode.SEA,
            direction=db.ShipmentDirection.EXPORT,
            origin_code="INNSA",
            origin_name="Nhava Sheva",
            destination_code="DEHAM",
            destination_name="Hamburg",
            carrier="MSC",
            vessel="MSC Gülsün",
            voyage="FL614W",
            container_numbers=[_container("MSCU", 412093), _container("MSCU", 412094)],
            bl_number="MEDUIN123456",
            booking_number="BKG778812",
            etd=now - dt.timedelta(days=6),
            eta=now + dt.timedelta(days=18),
        )
        await shipments.shipment_milestone_add(
            ctx, sea.id, type=db.MilestoneType.BOOKED, actual_at=now - dt.timedelta(days=14)
        )
        await shipments.shipment_milestone_add(
            ctx, sea.id, type=db.MilestoneType.GATE_IN, actual_at=now - dt.timedelta(days=8), location_code="INNSA"
        )
        await shipments.shipment_milestone_add(
            ctx, sea.id, type=db.MilestoneType.DEPARTED, actual_at=now - dt.timedelta(days=6), location_code="INNSA"
        )
        await shipments.shipment_milestone_add(
            ctx, sea.id, type=db.MilestoneType.ARRIVED, planned_at=now + dt.timedelta(days=18), location_code="DEHAM"
        )
        air = await shipments.shipment_create(
            ctx,
            customer_id=by_code["PACEL"].id,
            reference="AI-2026-0093",
            mode=db.ShipmentMode.AIR,
            direction=db.ShipmentDirection.IMPORT,
            origin_code="SGSIN",
            origin_name="Singapore",
            destination_code="INBOM",
            destination_name="Mumbai",
            carrier="Singapore Airlines Cargo",
            flight_number="SQ7424",
            awb_number="618-12345675",
            etd=now - dt.timedelta(days=1),
            eta=now + dt.timedelta(hours=20),
        )
        await shipments.shipment_milestone_add(
            ctx, air.id, type=db.MilestoneType.DEPARTED, actual_at=now - dt.timedelta(days=1), location_code="SGSIN"
        )
        textiles = await shipments.shipment_create(
            ctx,
            customer_id=by_code["SUNTEX"].id,
            reference="SE-2026-0388",
            mode=db.ShipmentMode.SEA,
            direction=db.ShipmentDirection.EXPORT,
            origin_code="INMUN",
            origin_name="Mundra",
            destination_code="USNYC",
            destination_name="New York",
            carrier="Maersk",
            container_numbers=[_container("MAEU", 883120)],
            status=db.ShipmentStatus.CUSTOMS_HOLD,
        )

        conversations = [
            # subject, type, channel, contact, shipment, priority, final status, inbound, reply, note
            (
                "Quote: 2x40HC Nhava Sheva to Hamburg",
                db.ThreadType.QUOTE_REQUEST,
                db.Channel.EMAIL,
                people[0],
                None,
                db.Priority.HIGH,
                None,
                "Please quote 2x40HC steel coils, Nhava Sheva to Hamburg, loading next week.",
                None,
                "Check MSC and Hapag rates before replying",
            ),
            (
                "Booking confirmation SE-2026-0417",
                db.ThreadType.BOOKING,
                db.Channel.EMAIL,
                people[1],
                sea,
                db.Priority.NORMAL,
                db.ThreadStatus.PENDING,
                "Can you confirm the booking and the cut-off?",
                "Booking BKG778812 is confirmed on MSC Gülsün FL614W; gate cut-off is Thursday 18:00.",
                None,
            ),
            (
                "Where is my container?",
                db.ThreadType.SHIPMENT_UPDATE,
                db.Channel.WHATSAPP,
                people[2],
                sea,
                db.Priority.NORMAL,
                db.ThreadStatus.OPEN,
                "Hi, any update on our machinery containers?",
                "Vessel departed Nhava Sheva, ETA Hamburg in 18 days.",
                None,
            ),
            (
                "Customs hold at Mundra",
                db.ThreadType.CUSTOMS,
                db.Channel.EMAIL,
                people[3],
                textiles,
                db.Priority.URGENT,
                db.ThreadStatus.OPEN,
                "Customs is holding our shipment, what documents are missing?",
                None,
                "Needs the amended commercial invoice — @validator@demo.banxway.dev please review",
            ),
            (
                "Flight SQ7424 arrival",
                db.ThreadType.SHIPMENT_UPDATE,
                db.Channel.SMS,
                people[4],
                air,
                db.Priority.HIGH,
                db.ThreadStatus.RESOLVED,
                "Please SMS me when the cargo lands in Mumbai.",
                "Will do: SQ7424 lands tomorrow 06:40, delivery order ready.",
                None,
            ),
            (
                "Invoice INV-2026-118 query",
                db.ThreadType.INVOICE,
                db.Channel.EMAIL,
                people[0],
                sea,
                db.Priority.LOW,
                db.ThreadStatus.CLOSED,
                "The THC on INV-2026-118 looks doubled.",
                "Corrected invoice attached; the THC was billed once.",
                None,
            ),
            (
                "Damaged carton complaint",
                db.ThreadType.COMPLAINT,
                db.Channel.WHATSAPP,
                people[3],
                None,
                db.Priority.HIGH,
                db.ThreadStatus.ARCHIVED,
                "Two cartons arrived wet.",
                "We have filed a claim with the carrier.",
                None,
            ),
            (
                "New lane enquiry: Singapore to Chennai",
                db.ThreadType.GENERAL,
                db.Channel.EMAIL,
                people[4],
                None,
                db.Priority.NORMAL,
                None,
                "Do you handle LCL from Singapore to Chennai?",
                None,
                None,
            ),
        ]
        for subject, kind, channel, person, shipment, priority, status, inbound, reply, note in conversations:
            thread = await threads.thread_create(
                ctx,
                subject=subject,
                type=kind,
                primary_channel=channel,
                priority=priority,
                contact_id=person.id,
                shipment_id=shipment.id if shipment else None,
                tags=["sea"] if shipment is not None and shipment.mode == db.ShipmentMode.SEA else [],
            )
            sender = await _address(ctx, person.id, channel)
            async with ctx.transaction() as session:
                await message_receive(
                    session,
                    organization_id,
                    thread_id=thread.id,
                    channel=channel,
                    body=inbound,
                    subject=subject if channel == db.Channel.EMAIL else None,
                    sender=sender,
                    contact_id=person.id,
                )
            if reply:
                try:
                    await messages.message_send(
                        ctx,
                        thread_id=thread.id,
                        channel=channel,
                        body=reply,
                        subject=f"Re: {subject}" if channel == db.Channel.EMAIL else None,
                    )
                except DomainError as exc:
                    if exc.code != "CHANNEL_NOT_CONFIGURED":
                        raise
                    skipped += 1
            if note:
                await notes.note_add(ctx, thread_id=thread.id, body=note)
            if kind == db.ThreadType.QUOTE_REQUEST:
                await actions.action_create(
                    ctx,
                    thread_id=thread.id,
                    title="Approve the quote before sending",
                    type=db.ActionType.QUOTE_APPROVAL,
                    due_at=now + dt.timedelta(hours=4),
                )
            if kind == db.ThreadType.CUSTOMS:
                await actions.action_create(
                    ctx,
                    thread_id=thread.id,
                    title="Collect the amended commercial invoice",
                    type=db.ActionType.FOLLOW_UP,
                    due_at=now + dt.timedelta(hours=2),
                    assignee_id=admin.id,
                )
                await threads.thread_assign(ctx, thread.id, admin.id)
            if status == db.ThreadStatus.ARCHIVED:
                await threads.thread_archive(ctx, thread.id)
            elif status is not None:
                await threads.thread_update(ctx, thread.id, {"status": status})
        await _seed_workflow(ctx)
    finally:
        await ctx.aclose()
    return skipped


async def _seed_workflow(ctx: Context) -> None:
    """The issue's example, active after the seeded threads (so that it acts on new messages only): a WhatsApp
    message from a key account goes round-robin to Sea Export, with an action "Send quote" due in 2 hours."""
    [sea_export] = [team for team in await teams.teams(ctx) if team.name == "Sea Export"]
    await workflows.workflow_create(
        ctx,
        name="Key accounts on WhatsApp",
        description="WhatsApp from a key account: round-robin to Sea Export, and a quote due in 2 hours.",
        definition={
            "trigger": {"type": "MESSAGE_RECEIVED", "channel": "WHATSAPP"},
            "conditions": {"all": [{"field": "customer.tags", "op": "CONTAINS", "value": "key-account"}]},
            "steps": [
                {"type": "ASSIGN", "team": str(sea_export.id), "strategy": "ROUND_ROBIN"},
                {"type": "CREATE_ACTION", "title": "Send quote", "actionType": "SEND_QUOTE", "dueInMinutes": 120},
            ],
        },
        active=True,
    )


async def _address(ctx: Context, contact_id, channel: db.Channel) -> str:
    return await ctx.db.scalar(
        select(db.ContactIdentity.address).where(
            db.ContactIdentity.contact_id == contact_id, db.ContactIdentity.channel == channel
        )
    )
