"""A whole conversation through the API: customer, contact, shipment, thread, messages, notes, actions."""

from __future__ import annotations

from tests.inbox_helpers import Inbox, configure_channels

INBOX = """
query($first: Int) {
  threads(first: $first) {
    totalCount
    edges { cursor node {
      id reference subject status priority tags unreadCount lastMessageAt
      customer { name } contact { name } shipment { reference } assignee { name }
      messages(last: 3) { totalCount edges { node { body direction author { email } } } }
    } }
  }
}
"""


async def test_a_conversation_end_to_end(inbox: Inbox) -> None:
    await configure_channels(inbox, "EMAIL")  # the organization's mailbox: emails can be sent
    customer = await inbox.customer("Acme Imports", code="acme", email="Ops@Acme.Example", phone="+91 98200 12345")
    assert customer["code"] == "ACME"
    assert customer["email"] == "ops@acme.example"
    assert customer["phone"] == "+919820012345"
    contact = await inbox.contact(
        "Priya Shah",
        customerId=customer["id"],
        identities=[
            {"channel": "EMAIL", "address": "Priya@Acme.Example"},
            {"channel": "WHATSAPP", "address": "+91 98200 54321"},
        ],
    )
    assert {(i["channel"], i["address"]) for i in contact["identities"]} == {
        ("EMAIL", "priya@acme.example"),
        ("WHATSAPP", "+919820054321"),
    }
    shipment = await inbox.shipment(
        "SHP-2026-001",
        customerId=customer["id"],
        mode="SEA",
        containerNumbers=["CSQU3054383"],
        origin={"code": "innsa"},
    )
    assert shipment["containerNumbers"] == ["CSQU3054383"]
    thread = await inbox.thread(contactId=contact["id"], shipmentId=shipment["id"], tags=["Urgent", "quote"])
    assert thread["reference"].startswith("BX-")
    assert thread["customer"] == {"id": customer["id"]}
    assert thread["tags"] == ["urgent", "quote"]
    email = await inbox.send(thread["id"], "Please find our quote.", channel="EMAIL", subject="Quote")
    assert email["status"] == "QUEUED"
    assert email["recipients"] == ["priya@acme.example"]
    assert email["thread"]["status"] == "OPEN"
    internal = await inbox.send(thread["id"], "Checked with the carrier", channel="INTERNAL")
    assert internal["status"] == "SENT"

    result = await inbox.gql(INBOX, {"first": 10})
    assert "errors" not in result, result
    node = result["data"]["threads"]["edges"][0]["node"]
    assert result["data"]["threads"]["totalCount"] == 1
    assert node["customer"] == {"name": "Acme Imports"}
    assert node["shipment"] == {"reference": "SHP-2026-001"}
    assert node["unreadCount"] == 0  # both messages are the viewer's own
    assert [e["node"]["body"] for e in node["messages"]["edges"]] == [
        "Please find our quote.",
        "Checked with the carrier",
    ]
    assert node["messages"]["totalCount"] == 2
