"""Contacts: identities per channel, contactUpdate, contactMerge / contactUnmerge, and the `contacts` list."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from banxway.db.models import Contact, ContactIdentity
from banxway.db.session import system_session
from tests.conftest import Api, Org
from tests.inbox_helpers import CONTACT_CREATE, Inbox, configure_channels, open_whatsapp_window

CONTACT_UPDATE = """
mutation($input: ContactUpdateInput!) {
  contactUpdate(input: $input) {
    contact { id name title customer { id } identities { channel address } }
    userErrors { field code message }
  }
}
"""

CONTACT_MERGE = """
mutation($kept: ID!, $merged: ID!) {
  contactMerge(input: {keptContactId: $kept, mergedContactId: $merged}) {
    keptContact { id mergedInto { id } identities { channel address } }
    mergedContact { id mergedInto { id } identities { channel address } }
    userErrors { field code message }
  }
}
"""

CONTACT_UNMERGE = """
mutation($id: ID!) {
  contactUnmerge(input: {contactId: $id}) {
    keptContact { id mergedInto { id } identities { channel address } }
    mergedContact { id mergedInto { id } identities { channel address } }
    userErrors { field code message }
  }
}
"""

CONTACTS = """
query($search: String, $first: Int, $after: String) {
  contacts(search: $search, first: $first, after: $after) {
    totalCount
    edges { node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CONTACTS_OF_CUSTOMER = """
query($customerId: ID) { contacts(customerId: $customerId, first: 100) { totalCount edges { node { name } } } }
"""

CONTACT_NODE = """
query($id: ID!) {
  node(id: $id) { ... on Contact { id name mergedInto { id } identities { channel address } } }
}
"""

THREAD_MESSAGES = """
query($id: ID!) {
  thread(id: $id) { id contact { id } messages(first: 100) { edges { node { id contact { id } } } } }
}
"""

PRIYA = [
    {"channel": "EMAIL", "address": "priya@acme.example"},
    {"channel": "WHATSAPP", "address": "+919820054321"},
]


async def _token_for(api: Api, org: Org, role: str) -> str:
    email = f"{role}@{org.slug}.test"
    await api.create_user(org, email, role)
    return await api.token(email)


async def _count_contacts(api: Api, org: Org) -> int:
    async with system_session(api.state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(Contact).where(Contact.organization_id == org.id))


async def _identity_rows(api: Api, contact_id: str) -> dict[tuple[str, str], uuid.UUID]:
    """(channel, address) → the stored identity row's id, for one contact."""
    local = uuid.UUID(GlobalID.from_id(contact_id).node_id)
    async with system_session(api.state.sessionmaker) as session:
        rows = await session.scalars(select(ContactIdentity).where(ContactIdentity.contact_id == local))
        return {(row.channel.value, row.address): row.id for row in rows}


def _pairs(identities: list[dict]) -> set[tuple[str, str]]:
    return {(i["channel"], i["address"]) for i in identities}


def _codes(payload: dict) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def _contact(inbox: Inbox, contact_id: str, token: str | None = None) -> dict:
    result = await inbox.gql(CONTACT_NODE, {"id": contact_id}, token)
    assert "errors" not in result, result
    node = result["data"]["node"]
    return {**node, "identities": sorted(_pairs(node["identities"]))}


async def _thread(inbox: Inbox, thread_id: str) -> dict:
    result = await inbox.gql(THREAD_MESSAGES, {"id": thread_id})
    assert "errors" not in result, result
    thread = result["data"]["thread"]
    return {
        "contact": thread["contact"],
        "messages": {e["node"]["id"]: e["node"]["contact"] for e in thread["messages"]["edges"]},
    }


async def _snapshot(inbox: Inbox, contact_ids: list[str], thread_ids: list[str]) -> dict:
    """Both contacts (with identities), every thread's contact and every message's contact."""
    return {
        "contacts": {cid: await _contact(inbox, cid) for cid in contact_ids},
        "threads": {tid: await _thread(inbox, tid) for tid in thread_ids},
    }


async def _names(inbox: Inbox, search: str | None = None, token: str | None = None) -> list[str]:
    result = await inbox.gql(CONTACTS, {"search": search, "first": 100}, token)
    assert "errors" not in result, result
    contacts = result["data"]["contacts"]
    assert contacts["totalCount"] == len(contacts["edges"])
    return [edge["node"]["name"] for edge in contacts["edges"]]


async def _duplicates(inbox: Inbox) -> dict:
    """Two contacts for one person, each with threads carrying EMAIL messages (and one INTERNAL note-like message)."""
    await configure_channels(inbox, "EMAIL", "WHATSAPP")
    kept = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.example"}])
    merged = await inbox.contact(
        "P. Shah",
        identities=[
            {"channel": "EMAIL", "address": "p.shah@gmail.example"},
            {"channel": "WHATSAPP", "address": "+919820054321"},
        ],
    )
    kept_thread = await inbox.thread("Booking 2x20GP", contactId=kept["id"])
    await open_whatsapp_window(inbox, "+919820054321")  # P. Shah wrote on WhatsApp: we may answer there
    merged_threads = [
        await inbox.thread("Quote for 1x40HC", contactId=merged["id"]),
        await inbox.thread("Where is my container?", contactId=merged["id"]),
    ]
    await inbox.send(kept_thread["id"], "Booking confirmed", channel="EMAIL", subject="Booking")
    for thread in merged_threads:
        await inbox.send(thread["id"], "Here is our quote", channel="EMAIL", subject="Quote")
        await inbox.send(thread["id"], "Second message", channel="WHATSAPP")
    await inbox.send(merged_threads[0]["id"], "Checked with the carrier", channel="INTERNAL")
    return {
        "kept": kept["id"],
        "merged": merged["id"],
        "kept_thread": kept_thread["id"],
        "merged_threads": [t["id"] for t in merged_threads],
        "threads": [kept_thread["id"], *(t["id"] for t in merged_threads)],
    }


async def _globex_contact(api: Api) -> tuple[str, str]:
    """A contact of another organization 'globex': (its admin's token, the contact's id)."""
    globex = await api.create_org("globex")
    token = await api.token(globex.admin_email)
    result = await api.gql(
        CONTACT_CREATE,
        {"input": {"name": "Hank Scorpio", "identities": [{"channel": "EMAIL", "address": "hank@globex.example"}]}},
        token=token,
    )
    assert result["data"]["contactCreate"]["userErrors"] == [], result
    return token, result["data"]["contactCreate"]["contact"]["id"]


# -- contactCreate -------------------------------------------------------------------


async def test_create_normalises_identities_on_each_channel(inbox: Inbox) -> None:
    # when
    contact = await inbox.contact(
        "Priya Shah",
        title="Logistics Manager",
        identities=[
            {"channel": "EMAIL", "address": " Priya.Shah@Acme.Example "},
            {"channel": "WHATSAPP", "address": "+91 98200 54321"},
            {"channel": "SMS", "address": "0091 98200 54321"},
            {"channel": "VOICE", "address": "+49 30 901820"},
            {"channel": "WEB_CHAT", "address": " visitor-42 "},
            {"channel": "EMAIL", "address": "PRIYA.SHAH@acme.example"},  # the same, once normalised
        ],
    )
    # then
    assert contact["name"] == "Priya Shah"
    assert contact["title"] == "Logistics Manager"
    assert sorted(_pairs(contact["identities"])) == [
        ("EMAIL", "priya.shah@acme.example"),
        ("SMS", "+919820054321"),
        ("VOICE", "+4930901820"),
        ("WEB_CHAT", "visitor-42"),
        ("WHATSAPP", "+919820054321"),
    ]
    assert len(contact["identities"]) == 5
    assert (await _contact(inbox, contact["id"]))["identities"] == sorted(_pairs(contact["identities"]))


async def test_create_links_a_customer(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    # when
    contact = await inbox.contact("Priya Shah", customerId=customer["id"])
    # then
    assert contact["customer"] == {"id": customer["id"], "name": "Acme Imports"}


async def test_create_with_a_foreign_customer_is_not_found(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    globex = await api.create_org("globex")
    globex_token = await api.token(globex.admin_email)
    foreign = await api.gql(
        'mutation { customerCreate(input: {name: "Globex"}) { customer { id } } }', token=globex_token
    )
    before = await _count_contacts(api, org)
    # when
    result = await inbox.gql(
        CONTACT_CREATE, {"input": {"name": "Priya", "customerId": foreign["data"]["customerCreate"]["customer"]["id"]}}
    )
    # then
    assert _codes(result["data"]["contactCreate"]) == [(["customerId"], "NOT_FOUND")]
    assert await _count_contacts(api, org) == before


async def test_an_address_taken_on_the_same_channel_is_taken(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    await inbox.contact("Priya Shah", identities=PRIYA)
    before = await _count_contacts(api, org)
    # when
    result = await inbox.gql(
        CONTACT_CREATE,
        {"input": {"name": "Someone Else", "identities": [{"channel": "EMAIL", "address": "PRIYA@Acme.Example"}]}},
    )
    # then
    payload = result["data"]["contactCreate"]
    assert payload["contact"] is None
    assert _codes(payload) == [(["identities", "0", "address"], "TAKEN")]
    assert await _count_contacts(api, org) == before


async def test_the_same_number_on_another_channel_is_not_taken(inbox: Inbox) -> None:
    # given
    await inbox.contact("Priya Shah", identities=PRIYA)
    # when
    other = await inbox.contact("Office Line", identities=[{"channel": "VOICE", "address": "+919820054321"}])
    # then
    assert _pairs(other["identities"]) == {("VOICE", "+919820054321")}


async def test_an_address_of_another_organization_is_not_taken(inbox: Inbox, api: Api) -> None:
    # given
    await _globex_contact(api)
    # when
    contact = await inbox.contact("Hank", identities=[{"channel": "EMAIL", "address": "hank@globex.example"}])
    # then
    assert _pairs(contact["identities"]) == {("EMAIL", "hank@globex.example")}


@pytest.mark.parametrize(
    ("identities", "path"),
    [
        ([{"channel": "INTERNAL", "address": "priya"}], "identities.0.address"),
        (
            [{"channel": "EMAIL", "address": "ok@acme.example"}, {"channel": "EMAIL", "address": "nope"}],
            "identities.1.address",
        ),
        ([{"channel": "WHATSAPP", "address": "98200 54321"}], "identities.0.address"),
        ([{"channel": "SMS", "address": "  "}], "identities.0.address"),
        ([{"channel": "WEB_CHAT", "address": ""}], "identities.0.address"),
    ],
)
async def test_create_refuses_bad_identities(
    inbox: Inbox, api: Api, org: Org, identities: list[dict], path: str
) -> None:
    # given
    before = await _count_contacts(api, org)
    # when
    result = await inbox.gql(CONTACT_CREATE, {"input": {"name": "Priya Shah", "identities": identities}})
    # then
    payload = result["data"]["contactCreate"]
    assert payload["contact"] is None
    assert [(".".join(e["field"]), e["code"]) for e in payload["userErrors"]] == [(path, "INVALID")]
    assert await _count_contacts(api, org) == before


async def test_an_invalid_identity_is_named_like_a_taken_one(inbox: Inbox) -> None:
    # given
    await inbox.contact("Priya Shah", identities=PRIYA)
    # when
    taken = await inbox.gql(
        CONTACT_CREATE,
        {"input": {"name": "Other", "identities": [{"channel": "EMAIL", "address": PRIYA[0]["address"]}]}},
    )
    invalid = await inbox.gql(
        CONTACT_CREATE, {"input": {"name": "Other", "identities": [{"channel": "INTERNAL", "address": "x"}]}}
    )
    # then
    assert _codes(taken["data"]["contactCreate"]) == [(["identities", "0", "address"], "TAKEN")]
    assert _codes(invalid["data"]["contactCreate"]) == [(["identities", "0", "address"], "INVALID")]


# -- contactUpdate -------------------------------------------------------------------


async def test_update_replaces_the_set_of_identities(inbox: Inbox, api: Api) -> None:
    # given
    contact = await inbox.contact("Priya Shah", identities=PRIYA)
    rows_before = await _identity_rows(api, contact["id"])
    # when: keep the email, drop WhatsApp, add SMS
    payload = await inbox.ok(
        CONTACT_UPDATE,
        {
            "input": {
                "id": contact["id"],
                "identities": [
                    {"channel": "EMAIL", "address": "Priya@Acme.Example"},
                    {"channel": "SMS", "address": "+91 98200 11111"},
                ],
            }
        },
        "contactUpdate",
    )
    # then
    assert _pairs(payload["contact"]["identities"]) == {("EMAIL", "priya@acme.example"), ("SMS", "+919820011111")}
    rows_after = await _identity_rows(api, contact["id"])
    assert set(rows_after) == {("EMAIL", "priya@acme.example"), ("SMS", "+919820011111")}
    assert rows_after[("EMAIL", "priya@acme.example")] == rows_before[("EMAIL", "priya@acme.example")]  # kept
    # and the dropped address is free for another contact
    other = await inbox.contact("New Owner", identities=[{"channel": "WHATSAPP", "address": "+919820054321"}])
    assert _pairs(other["identities"]) == {("WHATSAPP", "+919820054321")}


async def test_update_without_identities_leaves_them_and_changes_only_given_fields(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    contact = await inbox.contact("Priya Shah", title="Manager", customerId=customer["id"], identities=PRIYA)
    # when
    payload = await inbox.ok(CONTACT_UPDATE, {"input": {"id": contact["id"], "name": "Priya S. Shah"}}, "contactUpdate")
    # then
    assert payload["contact"]["name"] == "Priya S. Shah"
    assert payload["contact"]["title"] == "Manager"
    assert payload["contact"]["customer"] == {"id": customer["id"]}
    assert _pairs(payload["contact"]["identities"]) == _pairs(PRIYA)


async def test_update_with_null_identities_removes_them_all(inbox: Inbox) -> None:
    # given
    contact = await inbox.contact("Priya Shah", identities=PRIYA)
    # when
    payload = await inbox.ok(
        CONTACT_UPDATE, {"input": {"id": contact["id"], "identities": None, "title": None}}, "contactUpdate"
    )
    # then
    assert payload["contact"]["identities"] == []
    assert payload["contact"]["title"] is None


async def test_update_to_an_address_of_another_contact_is_taken(inbox: Inbox) -> None:
    # given
    await inbox.contact("Priya Shah", identities=PRIYA)
    other = await inbox.contact("Rahul Mehta", identities=[{"channel": "EMAIL", "address": "rahul@acme.example"}])
    # when
    result = await inbox.gql(
        CONTACT_UPDATE,
        {
            "input": {
                "id": other["id"],
                "identities": [
                    {"channel": "EMAIL", "address": "rahul@acme.example"},
                    {"channel": "WHATSAPP", "address": "+919820054321"},
                ],
            }
        },
    )
    # then
    assert _codes(result["data"]["contactUpdate"]) == [(["identities", "1", "address"], "TAKEN")]
    assert (await _contact(inbox, other["id"]))["identities"] == [("EMAIL", "rahul@acme.example")]


async def test_a_merged_away_contact_cannot_be_updated(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    # when
    result = await inbox.gql(CONTACT_UPDATE, {"input": {"id": d["merged"], "name": "Revived"}})
    # then
    assert _codes(result["data"]["contactUpdate"]) == [(["id"], "INVALID")]
    assert (await _contact(inbox, d["merged"]))["name"] == "P. Shah"


async def test_update_name_to_null_is_invalid(inbox: Inbox) -> None:
    # given
    contact = await inbox.contact("Priya Shah")
    # when
    result = await inbox.gql(CONTACT_UPDATE, {"input": {"id": contact["id"], "name": None}})
    # then
    assert _codes(result["data"]["contactUpdate"]) == [(["name"], "INVALID")]
    assert (await _contact(inbox, contact["id"]))["name"] == "Priya Shah"


# -- contactMerge / contactUnmerge ---------------------------------------------------------


async def test_merge_moves_identities_threads_and_messages(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    # when
    result = await inbox.gql(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]})
    # then
    payload = result["data"]["contactMerge"]
    assert payload["userErrors"] == []
    assert payload["keptContact"]["id"] == d["kept"]
    assert payload["keptContact"]["mergedInto"] is None
    assert _pairs(payload["keptContact"]["identities"]) == {
        ("EMAIL", "priya@acme.example"),
        ("EMAIL", "p.shah@gmail.example"),
        ("WHATSAPP", "+919820054321"),
    }
    assert payload["mergedContact"] == {"id": d["merged"], "mergedInto": {"id": d["kept"]}, "identities": []}
    kept = {"id": d["kept"]}
    threads = [await _thread(inbox, thread_id) for thread_id in d["threads"]]
    assert [thread["contact"] for thread in threads] == [kept, kept, kept]
    message_contacts = [contact for thread in threads for contact in thread["messages"].values()]
    # every message that carried a contact now carries the kept one; the INTERNAL one carries none
    assert sorted(message_contacts, key=lambda contact: contact is None) == [kept] * 5 + [None]
    assert await _names(inbox) == ["Priya Shah"]
    assert await _names(inbox, "gmail") == ["Priya Shah"]
    assert (await _contact(inbox, d["merged"]))["mergedInto"] == kept


async def test_unmerge_restores_everything_exactly(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    before = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    merged_state = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    # when
    result = await inbox.gql(CONTACT_UNMERGE, {"id": d["merged"]})
    # then
    payload = result["data"]["contactUnmerge"]
    assert payload["userErrors"] == []
    assert payload["mergedContact"]["mergedInto"] is None
    assert payload["keptContact"]["id"] == d["kept"]
    assert merged_state != before
    assert await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"]) == before
    assert await _names(inbox) == ["P. Shah", "Priya Shah"]


async def test_unmerge_restores_the_merged_contacts_messages_on_the_kept_contacts_thread(inbox: Inbox) -> None:
    # given: a message from the duplicate sits on a thread that later moved to the kept contact
    await configure_channels(inbox, "EMAIL")
    kept = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.example"}])
    merged = await inbox.contact("P. Shah", identities=[{"channel": "EMAIL", "address": "p.shah@gmail.example"}])
    thread = await inbox.thread("Quote", contactId=merged["id"])
    await inbox.send(thread["id"], "From the duplicate", channel="EMAIL", subject="Quote")
    await inbox.ok(
        "mutation($input: ThreadUpdateInput!) { threadUpdate(input: $input) { userErrors { field code } } }",
        {"input": {"id": thread["id"], "contactId": kept["id"]}},
        "threadUpdate",
    )
    await inbox.send(thread["id"], "To the right person", channel="EMAIL", subject="Quote")
    before = await _snapshot(inbox, [kept["id"], merged["id"]], [thread["id"]])
    # when
    await inbox.ok(CONTACT_MERGE, {"kept": kept["id"], "merged": merged["id"]}, "contactMerge")
    during = await _thread(inbox, thread["id"])
    await inbox.ok(CONTACT_UNMERGE, {"id": merged["id"]}, "contactUnmerge")
    # then
    assert list(before["threads"][thread["id"]]["messages"].values()) == [{"id": merged["id"]}, {"id": kept["id"]}]
    assert list(during["messages"].values()) == [{"id": kept["id"]}, {"id": kept["id"]}]
    assert await _snapshot(inbox, [kept["id"], merged["id"]], [thread["id"]]) == before


async def test_a_contact_can_be_merged_again_after_an_unmerge(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    await inbox.ok(CONTACT_UNMERGE, {"id": d["merged"]}, "contactUnmerge")
    # when
    payload = await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    # then
    assert payload["mergedContact"]["mergedInto"] == {"id": d["kept"]}
    assert len(payload["keptContact"]["identities"]) == 3


async def test_merging_a_contact_into_itself_is_invalid(inbox: Inbox) -> None:
    # given
    contact = await inbox.contact("Priya Shah", identities=PRIYA)
    # when
    result = await inbox.gql(CONTACT_MERGE, {"kept": contact["id"], "merged": contact["id"]})
    # then
    payload = result["data"]["contactMerge"]
    assert payload["keptContact"] is None
    assert _codes(payload) == [(["mergedContactId"], "INVALID")]
    assert await _contact(inbox, contact["id"]) == {
        "id": contact["id"],
        "name": "Priya Shah",
        "mergedInto": None,
        "identities": sorted(_pairs(PRIYA)),
    }


async def test_merging_an_already_merged_contact_is_invalid(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    third = await inbox.contact("Priya (old)", identities=[{"channel": "SMS", "address": "+919820099999"}])
    await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    before = await _snapshot(inbox, [d["kept"], d["merged"], third["id"]], d["threads"])
    # when
    as_merged = await inbox.gql(CONTACT_MERGE, {"kept": third["id"], "merged": d["merged"]})
    as_kept = await inbox.gql(CONTACT_MERGE, {"kept": d["merged"], "merged": third["id"]})
    # then
    assert _codes(as_merged["data"]["contactMerge"]) == [(["mergedContactId"], "INVALID")]
    assert _codes(as_kept["data"]["contactMerge"]) == [(["keptContactId"], "INVALID")]
    assert await _snapshot(inbox, [d["kept"], d["merged"], third["id"]], d["threads"]) == before


async def test_unmerging_a_contact_that_was_never_merged_is_invalid(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    before = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    # when
    never = await inbox.gql(CONTACT_UNMERGE, {"id": d["merged"]})
    kept_side = await inbox.gql(CONTACT_UNMERGE, {"id": d["kept"]})
    # then
    assert _codes(never["data"]["contactUnmerge"]) == [(["contactId"], "INVALID")]
    assert _codes(kept_side["data"]["contactUnmerge"]) == [(["contactId"], "INVALID")]
    assert await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"]) == before


async def test_unmerging_twice_is_invalid(inbox: Inbox) -> None:
    # given
    d = await _duplicates(inbox)
    await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    await inbox.ok(CONTACT_UNMERGE, {"id": d["merged"]}, "contactUnmerge")
    # when
    result = await inbox.gql(CONTACT_UNMERGE, {"id": d["merged"]})
    # then
    assert _codes(result["data"]["contactUnmerge"]) == [(["contactId"], "INVALID")]


async def test_merge_and_unmerge_of_unknown_ids_are_not_found(inbox: Inbox) -> None:
    # given
    contact = await inbox.contact("Priya Shah", identities=PRIYA)
    unknown = str(GlobalID("Contact", str(uuid.uuid4())))
    # when
    merged_unknown = await inbox.gql(CONTACT_MERGE, {"kept": contact["id"], "merged": unknown})
    kept_unknown = await inbox.gql(CONTACT_MERGE, {"kept": "garbage", "merged": contact["id"]})
    unmerge_unknown = await inbox.gql(CONTACT_UNMERGE, {"id": unknown})
    # then
    assert _codes(merged_unknown["data"]["contactMerge"]) == [(["mergedContactId"], "NOT_FOUND")]
    assert _codes(kept_unknown["data"]["contactMerge"]) == [(["keptContactId"], "NOT_FOUND")]
    assert _codes(unmerge_unknown["data"]["contactUnmerge"]) == [(["contactId"], "NOT_FOUND")]
    assert (await _contact(inbox, contact["id"]))["identities"] == sorted(_pairs(PRIYA))


async def test_merge_with_a_foreign_contact_is_not_found_and_changes_nothing(inbox: Inbox, api: Api) -> None:
    # given
    globex_token, foreign = await _globex_contact(api)
    d = await _duplicates(inbox)
    before = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    foreign_before = await _contact(inbox, foreign, globex_token)
    # when
    foreign_merged = await inbox.gql(CONTACT_MERGE, {"kept": d["kept"], "merged": foreign})
    foreign_kept = await inbox.gql(CONTACT_MERGE, {"kept": foreign, "merged": d["merged"]})
    foreign_unmerge = await inbox.gql(CONTACT_UNMERGE, {"id": foreign})
    # then
    assert _codes(foreign_merged["data"]["contactMerge"]) == [(["mergedContactId"], "NOT_FOUND")]
    assert _codes(foreign_kept["data"]["contactMerge"]) == [(["keptContactId"], "NOT_FOUND")]
    assert _codes(foreign_unmerge["data"]["contactUnmerge"]) == [(["contactId"], "NOT_FOUND")]
    assert await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"]) == before
    assert await _contact(inbox, foreign, globex_token) == foreign_before
    assert foreign_before["mergedInto"] is None


@pytest.mark.parametrize("role", ["support", "validator", "viewer"])
async def test_merge_is_forbidden_below_manager(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    d = await _duplicates(inbox)
    token = await _token_for(api, org, role)
    before = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    # when
    result = await api.gql(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, token=token)
    # then
    assert result["data"] is None
    assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    assert await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"]) == before


@pytest.mark.parametrize("role", ["support", "validator", "viewer"])
async def test_unmerge_is_forbidden_below_manager(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    d = await _duplicates(inbox)
    await inbox.ok(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, "contactMerge")
    token = await _token_for(api, org, role)
    before = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    # when
    result = await api.gql(CONTACT_UNMERGE, {"id": d["merged"]}, token=token)
    # then
    assert result["data"] is None
    assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    assert await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"]) == before
    assert before["contacts"][d["merged"]]["mergedInto"] == {"id": d["kept"]}


async def test_a_manager_may_merge_and_unmerge(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    d = await _duplicates(inbox)
    token = await _token_for(api, org, "manager")
    before = await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"])
    # when
    merged = await api.gql(CONTACT_MERGE, {"kept": d["kept"], "merged": d["merged"]}, token=token)
    unmerged = await api.gql(CONTACT_UNMERGE, {"id": d["merged"]}, token=token)
    # then
    assert merged["data"]["contactMerge"]["userErrors"] == []
    assert merged["data"]["contactMerge"]["mergedContact"]["mergedInto"] == {"id": d["kept"]}
    assert unmerged["data"]["contactUnmerge"]["userErrors"] == []
    assert await _snapshot(inbox, [d["kept"], d["merged"]], d["threads"]) == before


@pytest.mark.parametrize("role", ["validator", "viewer"])
async def test_readers_may_not_create_or_update_contacts(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    contact = await inbox.contact("Priya Shah", identities=PRIYA)
    token = await _token_for(api, org, role)
    before = await _count_contacts(api, org)
    # when
    created = await api.gql(CONTACT_CREATE, {"input": {"name": "Sneaky"}}, token=token)
    updated = await api.gql(CONTACT_UPDATE, {"input": {"id": contact["id"], "identities": []}}, token=token)
    # then
    assert [error["extensions"]["code"] for error in created["errors"]] == ["FORBIDDEN"]
    assert [error["extensions"]["code"] for error in updated["errors"]] == ["FORBIDDEN"]
    assert await _count_contacts(api, org) == before
    assert (await _contact(inbox, contact["id"]))["identities"] == sorted(_pairs(PRIYA))


# -- contacts ------------------------------------------------------------------------


async def test_search_matches_a_name_or_an_identity_address(inbox: Inbox) -> None:
    # given
    await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.example"}])
    await inbox.contact("Rahul Mehta", identities=[{"channel": "WHATSAPP", "address": "+919820054321"}])
    await inbox.contact("Anna Berg", identities=[{"channel": "WEB_CHAT", "address": "visitor-77"}])
    # when / then
    assert await _names(inbox, "RAHUL") == ["Rahul Mehta"]  # name, any case
    assert await _names(inbox, "priya@acme") == ["Priya Shah"]  # email address
    assert await _names(inbox, "98200543") == ["Rahul Mehta"]  # phone number
    assert await _names(inbox, "visitor") == ["Anna Berg"]  # web-chat id
    assert await _names(inbox, "a") == ["Anna Berg", "Priya Shah", "Rahul Mehta"]
    assert await _names(inbox, "nobody") == []
    assert await _names(inbox) == ["Anna Berg", "Priya Shah", "Rahul Mehta"]


async def test_contacts_are_paginated_by_name(inbox: Inbox) -> None:
    # given
    for name in ["Cara", "Abe", "Bea"]:
        await inbox.contact(name)
    # when
    first = (await inbox.gql(CONTACTS, {"first": 2}))["data"]["contacts"]
    rest = (await inbox.gql(CONTACTS, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["data"]["contacts"]
    # then
    assert [e["node"]["name"] for e in first["edges"]] == ["Abe", "Bea"]
    assert (first["totalCount"], first["pageInfo"]["hasNextPage"]) == (3, True)
    assert [e["node"]["name"] for e in rest["edges"]] == ["Cara"]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_contacts_do_not_show_another_organizations_contacts(inbox: Inbox, api: Api) -> None:
    # given
    await _globex_contact(api)
    await inbox.contact("Priya Shah", identities=PRIYA)
    # when / then
    assert await _names(inbox) == ["Priya Shah"]
    assert await _names(inbox, "hank") == []


async def test_contacts_filtered_by_customer(inbox: Inbox, api: Api) -> None:
    # given
    acme = await inbox.customer("Acme Imports")
    globe = await inbox.customer("Globe Freight")
    await inbox.contact("Priya Shah", customerId=acme["id"])
    await inbox.contact("Rahul Mehta", customerId=acme["id"])
    await inbox.contact("Gita Rao", customerId=globe["id"])
    await inbox.contact("Loose End")
    globex_token, _ = await _globex_contact(api)
    foreign = await api.gql(
        'mutation { customerCreate(input: {name: "Globex"}) { customer { id } } }', token=globex_token
    )
    foreign_id = foreign["data"]["customerCreate"]["customer"]["id"]

    async def names(customer_id: str) -> list[str]:
        result = await inbox.gql(CONTACTS_OF_CUSTOMER, {"customerId": customer_id})
        assert "errors" not in result, result
        contacts = result["data"]["contacts"]
        assert contacts["totalCount"] == len(contacts["edges"])
        return [edge["node"]["name"] for edge in contacts["edges"]]

    # when / then
    assert await names(acme["id"]) == ["Priya Shah", "Rahul Mehta"]
    assert await names(globe["id"]) == ["Gita Rao"]
    assert await names(foreign_id) == []  # another organization's customer matches nothing, not everything
    assert await names("garbage") == []
