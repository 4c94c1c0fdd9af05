"""Benchmark: email ingest from a real Dovecot, next to the raw IMAP floor, and the IMAP IDLE delay.

    uv run python bench/ingest.py                     # 5,000 mails of ~4 KB, 10 mails under IDLE
    uv run python bench/ingest.py --mails 500 --json  # one JSON line instead of the report
    uv run python bench/ingest.py --mails 200 --idle-accounts 7 --idle-timeout 70   # IDLE with 7 accounts

Starts a private Dovecot on 127.0.0.1 (tests/standins/mailservers.py), a PostgreSQL and a Redis (DATABASE_URL /
REDIS_URL when set, a throw-away database on that server; otherwise embedded ones in a temp dir), migrates,
creates an organization and, through the `emailAccountCreate` mutation, an email account on the Dovecot
(security NONE). Then, all measured in this one run:

1. APPENDs N realistic mails over one IMAP connection (200 customers, freight subjects, a third of them
   replies with In-Reply-To/References to an earlier mail, a tenth with a small PDF): appends/s.
2. The raw floor: `imap.fetch_since` over the whole mailbox (every page, bytes only): mails/s.
3. Banxway: `poll_account` importing the whole backlog (parse, contacts, threads, messages, events): mails/s,
   the ratio to the floor, SQL statements per mail, the rate of its first and last pages, and the threads,
   contacts and attachments it created against what the generated mails call for.
4. The IDLE delay: first the server's own (a plain imapclient IDLE on another folder: Dovecot holds change
   notifications back ~0.5 s), then `watch_mailboxes` running with an `on_mail` that calls `poll_account`
   (and the event sweeper, as `banxway serve` runs it), a subscriber on the organization's event channel, one
   mail APPENDed K times: the time from the APPEND's reply to its MESSAGE_ADDED event, p50 and max (target
   < 2 s). Also counted: IMAP logins, IDLE waits that idle.py abandoned, polls it cancelled. With
   --idle-accounts N, N-1 more accounts (empty mailboxes) are watched at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import event, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway import events  # noqa: E402
from banxway.app import build_state, create_app, run_event_maintenance  # noqa: E402
from banxway.db.models import Attachment, Contact, EmailAccount, EmailQuarantine, Event, Message, Thread  # noqa: E402
from banxway.db.session import system_session  # noqa: E402
from banxway.integrations.email import imap  # noqa: E402
from banxway.logs import configure_logging  # noqa: E402
from banxway.resolvers.email_ingest import poll_account  # noqa: E402
from banxway.resolvers.mailboxes import imap_config  # noqa: E402
from banxway.resolvers.users import organization_create  # noqa: E402
from banxway.secrets import SecretBox  # noqa: E402
from banxway.settings import Settings  # noqa: E402
from banxway.tasks.idle import IDLE_SECONDS, REFRESH_SECONDS, watch_mailboxes  # noqa: E402
from bench.services import database_and_redis  # noqa: E402
from tests.inbox_helpers import system_context  # noqa: E402
from tests.standins.mailservers import DovecotServer, find_dovecot, make_certs, run_dovecot  # noqa: E402

console = Console(soft_wrap=True)
notes = Console(stderr=True, soft_wrap=True)
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "bench-password-0123"
ORG_SLUG = "bench-ingest"
ADMIN_EMAIL = "admin@bench-ingest.test"
MAILBOX = "ops@bench-ingest.test"
TARGET_IDLE_S = 2.0
CUSTOMERS = 200

# -- realistic mail ------------------------------------------------------------------------

_FIRST = ["Anna", "Ben", "Chen", "Dara", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kavya", "Luca"]
_LAST = ["Meyer", "Okafor", "Wang", "Silva", "Kowalski", "Nguyen", "Larsen", "Haddad", "Rossi", "Tanaka"]
_COMPANY = ["Ocean", "Nordic", "Pacific", "Atlas", "Delta", "Summit", "Harbor", "Orient", "Baltic", "Sahara"]
_KIND = ["Trading", "Imports", "Textiles", "Machinery", "Foods", "Electronics", "Chemicals", "Furniture"]
_PORTS = ["Shanghai", "Ningbo", "Singapore", "Rotterdam", "Hamburg", "Antwerp", "Jebel Ali", "Nhava Sheva", "Santos"]
_SUBJECTS = [
    "Booking request {ref}: {n}x40HC {a} to {b}",
    "Rate enquiry {a} - {b}, {n} containers",
    "Shipping instructions for {ref}",
    "ETA update needed for {ref}",
    "Draft B/L {ref} for approval",
    "Customs documents for {ref}",
    "Invoice {ref} - query on THC charges",
    "Container release {ref} at {b}",
    "Delay notice: vessel for {ref} rolled over",
    "Pre-alert {ref} {a} / {b}",
]
_SENTENCES = [
    "Please confirm the booking and send us the vessel schedule at your earliest convenience.",
    "The cargo will be ready for pick-up at our warehouse on Monday morning.",
    "Kindly advise the cut-off times for documents and VGM.",
    "We need the container to be released before the free time expires on Friday.",
    "Attached you will find the commercial invoice and the packing list.",
    "Could you check why the THC on the last invoice differs from the quotation?",
    "The consignee asks for an updated ETA at the port of discharge.",
    "Please make sure the seal numbers on the draft B/L match the loading report.",
    "Our customs broker still needs the certificate of origin and the HS codes.",
    "Let us know if a transhipment via Singapore would shorten the transit time.",
    "Weight is 18,400 kg gross, 62 cbm, 1,240 cartons on 24 pallets.",
    "We would like to book insurance for 110% of the CIF value.",
]


def _pdf(rng: random.Random, ref: str) -> bytes:
    """A small valid one-page PDF whose text (and so its sha256) differs per mail."""
    lines = [f"Commercial invoice {ref}", f"Amount USD {rng.randint(1_000, 90_000)}.{rng.randint(0, 99):02d}"]
    lines += [rng.choice(_SENTENCES) for _ in range(12)]
    text = " ".join(f"({line.replace('(', '[').replace(')', ']')}) Tj T*" for line in lines)
    stream = f"BT /F1 10 Tf 14 TL 50 780 Td {text} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


class MailFactory:
    """Deterministic mails: who sent what, and what Banxway should make of them."""

    def __init__(self, seed: int, size_kb: float) -> None:
        self.rng = random.Random(seed)
        self.size = int(size_kb * 1024)
        self.customers = []
        for i in range(CUSTOMERS):
            company = f"{self.rng.choice(_COMPANY)} {self.rng.choice(_KIND)} {i}"
            domain = re.sub(r"[^a-z0-9]+", "-", company.lower()) + ".example"
            first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
            self.customers.append((f"{first} {last}", f"{first.lower()}.{last.lower()}@{domain}", company))
        self.sent: list[tuple[str, str, int]] = []  # (message-id, subject, customer) of each mail made
        self.senders: set[int] = set()
        self.replies = 0
        self.attachments = 0
        self.start = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)

    def _body(self, target: int) -> str:
        lines = ["Dear team,", ""]
        while sum(len(line) + 2 for line in lines) < target:
            lines.append(" ".join(self.rng.choice(_SENTENCES) for _ in range(self.rng.randint(2, 4))))
            if self.rng.random() < 0.3:
                lines.append("")
        return "\n".join(lines)

    def make(self, *, reply_share: float = 0.33, attach_share: float = 0.1, tag: str = "") -> bytes:
        rng = self.rng
        index = len(self.sent)
        reply_to = None
        if self.sent and rng.random() < reply_share:
            reply_to = rng.randrange(len(self.sent))
            customer = self.sent[reply_to][2]
        else:
            customer = rng.randrange(CUSTOMERS)
        name, address, company = self.customers[customer]
        ref = f"{rng.choice(['SHA', 'NGB', 'SIN', 'RTM'])}{rng.randint(100_000, 999_999)}"
        if reply_to is None:
            a, b = rng.sample(_PORTS, 2)
            subject = rng.choice(_SUBJECTS).format(ref=ref, n=rng.randint(1, 12), a=a, b=b) + tag
        else:
            subject = "Re: " + self.sent[reply_to][1].removeprefix("Re: ")
        message_id = f"<{uuid.UUID(int=rng.getrandbits(128))}@{address.split('@')[1]}>"
        message = EmailMessage(policy=SMTP)
        message["From"] = f"{name} <{address}>"
        message["To"] = f"Operations <{MAILBOX}>"
        message["Subject"] = subject
        message["Date"] = format_datetime(self.start + dt.timedelta(minutes=3 * index))
        message["Message-ID"] = message_id
        body = self._body(max(200, self.size - 900))
        if reply_to is not None:
            parent = self.sent[reply_to][0]
            message["In-Reply-To"] = parent
            message["References"] = parent
            self.replies += 1
            body = (
                body[: max(200, len(body) // 2)]
                + "\n\nOn Monday, Operations wrote:\n> "
                + "\n> ".join(body[len(body) // 2 :].splitlines())
            )
        message.set_content(f"{body}\n\nBest regards,\n{name}\n{company}\n")
        if rng.random() < attach_share:
            message.add_attachment(_pdf(rng, ref), maintype="application", subtype="pdf", filename=f"{ref}.pdf")
            self.attachments += 1
        self.sent.append((message_id, subject, customer))
        self.senders.add(customer)
        return message.as_bytes()

    @property
    def expected_threads(self) -> int:
        return len(self.sent) - self.replies


# -- services ------------------------------------------------------------------------------


async def create_accounts(
    settings: Settings, state: Any, dovecot: DovecotServer, extra: int
) -> tuple[uuid.UUID, uuid.UUID]:
    """An organization (as the CLI makes one) and its email account on the Dovecot (through the GraphQL
    mutation), plus ``extra`` accounts on empty mailboxes of other Dovecot users; (organization, account)."""
    async with system_session(state.sessionmaker) as session:
        organization, _ = await organization_create(
            session, name="Bench Ingest", slug=ORG_SLUG, admin_email=ADMIN_EMAIL, admin_password=PASSWORD
        )
    app = create_app(settings, state=state)

    async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        await app({**scope, "state": {"app": state}}, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bench") as client:

        async def gql(query: str, variables: dict[str, Any], token: str | None = None) -> dict[str, Any]:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
            data = response.json()
            if response.status_code != 200 or data.get("errors"):
                raise RuntimeError(f"GraphQL failed: {response.text[:500]}")
            return data["data"]

        login = await gql(
            "mutation($input: AuthLoginInput!) { authLogin(input: $input) { accessToken } }",
            {"input": {"email": ADMIN_EMAIL, "password": PASSWORD}},
        )
        token = login["authLogin"]["accessToken"]
        mailboxes = [(MAILBOX, dovecot.user, dovecot.password)]
        for index in range(1, extra + 1):
            dovecot.add_user(f"idle{index}", f"secret-idle{index}")
            mailboxes.append((f"ops{index}@bench-ingest.test", f"idle{index}", f"secret-idle{index}"))
        for address, user, password in mailboxes:
            created = await gql(
                "mutation($input: EmailAccountCreateInput!) { emailAccountCreate(input: $input) "
                "{ emailAccount { id } userErrors { field message } } }",
                {
                    "input": {
                        "name": f"Operations ({user})",
                        "email": address,
                        "imapHost": dovecot.host,
                        "imapPort": dovecot.port,
                        "imapSecurity": "NONE",
                        "imapUsername": user,
                        "imapPassword": password,
                        "smtpHost": dovecot.host,
                        "smtpPort": 25,
                        "smtpSecurity": "NONE",
                    }
                },
                token,
            )
            payload = created["emailAccountCreate"]
            if payload["userErrors"] or not payload["emailAccount"]:
                raise RuntimeError(f"emailAccountCreate failed: {payload['userErrors']}")
    async with system_session(state.sessionmaker) as session:
        account_id = await session.scalar(
            select(EmailAccount.id).where(
                EmailAccount.organization_id == organization.id, EmailAccount.email == MAILBOX
            )
        )
    return organization.id, account_id


async def counts(state: Any, organization_id: uuid.UUID) -> dict[str, int]:
    async with system_session(state.sessionmaker) as session:
        result = {}
        for key, model in (
            ("threads", Thread),
            ("contacts", Contact),
            ("messages", Message),
            ("attachments", Attachment),
            ("quarantine_rows", EmailQuarantine),
        ):
            result[key] = await session.scalar(
                select(func.count()).select_from(model).where(model.organization_id == organization_id)
            )
    return result


async def page_rates(state: Any, organization_id: uuid.UUID) -> tuple[float | None, float | None]:
    """mails/s over the first and the last tenth of poll_account's pages. A page is one transaction, and its
    MESSAGE_ADDED events' created_at is that transaction's start (now()), so consecutive timestamps bound each page."""
    async with system_session(state.sessionmaker) as session:
        rows = (
            await session.execute(
                select(Event.created_at, func.count())
                .where(Event.organization_id == organization_id, Event.type == "MESSAGE_ADDED")
                .group_by(Event.created_at)
                .order_by(Event.created_at)
            )
        ).all()
    if len(rows) < 3:
        return None, None
    tenth = max(1, (len(rows) - 1) // 10)

    def rate(pages: range) -> float:
        seconds = (rows[pages.stop][0] - rows[pages.start][0]).total_seconds()
        return round(sum(rows[i][1] for i in pages) / seconds, 1) if seconds > 0 else float("nan")

    return rate(range(0, tenth)), rate(range(len(rows) - 1 - tenth, len(rows) - 1))


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _logins(dovecot: DovecotServer) -> int:
    return sum(1 for line in dovecot.log().splitlines() if "imap-login: Info: Login: user=" in line)


def _imap_sessions(dovecot: DovecotServer) -> int | None:
    """Logged-in IMAP sessions now: Dovecot runs one `imap` process per session (Linux /proc only)."""
    try:
        master = int((dovecot.root / "run" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    sessions = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            if name == "imap" and int(fields[1].split()[2]) == master:  # pgrp: the group the master leads
                sessions += 1
    return sessions


def raw_idle_floor(dovecot: DovecotServer, count: int, gap: float, timeout: float) -> list[float]:
    """Plain imapclient: one connection IDLEs on a folder, another APPENDs to it; seconds from the APPEND's
    reply to the EXISTS. What the server itself adds (Dovecot batches change notifications)."""
    folder = "IdleFloor"
    dovecot.create_folder(folder)
    delays = []
    with dovecot.client() as watcher, dovecot.client() as sender:
        watcher.select_folder(folder, readonly=True)
        for index in range(count):
            watcher.idle()
            time.sleep(gap)
            sender.append(folder, f"From: floor@bench.example\r\nSubject: floor {index}\r\n\r\nhi\r\n".encode())
            appended = time.perf_counter()
            while (remaining := appended + timeout - time.perf_counter()) > 0:
                if any(len(r) >= 2 and r[1] == b"EXISTS" for r in watcher.idle_check(timeout=remaining)):
                    delays.append(time.perf_counter() - appended)
                    break
            watcher.idle_done()
    return delays


# -- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"mails": args.mails, "size_kb": args.size_kb, "cores": os.cpu_count()}
    temp = Path(tempfile.mkdtemp(prefix="banxway-bench-ingest-"))
    appender = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bench-append")
    loop = asyncio.get_running_loop()
    try:
        certs = make_certs(temp / "certs")
        with run_dovecot(certs) as dovecot:
            async with database_and_redis(temp, "ingest", notes.print) as (url, redis_url):
                settings = Settings(
                    database_url=url,
                    redis_url=redis_url,
                    data_dir=temp / "data",
                    secret_key=SECRET,
                    env="development",
                    log_level="WARNING",
                )
                configure_logging(settings)
                state = await build_state(settings)
                try:
                    await _measure(args, result, settings, state, dovecot, loop, appender)
                finally:
                    dovecot.stop()  # ends the IDLE sessions that abandoned watcher threads still hold
                    await state.aclose()
    finally:
        appender.shutdown(wait=True)
        shutil.rmtree(temp, ignore_errors=True)
    return result


async def _measure(
    args: argparse.Namespace,
    result: dict[str, Any],
    settings: Settings,
    state: Any,
    dovecot: DovecotServer,
    loop: asyncio.AbstractEventLoop,
    appender: concurrent.futures.Executor,
) -> None:
    organization_id, account_id = await create_accounts(settings, state, dovecot, args.idle_accounts - 1)

    # 1. APPEND the backlog over one connection
    factory = MailFactory(args.seed, args.size_kb)
    raws = [factory.make() for _ in range(args.mails)]
    result["mail_bytes_avg"] = round(sum(map(len, raws)) / len(raws))
    result["replies"] = factory.replies
    result["with_pdf"] = factory.attachments
    result["distinct_senders"] = len(factory.senders)
    notes.print(f"appending {args.mails:,} mails…")
    started = time.perf_counter()
    uids = await loop.run_in_executor(appender, dovecot.append_many, None, raws)
    seconds = time.perf_counter() - started
    assert len(uids) == args.mails
    result["append_s"] = round(seconds, 3)
    result["appends_per_s"] = round(args.mails / seconds, 1)

    # 2. the raw floor: every page of fetch_since, as poll_account reads them
    async with system_session(state.sessionmaker) as session:
        account = await session.get(EmailAccount, account_id)
    config = imap_config(account, SecretBox(state.secret_key), settings)

    def fetch_all() -> tuple[int, int, int]:
        mails = pages = size = 0
        for page in imap.fetch_since(
            config,
            uidvalidity=None,
            last_uid=0,
            page_size=settings.email_page_size,
            max_size=settings.email_max_bytes,
        ):
            pages += 1
            mails += len(page.mails)
            size += sum(len(mail.raw) for mail in page.mails)
        return mails, pages, size

    notes.print("raw fetch_since…")
    started = time.perf_counter()
    raw_mails, raw_pages, raw_bytes = await asyncio.to_thread(fetch_all)
    raw_seconds = time.perf_counter() - started
    result["raw_mails"] = raw_mails
    result["raw_pages"] = raw_pages
    result["raw_s"] = round(raw_seconds, 3)
    result["raw_mails_per_s"] = round(raw_mails / raw_seconds, 1)
    result["raw_mib_per_s"] = round(raw_bytes / 2**20 / raw_seconds, 1)

    # 3. banxway: poll_account over the whole backlog
    statements = 0

    def count_statement(*_: Any) -> None:
        nonlocal statements
        statements += 1

    notes.print("poll_account over the backlog…")
    event.listen(state.engine.sync_engine, "before_cursor_execute", count_statement)
    started = time.perf_counter()
    polled = await poll_account(system_context(state, settings), account_id)
    poll_seconds = time.perf_counter() - started
    event.remove(state.engine.sync_engine, "before_cursor_execute", count_statement)
    stored = await counts(state, organization_id)
    first_rate, last_rate = await page_rates(state, organization_id)
    result.update(
        {
            "poll_s": round(poll_seconds, 3),
            "poll_first_tenth_mails_per_s": first_rate,
            "poll_last_tenth_mails_per_s": last_rate,
            "poll_mails_per_s": round(args.mails / poll_seconds, 1),
            "ratio_banxway_to_raw": round((args.mails / poll_seconds) / (raw_mails / raw_seconds), 3),
            "fetched": polled.fetched,
            "imported": polled.imported,
            "duplicates": polled.duplicates,
            "quarantined": polled.quarantined,
            "sql_statements": statements,
            "sql_per_mail": round(statements / max(polled.fetched, 1), 1),
            "threads_created": stored["threads"],
            "threads_expected": factory.expected_threads,
            "contacts_created": stored["contacts"],
            "contacts_expected": len(factory.senders),
            "attachments_stored": stored["attachments"],
            "import_ok": polled.imported == args.mails and polled.quarantined == 0 and stored["messages"] == args.mails,
        }
    )

    # 4. IDLE: the server's own notification delay, then APPEND one mail at a time and time MESSAGE_ADDED
    notes.print("raw IDLE floor…")
    floor = await loop.run_in_executor(
        appender, raw_idle_floor, dovecot, args.idle_mails, min(args.idle_gap, 0.5), args.idle_timeout
    )
    result["raw_idle_p50_ms"] = round(_percentile(floor, 50) * 1000, 1) if floor else None
    result["raw_idle_max_ms"] = round(max(floor) * 1000, 1) if floor else None
    result["raw_idle_missed"] = args.idle_mails - len(floor)
    await _idle_delay(args, result, settings, state, dovecot, loop, appender, factory, organization_id, account_id)


async def _idle_delay(
    args: argparse.Namespace,
    result: dict[str, Any],
    settings: Settings,
    state: Any,
    dovecot: DovecotServer,
    loop: asyncio.AbstractEventLoop,
    appender: concurrent.futures.Executor,
    factory: MailFactory,
    organization_id: uuid.UUID,
    account_id: uuid.UUID,
) -> None:
    polls: list[float] = []
    poll_errors: list[str] = []
    tally: collections.Counter = collections.Counter()
    measuring = True

    async def on_mail(changed: uuid.UUID) -> None:
        started = time.perf_counter()
        try:
            await poll_account(system_context(state, settings), changed)
        except asyncio.CancelledError:
            tally["polls_cancelled"] += measuring
            raise
        except Exception as exc:
            poll_errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            polls.append(time.perf_counter() - started)

    # Count the IDLE waits idle.py starts, and those it abandons (cancelled: the thread IDLEs on regardless).
    original_wait = imap.await_for_mail

    async def counted_wait(*args: Any, **kwargs: Any) -> bool:
        tally["idle_waits"] += 1
        try:
            return await original_wait(*args, **kwargs)
        except asyncio.CancelledError:
            tally["idle_waits_abandoned"] += measuring
            raise

    # MESSAGE_ADDED → the Message-ID of the stored mail → its arrival time; read in a task of its own, so that
    # an event is timed when it arrives, also one that comes after its mail's wait timed out.
    appended: dict[str, float] = {}
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}
    unknown = 0

    async def consume(subscriber: Any) -> None:
        nonlocal unknown
        async for message in subscriber:
            now = time.perf_counter()
            if not isinstance(message, str):
                continue
            data = json.loads(message)
            if data.get("type") != "MESSAGE_ADDED":
                continue
            async with system_session(state.sessionmaker) as session:
                key = await session.scalar(
                    select(Message.provider_message_id).where(Message.id == uuid.UUID(data["payload"]["message_id"]))
                )
            key = (key or "").strip("<>")
            if key in appended and key not in arrived:
                arrived[key] = now
                waiting.pop(key, asyncio.Event()).set()
            else:
                unknown += 1

    threads_before = threading.active_count()
    logins_before = _logins(dovecot)
    notes.print(f"IDLE: {args.idle_mails} mails, one at a time, {args.idle_gap:g} s apart…")
    async with state.broadcast.subscribe(events.channel(organization_id)) as subscriber:
        imap.await_for_mail = counted_wait  # type: ignore[assignment]
        consumer = asyncio.create_task(consume(subscriber))
        # as `banxway serve` runs them: the watcher, and the sweeper that publishes what a cancelled relay left
        maintenance = asyncio.create_task(run_event_maintenance(state))
        watcher = asyncio.create_task(watch_mailboxes(system_context(state, settings), on_mail))
        phase_started = time.perf_counter()
        try:
            await asyncio.sleep(args.idle_settle)  # the watcher logs in and starts IDLE
            with dovecot.client() as client:  # one connection for the APPENDs, kept open
                for index in range(args.idle_mails):
                    raw = factory.make(reply_share=0.0, attach_share=0.0, tag=f" (idle {index + 1})")
                    key = factory.sent[-1][0].strip("<>")
                    waiting[key] = done = asyncio.Event()

                    def append(raw: bytes = raw) -> float:
                        client.append("INBOX", raw)
                        return time.perf_counter()

                    appended[key] = await loop.run_in_executor(appender, append)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), args.idle_timeout)
                    if key in arrived:
                        notes.print(f"  mail {index + 1}: {(arrived[key] - appended[key]) * 1000:,.0f} ms")
                    else:
                        notes.print(f"  mail {index + 1}: no MESSAGE_ADDED within {args.idle_timeout:g} s")
                    await asyncio.sleep(args.idle_gap)
        finally:
            phase_seconds = time.perf_counter() - phase_started
            threads_during = threading.active_count()
            sessions = _imap_sessions(dovecot)
            measuring = False
            for task in (watcher, maintenance, consumer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            imap.await_for_mail = original_wait  # type: ignore[assignment]
    stored = await counts(state, organization_id)
    logins = _logins(dovecot) - logins_before
    delays = [arrived[key] - appended[key] for key in appended if key in arrived]
    on_time = [delay for delay in delays if delay <= args.idle_timeout]
    result.update(
        {
            "idle_mails": args.idle_mails,
            "idle_arrived": len(delays),
            "idle_arrived_late": len(delays) - len(on_time),
            "idle_never": len(appended) - len(delays),
            "idle_timeout_s": args.idle_timeout,
            "idle_other_message_events": unknown,
            "idle_p50_ms": round(_percentile(delays, 50) * 1000, 1) if delays else None,
            "idle_max_ms": round(max(delays) * 1000, 1) if delays else None,
            "idle_min_ms": round(min(delays) * 1000, 1) if delays else None,
            "idle_poll_p50_ms": round(_percentile(polls, 50) * 1000, 1) if polls else None,
            "idle_poll_max_ms": round(max(polls) * 1000, 1) if polls else None,
            "idle_polls": len(polls),
            "idle_poll_errors": poll_errors[:3],
            "idle_phase_s": round(phase_seconds, 1),
            "idle_imap_logins": logins,
            "idle_extra_threads": threads_during - threads_before,
            "idle_imap_sessions_at_end": sessions,
            "idle_accounts": args.idle_accounts,
            "idle_waits": tally["idle_waits"],
            "idle_waits_abandoned": tally["idle_waits_abandoned"],
            "idle_polls_cancelled": tally["polls_cancelled"],
            "idle_messages_total": stored["messages"],
            "idle_all_stored": stored["messages"] == args.mails + args.idle_mails,
            "target_idle_met": len(delays) == args.idle_mails and max(delays) < TARGET_IDLE_S,
        }
    )


# -- report --------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} ms"

    console.print(
        f"email ingest: {r['mails']:,} mails, {r['mail_bytes_avg'] / 1024:.1f} KiB average, "
        f"{r['distinct_senders']} senders, {r['replies']:,} replies, {r['with_pdf']:,} with a PDF"
    )
    console.print(f"APPEND (one IMAP connection): {r['appends_per_s']:,.0f} appends/s ({r['append_s']:.2f} s)")
    console.print(
        f"raw fetch_since (floor): {r['raw_mails_per_s']:,.0f} mails/s, {r['raw_mib_per_s']:.1f} MiB/s "
        f"({r['raw_mails']:,} mails in {r['raw_pages']} pages, {r['raw_s']:.2f} s)"
    )
    console.print(f"banxway poll_account: {r['poll_mails_per_s']:,.0f} mails/s ({r['poll_s']:.2f} s)")
    if r["poll_first_tenth_mails_per_s"] is not None:
        console.print(
            f"poll_account pages: first tenth {r['poll_first_tenth_mails_per_s']:,.0f} mails/s, "
            f"last tenth {r['poll_last_tenth_mails_per_s']:,.0f} mails/s"
        )
    console.print(f"ratio banxway / raw: {r['ratio_banxway_to_raw']:.3f}")
    console.print(f"SQL statements per mail: {r['sql_per_mail']:.1f} ({r['sql_statements']:,} in all)")
    console.print(
        f"imported: {r['imported']:,} / {r['mails']:,} (duplicates {r['duplicates']}, quarantined {r['quarantined']})"
        + ("" if r["import_ok"] else " — NOT all imported")
    )
    console.print(f"threads created: {r['threads_created']:,} (expected {r['threads_expected']:,})")
    console.print(f"contacts created: {r['contacts_created']:,} (expected {r['contacts_expected']:,})")
    console.print(f"attachments stored: {r['attachments_stored']:,} (expected {r['with_pdf']:,})")
    console.print(
        f"raw IDLE floor (APPEND reply → EXISTS, plain imapclient): p50 {ms(r['raw_idle_p50_ms'])}, "
        f"max {ms(r['raw_idle_max_ms'])}" + (f", {r['raw_idle_missed']} missed" if r["raw_idle_missed"] else "")
    )
    missing = f"{r['idle_arrived']} / {r['idle_mails']} arrived"
    if r["idle_arrived_late"]:
        missing += f", {r['idle_arrived_late']} of them after {r['idle_timeout_s']:g} s"
    console.print(
        f"IDLE delay (APPEND reply → MESSAGE_ADDED): p50 {ms(r['idle_p50_ms'])}, max {ms(r['idle_max_ms'])}, "
        f"min {ms(r['idle_min_ms'])}; {missing}"
    )
    console.print(
        f"IDLE phase: {r['idle_phase_s']:.0f} s, {r['idle_polls']} polls (p50 {ms(r['idle_poll_p50_ms'])}, max {ms(r['idle_poll_max_ms'])}), "
        f"{r['idle_imap_logins']} IMAP logins, {r['idle_extra_threads']} extra threads and "
        f"{r['idle_imap_sessions_at_end']} IMAP sessions open at the end ({r['idle_accounts']} watched)"
        + (f", poll errors: {r['idle_poll_errors']}" if r["idle_poll_errors"] else "")
    )
    console.print(
        f"IDLE waits: {r['idle_waits']} started, {r['idle_waits_abandoned']} abandoned by a watcher restart "
        f"(their threads IDLE on, up to {IDLE_SECONDS:g} s); polls cancelled mid-way: {r['idle_polls_cancelled']}"
    )
    console.print(f"cores: {r['cores']}; Dovecot, PostgreSQL, Redis and this process share them")
    console.print(
        f"target: IDLE delay < {TARGET_IDLE_S:g} s for every mail — " + ("met" if r["target_idle_met"] else "not met")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=5_000, help="mails in the backlog (default 5000)")
    parser.add_argument("--size-kb", type=float, default=4.0, help="approximate size of a mail (default 4 KiB)")
    parser.add_argument("--idle-mails", type=int, default=10, help="mails sent one at a time under IDLE (default 10)")
    parser.add_argument(
        "--idle-gap",
        type=float,
        default=2.0,
        help=f"seconds between them (default 2; the phase should outlast the {REFRESH_SECONDS:g} s account refresh)",
    )
    parser.add_argument(
        "--idle-accounts",
        type=int,
        default=1,
        help="email accounts watched with IDLE at once (default 1; the others have empty mailboxes)",
    )
    parser.add_argument("--idle-settle", type=float, default=1.0, help="seconds for the watcher to start IDLE")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds to wait for each event")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the report")
    args = parser.parse_args()
    if args.mails < 1 or args.idle_mails < 1 or args.idle_accounts < 1 or args.size_kb <= 0:
        parser.error("--mails, --idle-mails, --idle-accounts and --size-kb must be positive")
    if find_dovecot() is None:
        parser.exit(2, "dovecot is not installed: apt-get install dovecot-imapd\n")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        report(result)


if __name__ == "__main__":
    main()
