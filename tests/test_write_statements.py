"""SQL statements per item on the write paths, pinned: an inbound WhatsApp webhook (verify, store, relay its events)
and a WhatsApp `messageSend` (store, relay). Before the write-path work: 19 and 18; the email ingest's are pinned in
tests/test_ingest_statements.py."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from sqlalchemy import event, select

from banxway.context import SystemContext
from banxway.db.models import Event
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers.delivery import deliver
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CUSTOMER_PHONE,
    WHATSAPP_NUMBER,
    configure_exotel,
    exotel_inbound,
    post_json,
    send,
    sent_ok,
    url_of,
)
from tests.standins.providers import StandIn, exotel_whatsapp_incoming

SWEEP = "SWEEP events"


def _counting(state: AppState) -> tuple[list[str], Any]:
    """The statements sent from now until `stop()`, as "VERB table"; those of the AUTOCOMMIT reads engine as "reads
    VERB table". BEGIN, COMMIT and ROLLBACK are not among them (asyncpg sends them itself)."""
    seen: list[str] = []

    def counter(prefix: str) -> Any:
        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("SELECT events.organization_id, events.id \nFROM events"):
                seen.append(SWEEP)  # the sweeper's look for stuck events (banxway.events.sweep), now and then
                return
            verb = statement.split(None, 1)[0].upper()
            table = re.search(r"\b(?:INTO|UPDATE|FROM)\s+(\w+)", statement)
            seen.append(f"{prefix}{verb} {table.group(1) if table else statement[:60]}".strip())

        return count

    listeners = [(state.engine, counter("")), (state.reads, counter("reads "))]
    for engine, count in listeners:
        event.listen(engine.sync_engine, "before_cursor_execute", count)

    def stop() -> None:
        for engine, count in listeners:
            event.remove(engine.sync_engine, "before_cursor_execute", count)

    return seen, stop


async def _webhooks_counted(inbox: Inbox, provider: StandIn, state: AppState, senders: list[str]) -> list[str]:
    """An Exotel WhatsApp number that CUSTOMER_PHONE wrote to once (not counted), then one webhook from each of
    `senders`, one after the other: the statements they cost."""
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    first = exotel_whatsapp_incoming(sid="in0", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Hello")
    assert (await post_json(inbox.api.http, hook, first)).status_code == 200
    seen, stop = _counting(state)
    try:
        for n, sender in enumerate(senders, 1):
            body = exotel_whatsapp_incoming(sid=f"in{n}", from_=sender, to=WHATSAPP_NUMBER, body=f"Again {n}")
            assert (await post_json(inbox.api.http, hook, body)).status_code == 200
    finally:
        stop()
    return seen


async def test_an_inbound_webhook_and_a_message_send_cost_a_pinned_number_of_statements(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    # given a customer who wrote once on WhatsApp (their contact and thread exist), when they write five more times
    seen = await _webhooks_counted(inbox, provider, state, [CUSTOMER_PHONE] * 5)
    # then each webhook costs 13 statements: the integration, two advisory locks (the provider id, the contact's
    # thread), the message by provider id, the contact, the thread (locked), the SLA policies, three writes, and
    # the relay: its order lock, one statement numbering the events, one asking what their organization needs
    kinds = Counter(seen)
    assert len(seen) - kinds[SWEEP] == 5 * 13, kinds
    assert kinds["SELECT contact_identities"] == 0 and kinds["SELECT threads"] == 5, kinds
    assert kinds["SELECT workflows"] == 5 and kinds["SELECT webhook_endpoints"] == 0, kinds  # one question
    # when an agent replies five times on the thread
    threads = await inbox.gql("{ threads(first: 5) { edges { node { id } } } }")
    thread_id = threads["data"]["threads"]["edges"][0]["node"]["id"]
    await send(inbox, thread_id, "WHATSAPP", "warm")
    seen, stop = _counting(state)
    try:
        for n in range(5):
            sent = await send(inbox, thread_id, "WHATSAPP", f"Reply {n}")
            assert sent["userErrors"] == [], sent
    finally:
        stop()
    # then each messageSend costs 12 statements: the viewer, the channel's readiness as one EXISTS, the thread
    # locked, the recipient, the WhatsApp window, the number it leaves from in one statement, three writes and the
    # relay's three
    kinds = Counter(seen)
    assert len(seen) - kinds[SWEEP] == 5 * 12, kinds
    # the messages read: the window alone (the number last written to is read within the route's statement)
    assert kinds["SELECT messages"] == 5 and kinds["SELECT phone_numbers"] == 2 * 5, kinds


async def test_a_webhook_from_a_new_customer_costs_a_pinned_number_of_statements(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    # given a WhatsApp number that a customer wrote to before, when five customers nobody knows write
    seen = await _webhooks_counted(inbox, provider, state, [f"+91982000{n:04d}" for n in range(1, 6)])
    # then each costs 13 statements (20 before): the integration, the provider id's lock, the message by provider id,
    # the identity looked up, then the contact and its identity created in one statement, the thread's number, the
    # SLA policies, one multi-row INSERT per table (events, thread, message), and the relay (order lock, numbering,
    # what the organization needs). No savepoint, no thread lookup for a contact nobody else sees yet, no UPDATE of
    # the thread just inserted
    kinds = Counter(seen)
    assert len(seen) - kinds[SWEEP] == 5 * 13, kinds
    # the integration by its webhook token on the reads engine (AUTOCOMMIT: no BEGIN and ROLLBACK around it)
    assert kinds["reads SELECT integrations"] == 5 and kinds["SELECT integrations"] == 0, kinds
    assert kinds["INSERT events"] == 5 and kinds["SELECT threads"] == 0 and kinds["UPDATE threads"] == 0, kinds
    assert not any(kind.startswith("SAVEPOINT") for kind in seen), kinds


async def test_concurrent_relays_of_one_organization_go_out_together(inbox: Inbox, state: AppState) -> None:
    # given 16 customers created at once (16 transactions committing while earlier ones are being relayed)
    seen, stop = _counting(state)
    try:
        created = await asyncio.gather(*(inbox.customer(name=f"Customer {n}") for n in range(16)))
    finally:
        stop()
    # then their events were dispatched in fewer numbering statements than transactions (group relay)
    numbering = [kind for kind in seen if kind == "WITH events"]
    assert 1 <= len(numbering) < 16, Counter(seen)
    # and every event of theirs is dispatched, each with its own number (the order is the order of dispatch: two
    # transactions may commit in the other order than their events' ids, before and after grouping alike)
    async with system_session(state.sessionmaker) as session:
        rows = (
            await session.execute(
                select(Event.id, Event.seq, Event.dispatched_at)
                .where(Event.type == "CUSTOMER_CREATED")
                .order_by(Event.id)
            )
        ).all()
    assert len(rows) == len(created) == 16
    assert all(dispatched is not None for _, _, dispatched in rows)
    assert len({seq for _, seq, _ in rows}) == 16


async def test_a_delivery_costs_a_pinned_number_of_statements(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    # given three WhatsApp replies queued on a thread whose customer wrote (the 24-hour window is open)
    configured = await configure_exotel(inbox, provider)
    await exotel_inbound(inbox, configured)
    threads = await inbox.gql("{ threads(first: 1) { edges { node { id } } } }")
    thread_id = threads["data"]["threads"]["edges"][0]["node"]["id"]
    queued = [(await sent_ok(inbox, thread_id, "WHATSAPP", f"Update {n}"))["id"] for n in range(4)]
    assert await deliver(SystemContext(state), local_uuid(queued.pop())) == MessageStatus.SENT  # warm
    # when a worker delivers them
    seen, stop = _counting(state)
    try:
        for message_id in queued:
            assert await deliver(SystemContext(state), local_uuid(message_id)) == MessageStatus.SENT
    finally:
        stop()
    # then each send costs 14 statements: the claim (one statement reading the message locked with its headers, its
    # integration and whether it has a file; its status and event) and its relay (the order lock, the numbering,
    # what the organization needs), then the outcome (the message locked again, its status and event, the early
    # statuses under the provider id's lock) and its relay. The claim's events go out before the provider is
    # called, so that a receipt the provider sends at once is numbered after them. Before: 19 (the headers, the
    # integration and the file read one by one, and each UPDATE of a message followed by a SELECT of its headers).
    # Now and then the sweeper looks for stuck events (SWEEP) on the same engine: not counted.
    kinds = Counter(seen)
    assert kinds["WITH events"] == 3 * 2, kinds
    assert (
        kinds["SELECT integrations"] == kinds["reads SELECT integrations"] == 0 and kinds["UPDATE messages"] == 3 * 2
    ), kinds
    assert len(seen) - kinds[SWEEP] == 3 * 14, kinds
    assert len(provider.sent("exotel_whatsapp")) == 4
