"""The inbox query costs a constant number of SQL statements: the same for 10 and 100 threads, at most 6."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import event, select

from banxway import db
from tests.conftest import Api, Org

INBOX_QUERY = """
query Inbox {
  threads(first: 50) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id reference subject status priority tags unreadCount lastMessageAt
        customer { id name }
        contact { id name }
        shipment { id reference }
        assignee { id name }
        messages(last: 3) { edges { node { id body direction createdAt } } }
      }
    }
  }
}
"""


async def _seed(api: Api, org: Org, threads: int) -> None:
    """`threads` threads, each with its own customer, contact, shipment, an assignee and 5 messages."""
    now = dt.datetime.now(dt.UTC)
    async with db.system_session(api.state.sessionmaker) as session, session.begin():
        admin = await session.scalar(select(db.User).where(db.User.organization_id == org.id))
        for n in range(threads):
            customer = db.Customer(organization_id=org.id, name=f"Customer {n}")
            session.add(customer)
            await session.flush()
            contact = db.Contact(organization_id=org.id, name=f"Contact {n}", customer_id=customer.id)
            shipment = db.Shipment(
                organization_id=org.id,
                reference=f"SHP-{n}",
                customer_id=customer.id,
                mode=db.ShipmentMode.SEA,
                direction=db.ShipmentDirection.IMPORT,
            )
            session.add_all([contact, shipment])
            await session.flush()
            thread = db.Thread(
                organization_id=org.id,
                reference=f"BX-2026-{n + 1:04d}",
                subject=f"Thread {n}",
                type=db.ThreadType.BOOKING,
                status=db.ThreadStatus.OPEN,
                priority=db.Priority.NORMAL,
                primary_channel=db.Channel.EMAIL,
                customer_id=customer.id,
                contact_id=contact.id,
                shipment_id=shipment.id,
                assignee_id=admin.id,
                tags=["sea"],
                last_activity_at=now + dt.timedelta(seconds=n),
                last_message_at=now + dt.timedelta(seconds=n),
            )
            session.add(thread)
            await session.flush()
            for m in range(5):
                inbound = m % 2 == 0
                session.add(
                    db.Message(
                        id=uuid.uuid4(),
                        organization_id=org.id,
                        thread_id=thread.id,
                        channel=db.Channel.EMAIL,
                        direction=db.Direction.INBOUND if inbound else db.Direction.OUTBOUND,
                        status=db.MessageStatus.RECEIVED if inbound else db.MessageStatus.SENT,
                        body=f"message {m} of thread {n}",
                        author_id=None if inbound else admin.id,
                        contact_id=contact.id if inbound else None,
                        created_at=now + dt.timedelta(seconds=n, milliseconds=m),
                    )
                )


def _background(statement: str) -> bool:
    """The app's event sweeper runs every second on the same engine; its queries are not the request's."""
    return "dispatched_at IS NULL" in statement or "pg_advisory_xact_lock" in statement


async def _statements_for_inbox(api: Api, token: str) -> tuple[int, dict]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not _background(statement):
            statements.append(statement)

    engine = api.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = await api.gql(INBOX_QUERY, token=token)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert "errors" not in result, result
    return len(statements), result["data"]["threads"]


@pytest.mark.parametrize("threads", [10, 100])
async def test_inbox_query_costs_at_most_six_statements(api: Api, org: Org, threads: int) -> None:
    # given
    await _seed(api, org, threads)
    token = await api.token(org.admin_email)
    # when
    statements, page = await _statements_for_inbox(api, token)
    # then
    assert statements <= 6, statements
    assert page["totalCount"] == threads
    assert len(page["edges"]) == min(threads, 50)
    first = page["edges"][0]["node"]
    assert first["subject"] == f"Thread {threads - 1}"  # most recent activity first
    assert first["customer"]["name"] == f"Customer {threads - 1}"
    assert first["shipment"]["reference"] == f"SHP-{threads - 1}"
    assert first["assignee"]["name"]
    assert first["unreadCount"] == 3  # the three inbound messages; the admin's own do not count
    assert [e["node"]["body"] for e in first["messages"]["edges"]] == [
        f"message {m} of thread {threads - 1}" for m in (2, 3, 4)
    ]


async def test_inbox_query_cost_does_not_grow_with_the_page(api: Api, org: Org) -> None:
    await _seed(api, org, 60)
    token = await api.token(org.admin_email)
    small, _ = await _statements_for_inbox(api, token)
    query_for_10 = INBOX_QUERY.replace("first: 50", "first: 10")
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not _background(statement):
            statements.append(statement)

    event.listen(api.state.engine.sync_engine, "before_cursor_execute", count)
    try:
        await api.gql(query_for_10, token=token)
    finally:
        event.remove(api.state.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == small
