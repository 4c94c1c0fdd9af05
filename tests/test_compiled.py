"""The compiled path answers exactly what the executor answers.

The whole suite runs with BANXWAY_GRAPHQL_COMPILED=verify (tests/conftest.py): every query the compiler takes
is answered by both paths and fails when their JSON differs. These tests make sure the compiler takes the
queries that matter (the `banxway-compiled` response header), with every argument and shape of selection,
on a varied dataset; a hypothesis test builds random selections of the inbox's types; and the tenancy,
authentication and statement-count properties hold on the compiled path itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from banxway import db
from banxway.compiler import COMPILED_HEADER
from tests.conftest import Api, Org

ROOT = Path(__file__).resolve().parent.parent


async def _seed(api: Api, org: Org, threads: int = 12) -> None:
    """Threads with and without links, with statuses, priorities, SLA dates and tags of every kind, messages
    whose timestamps have zero and non-zero microseconds, read positions and messages by the admin."""
    now = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)
    async with db.system_session(api.state.sessionmaker) as session, session.begin():
        admin = await session.scalar(select(db.User).where(db.User.organization_id == org.id))
        customer = db.Customer(
            organization_id=org.id, name='Acme "Imports"', code="AC1", custom_fields={"b": 1, "a": [1.5, None]}
        )
        session.add(customer)
        await session.flush()
        contact = db.Contact(organization_id=org.id, name="Priya Shah", customer_id=customer.id, title="Ops")
        shipment = db.Shipment(
            organization_id=org.id,
            reference="SHP-1",
            customer_id=customer.id,
            mode=db.ShipmentMode.SEA,
            direction=db.ShipmentDirection.IMPORT,
            container_numbers=["MSCU1234567"],
            eta=now + dt.timedelta(days=3),
        )
        session.add_all([contact, shipment])
        for n, name in enumerate(
            ['Zürich "AG"', "tab\there", "a/b \\ c", "Ωmega", "émile", "\u2028line", "bx_organization"]
        ):
            session.add(db.Customer(organization_id=org.id, name=name, tags=[f"t{n}"]))
            session.add(
                db.Shipment(
                    organization_id=org.id,
                    reference=f"SHP-{n + 2}",
                    mode=db.ShipmentMode.AIR,
                    direction=db.ShipmentDirection.EXPORT,
                    status=db.ShipmentStatus.BOOKED if n % 2 else db.ShipmentStatus.DRAFT,
                    created_at=now - dt.timedelta(days=n, microseconds=n),
                )
            )
        await session.flush()
        statuses = list(db.ThreadStatus)
        priorities = list(db.Priority)
        for n in range(threads):
            linked = n % 3 != 0
            thread = db.Thread(
                organization_id=org.id,
                reference=f"BX-2026-{n + 1:04d}",
                subject=f'Thread {n} — ünïcode \\ "quoted"\n',
                type=db.ThreadType.BOOKING,
                status=statuses[n % len(statuses)],
                priority=priorities[n % len(priorities)],
                primary_channel=db.Channel.EMAIL,
                customer_id=customer.id if linked else None,
                contact_id=contact.id if linked else None,
                shipment_id=shipment.id if n % 2 else None,
                assignee_id=admin.id if n % 4 else None,
                tags=["sea", f"t{n % 3}"] if n % 5 else [],
                last_activity_at=now + dt.timedelta(seconds=n, microseconds=0 if n % 2 else 120000),
                last_message_at=(now + dt.timedelta(seconds=n)) if n % 6 else None,
                sla_due_at=(now + dt.timedelta(hours=n % 4)) if n % 3 else None,
            )
            session.add(thread)
            await session.flush()
            for m in range(n % 5):
                inbound = m % 2 == 0
                session.add(
                    db.Message(
                        id=uuid.uuid4(),
                        organization_id=org.id,
                        thread_id=thread.id,
                        channel=db.Channel.EMAIL,
                        direction=db.Direction.INBOUND if inbound else db.Direction.OUTBOUND,
                        status=db.MessageStatus.RECEIVED if inbound else db.MessageStatus.SENT,
                        body=f"message {m} of thread {n}" + (" bx_organization" if (n, m) == (3, 0) else ""),
                        subject="Re: rates" if m else None,
                        recipients=["ops@acme.test"] if not inbound else [],
                        author_id=None if inbound else admin.id,
                        contact_id=contact.id if inbound else None,
                        created_at=now + dt.timedelta(seconds=n, milliseconds=m, microseconds=7 * m),
                    )
                )
            if n % 4 == 1:
                session.add(
                    db.ThreadRead(
                        organization_id=org.id,
                        user_id=admin.id,
                        thread_id=thread.id,
                        read_at=now + dt.timedelta(seconds=n),
                    )
                )


async def _post(
    api: Api, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> tuple[dict, str | None]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await api.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json(), response.headers.get(COMPILED_HEADER)


async def _compiled(api: Api, query: str, variables: dict[str, Any] | None = None, *, token: str) -> dict:
    """The data of `query`, checked against the executor, and answered by the compiled path."""
    body, compiled = await _post(api, query, variables, token)
    assert "errors" not in body, body
    assert compiled == "verified", f"the executor answered {query}"
    return body["data"]


THREAD_FIELDS = """
  id reference subject type status priority primaryChannel tags lastMessageAt firstResponseAt slaDueAt createdAt
  updatedAt unreadCount __typename
  customer { id name code email phone address tags customFields createdAt updatedAt __typename }
  contact { id name title verified createdAt updatedAt customer { id name } }
  shipment { id reference mode direction status carrier containerNumbers eta etd customer { name } }
  assignee { id name email role active createdAt organization { id name slug createdAt } }
"""

QUERIES: list[tuple[str, dict[str, Any]]] = [
    (f"{{ threads {{ totalCount edges {{ cursor node {{ {THREAD_FIELDS} }} }} }} }}", {}),
    (
        """query($n: Int, $order: ThreadOrder!) { threads(first: $n, orderBy: $order) {
             pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }
             edges { cursor node { reference priority slaDueAt } } } }""",
        {"n": 5, "order": "PRIORITY"},
    ),
    ("{ threads(orderBy: SLA_DUE, first: 4) { edges { cursor node { reference slaDueAt } } } }", {}),
    (
        "{ threads(orderBy: CREATED_DESC, last: 3) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor } } }",
        {},
    ),
    ("{ threads(first: 0) { totalCount pageInfo { hasNextPage endCursor } edges { cursor } } }", {}),
    (
        """query($f: ThreadFilter) { threads(filter: $f) { totalCount edges { node { reference status tags } } } }""",
        {"f": {"status": ["OPEN", "ARCHIVED"], "tag": "SEA"}},
    ),
    ("""{ threads(filter: {unassigned: true, search: "thread"}) { totalCount edges { node { reference } } } }""", {}),
    ("""{ threads(filter: {assignedToMe: true, priority: HIGH}) { totalCount edges { node { reference } } } }""", {}),
    (
        """{ inbox: threads(first: 3) { ...page } again: threads(first: 3) { ...page } }
           fragment page on ThreadConnection { total: totalCount edges { node { ...thread } } }
           fragment thread on Thread { ref: reference ... on Node { id } messages(first: 2) { totalCount
             pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
             edges { cursor node { id body subject html sender recipients error segments channel direction status
               createdAt author { id name role } contact { name customer { name } } thread { reference } } } } }""",
        {},
    ),
    (
        """{ customers(first: 5) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node {
             id name code email phone address tags customFields createdAt updatedAt } } } }""",
        {},
    ),
    ("""{ customers(search: "acme") { totalCount edges { node { name } } } }""", {}),
    # a user's text that reads like the name of a plan's viewer parameter is only text
    (
        """query($s: String) { customers(search: $s) { totalCount edges { node { name } } } }""",
        {"s": "bx_organization"},
    ),
    ("""query($f: ThreadFilter) { threads(filter: $f) { totalCount } }""", {"f": {"search": "bx_organization"}}),
    (
        """query($f: ShipmentFilter) { shipments(first: 3, filter: $f) { totalCount pageInfo { hasNextPage hasPreviousPage }
             edges { cursor node { id reference mode direction status carrier vessel voyage flightNumber containerNumbers
               blNumber awbNumber bookingNumber etd eta atd ata createdAt updatedAt customer { id name } } } } }""",
        {"f": {"status": ["BOOKED"]}},
    ),
    ("""{ shipments(filter: {containerNumber: "MSCU1234567"}) { totalCount edges { node { reference } } } }""", {}),
    (
        """query($skip: Boolean!) { threads(first: 2) { edges { node { reference
             unreadCount @skip(if: $skip) subject @include(if: $skip) messages(last: 2) { edges { node { body } } } } } } }""",
        {"skip": True},
    ),
]


@pytest.fixture
async def seeded(api: Api, org: Org) -> str:
    await _seed(api, org)
    return await api.token(org.admin_email)


@pytest.mark.parametrize("index", range(len(QUERIES)))
async def test_the_compiled_path_answers_what_the_executor_answers(api: Api, seeded: str, index: int) -> None:
    query, variables = QUERIES[index]
    data = await _compiled(api, query, variables, token=seeded)
    assert data  # and the verify mode compared it with the executor's, byte for byte


async def test_pages_and_message_windows_follow_cursors_both_ways(api: Api, seeded: str) -> None:
    query = """query($first: Int, $after: String, $last: Int, $before: String) {
      threads(first: $first, after: $after, last: $last, before: $before) {
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { reference
          messages(last: 2) { pageInfo { hasPreviousPage startCursor } edges { cursor node { body } } } } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await _compiled(api, query, {"first": 4, "after": after}, token=seeded))["threads"]
        seen += [edge["node"]["reference"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    back = (await _compiled(api, query, {"last": 3, "before": after}, token=seeded))["threads"]
    assert [edge["node"]["reference"] for edge in back["edges"]] == seen[
        4:7
    ]  # the three before the last of the second page
    assert len(seen) == len(set(seen)) == 10  # the non-archived threads, each once
    thread = back["edges"][0]["node"]
    if thread["messages"]["edges"]:
        cursor = thread["messages"]["edges"][-1]["cursor"]
        older = """query($c: String) { threads(first: 1) { edges { node { messages(first: 5, after: $c) { edges { node { body } } } } } } }"""
        await _compiled(api, older, {"c": cursor}, token=seeded)


async def test_customer_and_shipment_pages_follow_their_cursors(api: Api, seeded: str) -> None:
    for field, query in [
        (
            "customers",
            "query($a: String) { customers(first: 2, after: $a) { pageInfo { hasNextPage endCursor } edges { node { name } } } }",
        ),
        (
            "shipments",
            "query($a: String) { shipments(first: 2, after: $a) { pageInfo { hasNextPage endCursor } edges { node { reference } } } }",
        ),
    ]:
        after, seen = None, []
        while True:
            page = (await _compiled(api, query, {"a": after}, token=seeded))[field]
            seen += [edge["node"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert len(seen) == 8  # every one, once, in order: the executor's pages are the same (verify mode)


async def test_a_thread_by_id_is_compiled_and_scoped_to_the_organization(api: Api, seeded: str, org: Org) -> None:
    page = await _compiled(api, "{ threads(first: 1) { edges { node { id } } } }", token=seeded)
    thread_id = page["threads"]["edges"][0]["node"]["id"]
    query = f"query($id: ID!) {{ thread(id: $id) {{ {THREAD_FIELDS} messages {{ totalCount edges {{ node {{ id }} }} }} }} }}"
    assert (await _compiled(api, query, {"id": thread_id}, token=seeded))["thread"]["id"] == thread_id
    assert (await _compiled(api, query, {"id": "not-a-global-id"}, token=seeded))["thread"] is None
    # another organization's admin sees neither the thread nor anything of the first organization
    other = await api.create_org("globex")
    token = await api.token(other.admin_email)
    assert (await _compiled(api, query, {"id": thread_id}, token=token))["thread"] is None
    inbox = await _compiled(api, "{ threads { totalCount edges { node { id } } } }", token=token)
    assert inbox["threads"] == {"totalCount": 0, "edges": []}


async def test_what_the_compiler_does_not_know_goes_to_the_executor(api: Api, seeded: str) -> None:
    # a field with a resolver of its own (notes), an unknown root field (me), no viewer, a forged cursor
    for query, variables in [
        ("{ threads(first: 1) { edges { node { notes { totalCount } } } } }", {}),
        ("{ me { id } threads(first: 1) { totalCount } }", {}),
        ('{ threads(after: "forged") { totalCount } }', {}),
        ("{ threads(first: -1) { totalCount } }", {}),
    ]:
        body, compiled = await _post(api, query, variables, seeded)
        assert compiled is None, query
    body, compiled = await _post(api, "{ threads { totalCount } }")
    assert compiled is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body, _ = await _post(api, '{ threads(after: "forged") { totalCount } }', token=seeded)
    assert body["errors"][0]["extensions"]["reason"] == "INVALID"


async def test_a_viewer_role_without_read_is_refused_by_the_executor(api: Api, seeded: str, org: Org) -> None:
    await api.create_user(org, "viewer@acme.test", "viewer")
    token = await api.token("viewer@acme.test")
    body, _ = await _post(api, "{ threads { totalCount } }", token=token)
    assert "errors" not in body  # viewers read the inbox
    assert body["data"]["threads"]["totalCount"] == 10


async def test_the_compiled_inbox_is_one_statement(api: Api, seeded: str) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "dispatched_at IS NULL" not in statement and "pg_advisory_xact_lock" not in statement:
            statements.append(statement)

    query = (ROOT / "operations" / "inbox.graphql").read_text().split("mutation")[0]
    engine = api.state.reads.sync_engine  # single-statement reads: authentication and the compiled path
    event.listen(engine, "before_cursor_execute", count)
    try:
        body, compiled = await _post(api, query, {}, seeded)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert compiled == "verified" and "errors" not in body
    assert len([s for s in statements if "json_build_object" in s]) == 1
    assert len(statements) == 2  # and the viewer's authentication


# -- random selections (hypothesis) ------------------------------------------------------------------------

_SCALARS = {
    "Thread": [
        "id",
        "reference",
        "subject",
        "type",
        "status",
        "priority",
        "primaryChannel",
        "tags",
        "lastMessageAt",
        "firstResponseAt",
        "slaDueAt",
        "createdAt",
        "updatedAt",
        "unreadCount",
        "__typename",
    ],
    "Customer": ["id", "name", "code", "email", "tags", "customFields", "createdAt", "__typename"],
    "Contact": ["id", "name", "title", "verified", "createdAt", "__typename"],
    "Shipment": ["id", "reference", "mode", "direction", "status", "containerNumbers", "eta", "__typename"],
    "User": ["id", "name", "email", "role", "active", "createdAt", "__typename"],
    "Message": ["id", "body", "subject", "channel", "direction", "status", "recipients", "segments", "createdAt"],
}
_LINKS = {
    "Thread": {"customer": "Customer", "contact": "Contact", "shipment": "Shipment", "assignee": "User"},
    "Contact": {"customer": "Customer"},
    "Shipment": {"customer": "Customer"},
    "Message": {"author": "User", "contact": "Contact", "thread": "Thread"},
}


@st.composite
def _selection(draw: st.DrawFn, type_name: str, depth: int = 0) -> str:
    fields = draw(st.lists(st.sampled_from(_SCALARS[type_name]), min_size=1, max_size=6, unique=True))
    parts = [f"a{index}: {name}" if draw(st.booleans()) else name for index, name in enumerate(fields)]
    if depth < 2:
        for link, target in _LINKS.get(type_name, {}).items():
            if draw(st.booleans()):
                parts.append(f"{link} {{ {draw(_selection(target, depth + 1))} }}")
        if type_name == "Thread" and draw(st.booleans()):
            window = draw(st.sampled_from(["first: 2", "last: 3", "", "last: 0"]))
            args = f"({window})" if window else ""
            parts.append(
                f"messages{args} {{ totalCount edges {{ cursor node {{ {draw(_selection('Message', depth + 1))} }} }} }}"
            )
    if draw(st.booleans()):
        return f"... on {type_name} {{ {' '.join(parts)} }}"
    return " ".join(parts)


@st.composite
def _inbox_query(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    order = draw(st.sampled_from(["LAST_ACTIVITY_DESC", "CREATED_DESC", "PRIORITY", "SLA_DUE"]))
    size = draw(st.sampled_from(["first: 3", "last: 4", "first: 100", ""]))
    node = draw(_selection("Thread"))
    query = f"query($order: ThreadOrder!) {{ threads(orderBy: $order {', ' + size if size else ''}) {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} edges {{ cursor node {{ {node} }} }} }} }}"
    return query, {"order": order}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_inbox_query())
async def test_random_selections_of_the_inbox_match_the_executor(api: Api, seeded: str, case: tuple[str, dict]) -> None:
    query, variables = case
    await _compiled(api, query, variables, token=seeded)


async def test_concurrent_reads_reuse_pooled_connections(api: Api, seeded: str) -> None:
    """32 requests at once take connections from the reads pool and give them back: none is opened past the pool's
    size and closed again (a new connection costs a TLS attempt, type introspection and a cold statement cache)."""
    import asyncio

    counts = {"connect": 0, "close": 0}
    engine = api.state.reads.sync_engine

    def opened(*args: Any) -> None:
        counts["connect"] += 1

    def closed(*args: Any) -> None:
        counts["close"] += 1

    event.listen(engine, "connect", opened)
    event.listen(engine.pool, "close", closed)
    try:
        query = "{ threads(first: 5) { edges { node { id unreadCount } } } }"
        await asyncio.gather(*(_compiled(api, query, token=seeded) for _ in range(32)))
    finally:
        event.remove(engine, "connect", opened)
        event.remove(engine.pool, "close", closed)
    assert counts["close"] == 0
    assert counts["connect"] <= engine.pool.size()


async def test_a_dead_pooled_connection_costs_no_failed_request(api: Api, seeded: str) -> None:
    """The reads pool does not ping connections when it hands them out (a round trip per read): a read on a
    connection the database has closed (a restart, an idle timeout) is retried once on a new one."""
    import asyncio

    from sqlalchemy import text

    pids: set[int] = set()

    async def grab() -> None:
        async with api.state.reads.connect() as connection:
            pids.add((await connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())
            await asyncio.sleep(0.05)

    await asyncio.gather(*(grab() for _ in range(4)))
    async with api.state.engine.connect() as connection:
        for pid in pids:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    data = await _compiled(api, "{ threads(first: 1) { totalCount } }", token=seeded)
    assert data["threads"]["totalCount"] == 10


async def test_the_documents_under_operations_run_on_both_paths(api: Api, seeded: str) -> None:
    """Every query of operations/*.graphql (what the frontend sends): compiled where the compiler can, and then
    equal to the executor's answer (verify mode), the inbox's first and second pages included."""
    from graphql import OperationDefinitionNode, OperationType, parse

    thread = (await _compiled(api, "{ threads(first: 1) { edges { node { id } } } }", token=seeded))["threads"]
    variables = {"Node": {"id": thread["edges"][0]["node"]["id"]}}
    compiled: list[str] = []
    for path in sorted((ROOT / "operations").glob("*.graphql")):
        document = path.read_text()
        for definition in parse(document).definitions:
            if not isinstance(definition, OperationDefinitionNode) or definition.operation != OperationType.QUERY:
                continue
            name = definition.name.value
            response = await api.http.post(
                "/graphql",
                json={"query": document, "operationName": name, "variables": variables.get(name, {})},
                headers={"authorization": f"Bearer {seeded}"},
            )
            body = response.json()
            assert "errors" not in body, (path.name, name, body)
            if response.headers.get(COMPILED_HEADER):
                compiled.append(name)
            if name == "Inbox":
                after = body["data"]["threads"]["pageInfo"]["endCursor"]
                second = await api.http.post(
                    "/graphql",
                    json={"query": document, "operationName": name, "variables": {"after": after}},
                    headers={"authorization": f"Bearer {seeded}"},
                )
                assert "errors" not in second.json() and second.headers.get(COMPILED_HEADER) == "verified"
    assert "Inbox" in compiled


@pytest.fixture
def compiled_on(settings: Any) -> Any:
    """The production mode: the compiled path alone (no executor beside it), repeats answered from the plan cache."""
    return settings.model_copy(update={"graphql_compiled": "on"})


async def test_a_named_operation_sent_without_its_name_is_answered_from_its_plan(
    compiled_on: Any, state: Any, api: Api, org: Org
) -> None:
    """A client that sends `query Inbox {…}` without `operationName` (curl, wrk, many scripts): the plan was kept
    under the document's operation name and the fast path looked for none, so it never answered (found with py-spy
    on bench/inbox.py, whose requests were all compiled again)."""
    from tests.conftest import http_client

    query = "query Inbox($n: Int) { threads(first: $n) { totalCount edges { node { id subject } } } }"
    async with http_client(compiled_on, state) as http:
        token = await Api(http, state).token(org.admin_email)
        headers = {"authorization": f"Bearer {token}"}
        paths = []
        for body in ({"query": query, "variables": {"n": 3}},) * 2 + ({"query": query, "operationName": "Inbox"},) * 2:
            response = await http.post("/graphql", json=body, headers=headers)
            assert response.json() == {"data": {"threads": {"totalCount": 0, "edges": []}}}
            paths.append(response.headers.get(COMPILED_HEADER))
    assert paths == ["yes", "cached", "yes", "cached"]


async def test_in_production_mode_a_repeated_query_is_answered_from_its_plan(
    compiled_on: Any, state: Any, api: Api, org: Org
) -> None:
    from tests.conftest import http_client

    await _seed(api, org)
    other = await api.create_org("globex")
    query = "query($n: Int) { threads(first: $n) { totalCount edges { node { id subject unreadCount } } } }"
    async with http_client(compiled_on, state) as http:
        production = Api(http, state)
        token, other_token = await production.token(org.admin_email), await production.token(other.admin_email)
        answers, paths = [], []
        for bearer in (token, token, other_token, token):
            response = await http.post(
                "/graphql", json={"query": query, "variables": {"n": 3}}, headers={"authorization": f"Bearer {bearer}"}
            )
            paths.append(response.headers.get(COMPILED_HEADER))
            answers.append(response.json())
        # compiled by the first, answered from its plan before Strawberry's way for the next (the role is the same)
        assert paths == ["yes", "cached", "cached", "cached"]
        assert answers[0] == answers[1] == answers[3]
        assert answers[0]["data"]["threads"]["totalCount"] == 10
        # the same plan, run for another organization's viewer, answers with that organization's (no) threads
        assert answers[2] == {"data": {"threads": {"totalCount": 0, "edges": []}}}
        # a deactivated viewer is refused before any plan runs
        await production.create_user(org, "gone@acme.test", "support")
        gone = await production.token("gone@acme.test")
        first = await http.post(
            "/graphql", json={"query": query, "variables": {"n": 3}}, headers={"authorization": f"Bearer {gone}"}
        )
        assert first.headers.get(COMPILED_HEADER) == "yes"  # another role: its own plan
        async with state.engine.begin() as connection:
            from sqlalchemy import text

            await connection.execute(text("UPDATE users SET active = false WHERE email = 'gone@acme.test'"))
        again = await http.post(
            "/graphql", json={"query": query, "variables": {"n": 3}}, headers={"authorization": f"Bearer {gone}"}
        )
        assert again.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
