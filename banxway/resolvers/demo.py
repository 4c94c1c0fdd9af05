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
from banxway.db.models import DocumentStatus, DocumentType, Organization, User
from banxway.db.session import system_session, write_transaction
from banxway.enums import Role
from banxway.errors import DomainError
from banxway.extraction import container_check_digit
from banxway.resolvers import (
    actions,
    attachments,
    contacts,
    customers,
    documents,
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
        await _seed_documents(ctx, sea, textiles, air)
        await _seed_workflow(ctx)
    finally:
        await ctx.aclose()
    return skipped


def pdf_with_text(*lines: str) -> bytes:
    """A one-page PDF whose text layer holds `lines` (Helvetica), written object by object with its xref table:
    the demo's documents (read by extract_document_text), and the test suite's."""
    stream = "BT /F1 11 Tf 14 TL 72 740 Td " + " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*" for line in lines
    )
    stream += " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        "/Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


async def _seed_documents(ctx: Context, sea: db.Shipment, textiles: db.Shipment, air: db.Shipment) -> None:
    """Shipment documents: the sea export's BL (approved) and invoice, a draft packing list; the customs hold's
    invoice, rejected; the air import's AWB. Their text is read by the worker (extract_document_text)."""
    sea_containers = " ".join(sea.container_numbers)
    filed = [
        (
            sea,
            "BL MEDUIN123456.pdf",
            DocumentType.BILL_OF_LADING,
            DocumentStatus.RECEIVED,
            (
                "BILL OF LADING",
                "B/L No. MEDUIN123456",
                "Shipper: Tata Steel Exports",
                f"Containers: {sea_containers}",
                "Port of loading: Nhava Sheva  Port of discharge: Hamburg",
                "Vessel: MSC Gulsun  Voyage FL614W",
            ),
        ),
        (
            sea,
            "Commercial invoice TSE-4471.pdf",
            DocumentType.COMMERCIAL_INVOICE,
            DocumentStatus.RECEIVED,
            (
                "COMMERCIAL INVOICE TSE-4471",
                "Seller: Tata Steel Exports",
                "Buyer: Hamburg Machinery GmbH",
                "Hot rolled steel coils, 42 MT, FOB Nhava Sheva",
            ),
        ),
        (
            sea,
            "Packing list draft.pdf",
            DocumentType.PACKING_LIST,
            DocumentStatus.DRAFT,
            ("PACKING LIST (DRAFT)", "24 coils, gross weight 42500 KG"),
        ),
        (
            textiles,
            "Invoice SUNTEX-0912.pdf",
            DocumentType.COMMERCIAL_INVOICE,
            DocumentStatus.RECEIVED,
            ("COMMERCIAL INVOICE SUNTEX-0912", "Cotton yarn, 18 MT", f"Container {textiles.container_numbers[0]}"),
        ),
        (
            air,
            "AWB 618-12345675.pdf",
            DocumentType.AIR_WAYBILL,
            DocumentStatus.RECEIVED,
            ("AIR WAYBILL 618-12345675", "Singapore Airlines Cargo SQ7424", "Singapore to Mumbai"),
        ),
    ]
    found = {}
    for shipment, filename, kind, status, lines in filed:
        attachment = await attachments.attachment_upload(
            ctx, filename=filename, content_type="application/pdf", data=pdf_with_text(*lines)
        )
        document = await documents.document_upload(
            ctx, shipment_id=shipment.id, attachment_id=attachment.id, type=kind, status=status
        )
        found[filename] = document
    await documents.document_approve(ctx, found["BL MEDUIN123456.pdf"].id)
    await documents.document_reject(
        ctx, found["Invoice SUNTEX-0912.pdf"].id, "The HS code is missing; customs needs the amended invoice."
    )


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
