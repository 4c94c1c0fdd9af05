"""The contact resolver across channels (banxway.resolvers.contact_resolver): the same E.164 number on WhatsApp, SMS
and voice is one contact (through the real webhook endpoints), emails match in any case, and two contacts sharing
an address give one merge suggestion (accept merges, dismiss hides), per organization, for CONTACT_MERGE roles."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from banxway.db.models import Contact, ContactIdentity, ContactMergeSuggestion
from banxway.db.session import system_session
from banxway.enums import Channel
from banxway.resolvers.contact_resolver import link_address, resolve_contact
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CUSTOMER_PHONE,
    SMS_NUMBER,
    WHATSAPP_NUMBER,
    configure_exotel,
    post_form,
    post_json,
    url_of,
)
from tests.standins.providers import (
    StandIn,
    exotel_call_status,
    exotel_sms_incoming,
    exotel_whatsapp_incoming,
)

SUGGESTIONS = """
query($status: ContactMergeSuggestionStatus) {
  contactMergeSuggestions(status: $status) {
    id address status contact { id name } otherContact { id name }
  }
}
"""
ACCEPT = """
mutation($id: ID!) {
  contactMergeSuggestionAccept(input: {id: $id}) {
    suggestion { id status } keptContact { id name identities { channel address } }
    userErrors { field code message }
  }
}
"""
DISMISS = """
mutation($id: ID!) {
  contactMergeSuggestionDismiss(input: {id: $id}) { suggestion { id status } userErrors { field code message } }
}
"""
CONTACT = "query($id: ID!) { node(id: $id) { ... on Contact { id name mergedInto { id } } } }"


async def _whatsapp_in(inbox: Inbox, configured: dict, sid: str, phone: str = CUSTOMER_PHONE) -> None:
    payload = exotel_whatsapp_incoming(sid=sid, from_=phone, to=WHATSAPP_NUMBER, body="Where is my container?")
    response = await post_json(inbox.api.http, url_of(configured, "/whatsapp"), payload)
    assert response.status_code == 200, response.text


async def _sms_in(inbox: Inbox, configured: dict, sid: str, phone: str) -> None:
    form = exotel_sms_incoming(sms_sid=sid, from_=phone, to=SMS_NUMBER, body="Any update?")
    response = await post_form(inbox.api.http, url_of(configured, "/sms"), form)
    assert response.status_code == 200, response.text


async def _call_in(inbox: Inbox, configured: dict, sid: str, phone: str) -> None:
    form = exotel_call_status(call_sid=sid, status="completed", from_=phone, to=WHATSAPP_NUMBER, duration=30)
    form["Direction"] = "incoming"
    response = await post_form(inbox.api.http, url_of(configured, "/voice"), form)
    assert response.status_code == 200, response.text


async def _contacts_with(state: AppState, org: Org, address: str) -> dict:
    """{contact id: sorted channels} of the organization's identities on `address`."""
    async with system_session(state.sessionmaker) as session:
        rows = await session.execute(
            select(ContactIdentity.contact_id, ContactIdentity.channel).where(
                ContactIdentity.organization_id == org.id, ContactIdentity.address == address
            )
        )
        found: dict = {}
        for contact_id, channel in rows:
            found.setdefault(contact_id, []).append(channel.name)
        return {key: sorted(value) for key, value in found.items()}


async def _suggestion_count(state: AppState) -> int:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(ContactMergeSuggestion))


async def _sharing(inbox: Inbox) -> tuple[dict, dict]:
    """Two contacts with the same number: one's WhatsApp, the other's SMS."""
    first = await inbox.contact("Priya Shah", identities=[{"channel": "WHATSAPP", "address": CUSTOMER_PHONE}])
    second = await inbox.contact("P. Shah (SMS)", identities=[{"channel": "SMS", "address": CUSTOMER_PHONE}])
    return first, second


# -- one person across channels -------------------------------------------------------------------------------


async def test_the_same_number_on_whatsapp_sms_and_voice_is_one_contact(
    inbox: Inbox, provider: StandIn, state: AppState, org: Org
) -> None:
    # given an Exotel integration
    configured = await configure_exotel(inbox, provider)
    # when the customer calls, then writes on WhatsApp, then by SMS (Exotel's national form, 0 + 10 digits)
    await _call_in(inbox, configured, "call-1", CUSTOMER_PHONE)
    await _whatsapp_in(inbox, configured, "wa-1")
    await _sms_in(inbox, configured, "sms-1", "0" + CUSTOMER_PHONE.removeprefix("+91"))
    # then: one contact with three identities, and nothing to suggest
    found = await _contacts_with(state, org, CUSTOMER_PHONE)
    assert list(found.values()) == [["SMS", "VOICE", "WHATSAPP"]], found
    async with system_session(state.sessionmaker) as session:
        assert (
            await session.scalar(select(func.count()).select_from(Contact).where(Contact.organization_id == org.id))
            == 1
        )
    assert await _suggestion_count(state) == 0


async def test_an_email_matches_in_any_case(inbox: Inbox, state: AppState, settings: Settings, org: Org) -> None:
    # given a contact with an email
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.example"}])
    # when the resolver is given the same email in another case (as the web chat gives a visitor's email)
    async with system_context(state, settings).for_organization(org.id).transaction() as session:
        found = await resolve_contact(session, org.id, Channel.EMAIL, "  Priya@ACME.Example ", name="Visitor")
        found_id = found.id
    # then it is the existing contact, and no identity was added
    assert found_id == local_uuid(contact["id"])
    assert list((await _contacts_with(state, org, "priya@acme.example")).values()) == [["EMAIL"]]


async def test_a_new_email_creates_one_lower_cased_contact(
    inbox: Inbox, state: AppState, settings: Settings, org: Org
) -> None:
    # when an unknown email is resolved twice in different cases
    ids = []
    for address in ("Meera@Acme.Example", "meera@acme.example"):
        async with system_context(state, settings).for_organization(org.id).transaction() as session:
            ids.append((await resolve_contact(session, org.id, Channel.EMAIL, address, name="Meera")).id)
    # then one contact, stored lower-cased
    assert ids[0] == ids[1]
    assert list((await _contacts_with(state, org, "meera@acme.example")).values()) == [["EMAIL"]]


async def test_a_visitor_giving_a_known_email_finds_that_contact_and_suggests_a_merge(
    inbox: Inbox, state: AppState, settings: Settings, org: Org
) -> None:
    # given a contact with an email, and a web chat visitor's contact
    known = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.example"}])
    visitor = await inbox.contact("Visitor", identities=[{"channel": "WEB_CHAT", "address": "visitor-1"}])
    # when the visitor gives the known email (in another case), then a new one
    system = system_context(state, settings).for_organization(org.id)
    async with system.transaction() as session:
        owner = await link_address(session, org.id, local_uuid(visitor["id"]), Channel.EMAIL, "PRIYA@acme.example")
        owner_id = owner.id
    async with system.transaction() as session:
        added = await link_address(session, org.id, local_uuid(visitor["id"]), Channel.EMAIL, "v@elsewhere.example")
        added_id = added.id
    # then the known contact owns the conversation, a merge is suggested (not done), and the new email is the visitor's
    assert owner_id == local_uuid(known["id"])
    [suggestion] = (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"]
    assert suggestion["address"] == "priya@acme.example"
    assert {suggestion["contact"]["id"], suggestion["otherContact"]["id"]} == {known["id"], visitor["id"]}
    assert added_id == local_uuid(visitor["id"])
    assert await _contacts_with(state, org, "v@elsewhere.example") == {local_uuid(visitor["id"]): ["EMAIL"]}


# -- merge suggestions --------------------------------------------------------------------------------------------


async def test_two_contacts_sharing_a_number_give_one_suggestion_and_accept_merges(
    inbox: Inbox, provider: StandIn, state: AppState, org: Org
) -> None:
    # given two contacts with the same number
    configured = await configure_exotel(inbox, provider)
    first, second = await _sharing(inbox)
    # when the number calls (no VOICE identity yet: the older contact gets it), then writes by SMS twice
    await _call_in(inbox, configured, "call-1", CUSTOMER_PHONE)
    await _sms_in(inbox, configured, "sms-1", CUSTOMER_PHONE)
    await _sms_in(inbox, configured, "sms-2", CUSTOMER_PHONE)
    # then: not merged, one suggestion (idempotent), the call on the older contact
    found = await _contacts_with(state, org, CUSTOMER_PHONE)
    assert found == {local_uuid(first["id"]): ["VOICE", "WHATSAPP"], local_uuid(second["id"]): ["SMS"]}
    [suggestion] = (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"]
    assert suggestion["address"] == CUSTOMER_PHONE and suggestion["status"] == "OPEN"
    assert {suggestion["contact"]["id"], suggestion["otherContact"]["id"]} == {first["id"], second["id"]}
    assert await _suggestion_count(state) == 1
    # when accepted
    payload = await inbox.ok(ACCEPT, {"id": suggestion["id"]}, "contactMergeSuggestionAccept")
    # then the older contact is kept with every identity, the other merged into it
    assert payload["suggestion"]["status"] == "ACCEPTED"
    assert payload["keptContact"]["id"] == first["id"]
    assert sorted(i["channel"] for i in payload["keptContact"]["identities"]) == ["SMS", "VOICE", "WHATSAPP"]
    merged = (await inbox.gql(CONTACT, {"id": second["id"]}))["data"]["node"]
    assert merged["mergedInto"] == {"id": first["id"]}
    assert (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"] == []
    accepted = (await inbox.gql(SUGGESTIONS, {"status": "ACCEPTED"}))["data"]["contactMergeSuggestions"]
    assert [s["id"] for s in accepted] == [suggestion["id"]]
    # and accepting again is refused
    again = (await inbox.gql(ACCEPT, {"id": suggestion["id"]}))["data"]["contactMergeSuggestionAccept"]
    assert [(e["code"], e["field"]) for e in again["userErrors"]] == [("INVALID_TRANSITION", ["id"])]


async def test_dismiss_hides_the_suggestion_and_it_is_not_made_again(
    inbox: Inbox, provider: StandIn, state: AppState, org: Org
) -> None:
    # given a suggestion
    configured = await configure_exotel(inbox, provider)
    _first, second = await _sharing(inbox)
    await _call_in(inbox, configured, "call-1", CUSTOMER_PHONE)
    [suggestion] = (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"]
    # when dismissed
    payload = await inbox.ok(DISMISS, {"id": suggestion["id"]}, "contactMergeSuggestionDismiss")
    # then it leaves the open list, the contacts stay apart, and more messages do not suggest it again
    assert payload["suggestion"]["status"] == "DISMISSED"
    assert (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"] == []
    await _sms_in(inbox, configured, "sms-1", CUSTOMER_PHONE)
    assert (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"] == []
    assert await _suggestion_count(state) == 1
    assert (await inbox.gql(CONTACT, {"id": second["id"]}))["data"]["node"]["mergedInto"] is None
    dismissed = (await inbox.gql(SUGGESTIONS, {"status": "DISMISSED"}))["data"]["contactMergeSuggestions"]
    assert [s["id"] for s in dismissed] == [suggestion["id"]]


async def test_tenancy_another_organizations_number_and_suggestions(
    inbox: Inbox, provider: StandIn, state: AppState, api: Api, org: Org
) -> None:
    # given a suggestion in this organization, and another organization with a contact on the same number
    configured = await configure_exotel(inbox, provider)
    await _sharing(inbox)
    await _call_in(inbox, configured, "call-1", CUSTOMER_PHONE)
    [suggestion] = (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"]
    other = await api.create_org("globex")
    other_token = await api.token(other.admin_email)
    other_inbox = Inbox(api, other, other_token)
    theirs = await other_inbox.contact("Globex's Priya", identities=[{"channel": "SMS", "address": CUSTOMER_PHONE}])
    # when the other organization resolves the number
    async with system_context(state).for_organization(other.id).transaction() as session:
        found = await resolve_contact(session, other.id, Channel.WHATSAPP, CUSTOMER_PHONE)
        found_id = found.id
    # then it is their own contact, and they see and touch none of our suggestions
    assert found_id == local_uuid(theirs["id"])
    assert (await other_inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"] == []
    for mutation, field in ((ACCEPT, "contactMergeSuggestionAccept"), (DISMISS, "contactMergeSuggestionDismiss")):
        payload = (await other_inbox.gql(mutation, {"id": suggestion["id"]}))["data"][field]
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("NOT_FOUND", ["id"])]
    assert [s["status"] for s in (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"]] == ["OPEN"]


@pytest.mark.parametrize("role", ["support", "validator", "viewer"])
async def test_accept_and_dismiss_need_contact_merge(
    inbox: Inbox, provider: StandIn, api: Api, org: Org, role: str
) -> None:
    # given a suggestion, and a member without CONTACT_MERGE
    configured = await configure_exotel(inbox, provider)
    await _sharing(inbox)
    await _call_in(inbox, configured, "call-1", CUSTOMER_PHONE)
    [suggestion] = (await inbox.gql(SUGGESTIONS))["data"]["contactMergeSuggestions"]
    await api.create_user(org, f"{role}@acme.test", role)
    token = await api.token(f"{role}@acme.test")
    # when they accept or dismiss
    for mutation in (ACCEPT, DISMISS):
        result = await api.gql(mutation, {"id": suggestion["id"]}, token=token)
        # then forbidden, and it stays open (they may still read it)
        assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    listed = (await api.gql(SUGGESTIONS, token=token))["data"]["contactMergeSuggestions"]
    assert [s["status"] for s in listed] == ["OPEN"]
