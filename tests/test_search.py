"""The inbox search (`threads(filter: {search})`): a thread is found by its subject or reference, a message, a note,
its shipment's reference, container, BL, booking or AWB number, its customer's or contact's name, each word as a
prefix as one types; within the viewer's organization; indexed, and no dearer than the inbox itself."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import event, text, update

from banxway.compiler import COMPILED_HEADER
from banxway.db.models import Note
from banxway.db.session import system_session
from banxway.extraction import container_check_digit
from banxway.schema.ids import local_id
from tests.conftest import Api
from tests.inbox_helpers import Inbox, _foreign
from tests.seed_helpers import NOTE_ADD

SEARCH = """
query($search: String, $status: [ThreadStatus!], $first: Int, $after: String) {
  threads(filter: {search: $search, status: $status}, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { subject } }
  }
}
"""

SHIPMENT_UPDATE = """
mutation($input: ShipmentUpdateInput!) { shipmentUpdate(input: $input) { shipment { id } userErrors { code message } } }
"""
THREAD_RESOLVE = """
mutation($id: ID!) { threadUpdate(input: {id: $id, status: RESOLVED}) { thread { id } userErrors { code message } } }
"""
CUSTOMER_UPDATE = """
mutation($input: CustomerUpdateInput!) { customerUpdate(input: $input) { customer { id } userErrors { code message } } }
"""


def container(owner_serial: str) -> str:
    """A container number with its check digit: `container("MSCU123456")` → MSCU1234565."""
    return f"{owner_serial}{container_check_digit(owner_serial)}"


MSC_BOX = container("MSCU123456")
OTHER_BOX = container("TGHU765432")


async def _search(inbox: Inbox, search: str | None, **variables: Any) -> list[str]:
    """The subjects the search finds, answered by the compiled path and checked against the executor."""
    headers = {"authorization": f"Bearer {inbox.token}"}
    response = await inbox.api.http.post(
        "/graphql", json={"query": SEARCH, "variables": {"search": search, **variables}}, headers=headers
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    assert response.headers.get(COMPILED_HEADER) == "verified"  # both paths ran and agreed
    page = body["data"]["threads"]
    subjects = [edge["node"]["subject"] for edge in page["edges"]]
    assert page["totalCount"] == len(subjects) or page["pageInfo"]["hasNextPage"]
    return sorted(subjects)


async def _shipment_thread(inbox: Inbox, subject: str, reference: str, **fields: Any) -> dict:
    shipment = await inbox.shipment(reference, mode="SEA", **fields)
    return await inbox.thread(subject, shipmentId=shipment["id"])


async def _dataset(inbox: Inbox) -> None:
    """Threads that each match one way, and one that matches none of the searches below."""
    await _shipment_thread(
        inbox,
        "Rates please",
        "SHP-2026-0042",
        containerNumbers=[MSC_BOX, OTHER_BOX],
        blNumber="MAEU-240012345",
        bookingNumber="BKG/88123",
    )
    air = await inbox.shipment("AIR-7", mode="AIR", awbNumber="176-12345675")
    await inbox.thread("Air cargo", shipmentId=air["id"])
    customer = await inbox.customer("Zephyr Textiles", code="ZEPH01")
    await inbox.thread("Invoice copy", customerId=customer["id"])
    contact = await inbox.contact("Oona O'Brien")
    await inbox.thread("Callback", contactId=contact["id"])
    noted = await inbox.thread("Documents")
    await inbox.ok(
        NOTE_ADD, {"input": {"threadId": noted["id"], "body": "Consignee wants a fumigation certificate"}}, "noteAdd"
    )
    await inbox.thread("Where is my container?")
    messaged = await inbox.thread("Question")
    await inbox.send(messaged["id"], "The reefer plugs must be checked at Jebel Ali")
    await inbox.thread("Unrelated")


FINDS = [
    ("container-whole", MSC_BOX, ["Rates please"]),
    ("container-prefix-any-case", "mscu12", ["Rates please"]),
    ("second-container-prefix", "TGHU7654", ["Rates please"]),
    ("bl-as-written", "MAEU-240012345", ["Rates please"]),
    ("bl-without-separator-prefix", "maeu2400", ["Rates please"]),
    ("bl-digits-prefix", "24001", ["Rates please"]),
    ("booking", "BKG/88123", ["Rates please"]),
    ("booking-prefix", "bkg881", ["Rates please"]),
    ("shipment-reference", "SHP-2026-0042", ["Rates please"]),
    ("awb", "176-1234", ["Air cargo"]),
    ("customer-name", "Zephyr", ["Invoice copy"]),
    ("customer-name-prefix-two-words", "zeph text", ["Invoice copy"]),
    ("customer-code", "ZEPH01", ["Invoice copy"]),
    ("contact-name", "o'brien", ["Callback"]),
    ("note-text", "fumigation", ["Documents"]),
    ("note-word-prefix", "fumig cert", ["Documents"]),
    ("subject-word-prefix", "contain", ["Where is my container?"]),
    ("message-body-prefix", "jebel al", ["Question"]),
    ("nothing", "zanzibar", []),
    ("every-word-must-match", "zephyr banana", []),
]


@pytest.mark.parametrize(("name", "search", "expected"), FINDS, ids=[f[0] for f in FINDS])
async def test_search_finds_a_thread_by(inbox: Inbox, name: str, search: str, expected: list[str]) -> None:
    # given
    await _dataset(inbox)
    # when
    subjects = await _search(inbox, search)
    # then
    assert subjects == expected


async def test_a_search_is_counted_and_paginated_on_its_matches(inbox: Inbox) -> None:
    # given three threads with "reefer" and one without
    for n in range(3):
        await inbox.thread(f"Reefer quote {n}")
    await inbox.thread("Dry van quote")
    # when
    first = (await inbox.gql(SEARCH, {"search": "reef", "first": 2}))["data"]["threads"]
    second = await inbox.gql(SEARCH, {"search": "reef", "first": 2, "after": first["pageInfo"]["endCursor"]})
    # then
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    found = [e["node"]["subject"] for e in first["edges"] + second["data"]["threads"]["edges"]]
    assert sorted(found) == ["Reefer quote 0", "Reefer quote 1", "Reefer quote 2"]


async def test_a_search_combines_with_the_other_filters(inbox: Inbox) -> None:
    # given two threads about the same container, one of them resolved
    await _shipment_thread(inbox, "Open one", "SHP-1", containerNumbers=[MSC_BOX])
    resolved = await _shipment_thread(inbox, "Resolved one", "SHP-2", containerNumbers=[MSC_BOX])
    await inbox.ok(THREAD_RESOLVE, {"id": resolved["id"]}, "threadUpdate")
    # when / then
    assert await _search(inbox, "mscu12") == ["Open one", "Resolved one"]
    assert await _search(inbox, "mscu12", status=["RESOLVED"]) == ["Resolved one"]
    assert await _search(inbox, "shp 1", status=["RESOLVED"]) == []


async def test_the_search_follows_changes_to_shipments_customers_and_notes(inbox: Inbox) -> None:
    # given a thread whose shipment and customer know nothing of the words searched for
    customer = await inbox.customer("Acme Imports")
    shipment = await inbox.shipment("SHP-9", mode="SEA", customerId=customer["id"])
    thread = await inbox.thread("Status?", shipmentId=shipment["id"], customerId=customer["id"])
    assert await _search(inbox, "TGHU76") == []
    assert await _search(inbox, "borealis") == []
    # when the shipment gets a container, the customer a new name, and the thread a note
    await inbox.ok(
        SHIPMENT_UPDATE, {"input": {"id": shipment["id"], "containerNumbers": [OTHER_BOX]}}, "shipmentUpdate"
    )
    await inbox.ok(CUSTOMER_UPDATE, {"input": {"id": customer["id"], "name": "Borealis Foods"}}, "customerUpdate")
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Demurrage waiver agreed"}}, "noteAdd")
    # then
    assert await _search(inbox, "TGHU76") == ["Status?"]
    assert await _search(inbox, "borealis") == ["Status?"]
    assert await _search(inbox, "demurr") == ["Status?"]
    assert await _search(inbox, "acme") == []


async def test_a_deleted_note_is_not_found(inbox: Inbox) -> None:
    # given
    thread = await inbox.thread("Documents")
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Fumigation certificate"}}, "noteAdd")
    assert await _search(inbox, "fumigation") == ["Documents"]
    # when the note is deleted (its row stays)
    async with system_session(inbox.api.state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Note).where(Note.thread_id == local_id(thread["id"], "Thread")).values(deleted_at=text("now()"))
        )
    # then
    assert await _search(inbox, "fumigation") == []


async def test_a_search_finds_nothing_of_another_organization(inbox: Inbox) -> None:
    # given two organizations with threads that match the same words every way
    globex = await _foreign(inbox)
    for each in (inbox, globex):
        customer = await each.customer("Zephyr Textiles")
        shipment = await each.shipment("SHP-1", mode="SEA", containerNumbers=[MSC_BOX], customerId=customer["id"])
        thread = await each.thread(f"{each.org.slug} thread", shipmentId=shipment["id"], customerId=customer["id"])
        await each.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "fumigation"}}, "noteAdd")
    # when / then each sees its own thread only, whichever way it is found
    for search in ("mscu12", "zephyr", "fumigation", "thread", "SHP-1"):
        assert await _search(inbox, search) == ["acme thread"], search
        assert await _search(globex, search) == ["globex thread"], search


ODD = [
    ("quotes", "'\"MSCU12", ["Rates please"]),
    ("tsquery-operators", "MSCU12:* & !| (", ["Rates please"]),
    ("a-negation-is-a-word", "!mscu12", ["Rates please"]),
    ("backslashes", "\\MSCU12\\", ["Rates please"]),
    ("sql-ish", "mscu12'; DROP TABLE threads; --", []),
    ("very-long", "MSCU12 " + "x" * 20_000, []),
    ("long-word", "fumigation" + "x" * 500, []),
    ("control-characters", "mscu12\u0007\n\t", ["Rates please"]),  # NUL is refused for every input
    ("many-words", " ".join(["mscu12"] * 200), ["Rates please"]),
    ("unicode", "Zürich 東京 🚢", []),
]


@pytest.mark.parametrize(("name", "search", "expected"), ODD, ids=[f[0] for f in ODD])
async def test_odd_input_is_only_text(inbox: Inbox, name: str, search: str, expected: list[str]) -> None:
    # given
    await _dataset(inbox)
    # when
    subjects = await _search(inbox, search)
    # then
    assert subjects == expected


@pytest.mark.parametrize("search", [None, "", "   ", "&|!:*()", "''", "-", "___"])
async def test_a_search_without_a_word_filters_nothing(inbox: Inbox, search: str | None) -> None:
    # given
    await _dataset(inbox)
    everything = await _search(inbox, None)
    # when
    subjects = await _search(inbox, search)
    # then
    assert len(everything) == 8
    assert subjects == everything


# -- cost: the inbox with a search is no dearer than the inbox, and the search reads its indexes -------------------

INBOX = """
query Inbox($filter: ThreadFilter) {
  threads(first: 50, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id reference subject status priority tags unreadCount lastMessageAt
        customer { id name } contact { id name } shipment { id reference } assignee { id name }
        messages(last: 3) { edges { node { id body direction channel createdAt } } }
      }
    }
  }
}
"""
SEARCH_INDEXES = (
    "ix_threads_search",
    "ix_messages_search",
    "ix_notes_search",
    "ix_shipments_search",
    "ix_customers_search",
    "ix_contacts_search",
)
SEED = [
    """INSERT INTO customers (organization_id, name, code)
       SELECT :org, 'Customer ' || substr(md5('customer' || n), 1, 10), 'C' || n FROM generate_series(1, :n) n""",
    """INSERT INTO contacts (organization_id, name, customer_id)
       SELECT :org, 'Contact ' || substr(md5('contact' || code), 1, 10), id FROM customers WHERE organization_id = :org""",
    """INSERT INTO shipments (organization_id, reference, customer_id, mode, direction, container_numbers, bl_number,
                             booking_number)
       SELECT :org, 'SHP-' || substr(code, 2), id, 'SEA', 'IMPORT', ARRAY['MSCU' || lpad(substr(code, 2), 7, '0')],
              'MAEU-' || lpad(substr(code, 2), 9, '0'), 'BKG/' || lpad(substr(code, 2), 6, '0')
       FROM customers WHERE organization_id = :org""",
    """INSERT INTO threads (organization_id, reference, subject, type, status, priority, primary_channel, customer_id,
                           contact_id, shipment_id, last_activity_at, last_message_at)
       SELECT c.organization_id, 'BX-2026-' || lpad(substr(c.code, 2), 6, '0'),
              'Thread about ' || substr(md5('subject' || c.code), 1, 10), 'BOOKING',
              (ARRAY['NEW', 'OPEN', 'OPEN', 'PENDING', 'RESOLVED', 'CLOSED', 'ARCHIVED'])[
                  substr(c.code, 2)::int % 7 + 1]::thread_status, 'NORMAL', 'EMAIL',
              c.id, ct.id, s.id, now() - substr(c.code, 2)::int * interval '1 minute',
              now() - substr(c.code, 2)::int * interval '1 minute'
       FROM customers c JOIN contacts ct ON ct.customer_id = c.id JOIN shipments s ON s.customer_id = c.id
       WHERE c.organization_id = :org""",
    """INSERT INTO messages (organization_id, thread_id, channel, direction, status, body, created_at)
       SELECT organization_id, id, 'EMAIL', 'INBOUND', 'RECEIVED',
              'Message ' || substr(md5(reference || m), 1, 10) || ' about the cargo', last_activity_at - m * interval '1 s'
       FROM threads, generate_series(1, 3) m WHERE organization_id = :org""",
    """INSERT INTO notes (organization_id, thread_id, body)
       SELECT organization_id, id, 'Note ' || substr(md5('note' || reference), 1, 10) FROM threads
       WHERE organization_id = :org""",
]


async def _seed_many(api: Api, organization_ids: list[Any], threads: int) -> None:
    """`threads` threads per organization, each with its customer, contact, shipment, 3 messages and a note."""
    async with system_session(api.state.sessionmaker) as session, session.begin():
        for organization_id in organization_ids:
            for statement in SEED:
                await session.execute(text(statement), {"org": organization_id, "n": threads})
    async with api.state.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum would: statistics, GIN pending lists


async def _compiled_statement(api: Api, token: str, variables: dict[str, Any]) -> tuple[str, Any, dict]:
    """The one statement the compiled path ran for the inbox query, its parameters, and the response's data."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "json_build_object" in statement:
            statements.append((statement, parameters))

    engine = api.state.reads.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        response = await api.http.post(
            "/graphql", json={"query": INBOX, "variables": variables}, headers={"authorization": f"Bearer {token}"}
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    body = response.json()
    assert "errors" not in body and response.headers.get(COMPILED_HEADER) == "verified", body
    assert len(statements) == 1, statements
    return statements[0][0], statements[0][1], body["data"]


async def _plan(api: Api, statement: str, parameters: Any, *settings: str) -> dict:
    """EXPLAIN of the statement with its parameters' values (a custom plan, as the executor's first runs get)."""
    async with api.state.reads.connect() as connection:
        for setting in settings:
            await connection.exec_driver_sql(f"SET {setting}")
        try:
            explained = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            plan = explained.scalar()
        finally:
            await connection.exec_driver_sql("RESET ALL")
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _indexes(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", ()):
        found |= _indexes(child)
    return found


COSTLY_SEARCHES = ["MSCU0001234", "mscu000123", "MAEU-000000042", "bkg0000", "Customer", "Note", "cargo", "a"]


def _literal(value: Any) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


async def _generic_plan(api: Api, statement: str, parameters: Any, *settings: str) -> dict:
    """EXPLAIN of the statement as the compiled path runs it: prepared, with a generic plan (the reads engine's)."""
    async with api.state.reads.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for setting in settings:
            await raw.execute(f"SET {setting}")
        await raw.execute(f"PREPARE bx_explained AS {statement}")
        try:
            arguments = ", ".join(_literal(p) for p in parameters)
            plan = await raw.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE bx_explained({arguments})")
        finally:
            await raw.execute("DEALLOCATE bx_explained")
            await raw.execute("RESET ALL")
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _background(statement: str) -> bool:
    """The app's event sweeper runs every second on the same engine; its queries are not the request's."""
    return "dispatched_at IS NULL" in statement or "pg_advisory_xact_lock" in statement


async def _executor_statements(api: Api, token: str, variables: dict[str, Any]) -> int:
    """How many statements the executor (the reference path, run beside the compiled one) spends on the inbox."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not _background(statement):
            statements.append(statement)

    engine = api.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = await api.gql(INBOX, variables, token=token)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert "errors" not in result, result
    return len(statements)


def _visible(n: int) -> bool:
    """Whether seeded thread `n` is in the default inbox (SEED gives every 7th one, n % 7 == 6, ARCHIVED)."""
    return n % 7 != 6


def _md5(text_: str) -> str:
    return hashlib.md5(text_.encode()).hexdigest()[:10]


# (search, the seeded threads it finds): a container, its prefix, a BL as written, a booking prefix, a customer's
# name, a contact's name and a note's text, each by a prefix of its last word
SELECTIVE = [
    ("MSCU0001234", [1234]),
    ("mscu000123", list(range(1230, 1240))),
    ("MAEU-000000042", [42]),
    ("bkg/00104", list(range(1040, 1050))),
    (f"customer {_md5('customer77')[:8]}", [77]),
    (f"contact {_md5('contactC88')[:8]}", [88]),
    (_md5("noteBX-2026-000099")[:8], [99]),
]


@pytest.fixture
async def many(api: Api, org: Any) -> str:
    """2000 threads in the viewer's organization and 2000 in another one, vacuumed and analyzed; the admin's token."""
    globex = await api.create_org("globex")
    await _seed_many(api, [org.id, globex.id], 2000)
    return await api.token(org.admin_email)


async def test_the_inbox_with_a_search_costs_no_more_than_the_inbox(api: Api, many: str) -> None:
    # given the inbox without a search: its statements (the executor's) and its compiled statement's plan cost
    inbox_statements = await _executor_statements(api, many, {})
    sql, parameters, data = await _compiled_statement(api, many, {})
    inbox_cost = (await _plan(api, sql, parameters))["Total Cost"]
    inbox_generic_cost = (await _generic_plan(api, sql, parameters))["Total Cost"]
    assert data["threads"]["totalCount"] == len([n for n in range(1, 2001) if _visible(n)])
    assert inbox_statements <= 6  # tests/test_inbox_query_cost.py's bound

    for search, found in SELECTIVE:
        # when the same page is asked for with a search
        variables = {"filter": {"search": search}}
        statements = await _executor_statements(api, many, variables)
        sql, parameters, data = await _compiled_statement(api, many, variables)
        cost = (await _plan(api, sql, parameters))["Total Cost"]
        generic_cost = (await _generic_plan(api, sql, parameters))["Total Cost"]
        # then it finds what it should, in as many statements, at a lower plan cost (custom and generic plans)
        assert data["threads"]["totalCount"] == len([n for n in found if _visible(n)]), search
        assert statements == inbox_statements, search
        assert cost < inbox_cost, (search, cost, inbox_cost)
        assert generic_cost < inbox_generic_cost, (search, generic_cost, inbox_generic_cost)


async def test_the_search_reads_its_indexes(api: Api, many: str) -> None:
    for search, _ in SELECTIVE:
        # given the compiled inbox statement with a search
        sql, parameters, _ = await _compiled_statement(api, many, {"filter": {"search": search}})
        # when PostgreSQL plans it as the compiled path runs it (a generic plan), and with the search text known
        generic = await _generic_plan(api, sql, parameters)
        custom = await _plan(api, sql, parameters, "enable_seqscan = off", "enable_indexscan = off")
        # then each document is read through its GIN index: one missing, and its branch scans the organization
        assert _indexes(generic) >= set(SEARCH_INDEXES), (search, _indexes(generic))
        assert _indexes(custom) >= set(SEARCH_INDEXES), (search, _indexes(custom))
