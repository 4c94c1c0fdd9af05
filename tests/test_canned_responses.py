"""Canned responses (banxway.resolvers.canned_responses): shared ones managed by ADMIN and MANAGER, personal ones
by their owner and seen by nobody else, names and shortcuts unique per scope, templates checked when saved, and
rendering every variable from a thread (empty when it has no value)."""

from __future__ import annotations

from tests.inbox_helpers import Inbox, _foreign, _member

FIELDS = "id name shortcut body channel shared"
CREATE = f"""
mutation($input: CannedResponseCreateInput!) {{
  cannedResponseCreate(input: $input) {{ cannedResponse {{ {FIELDS} }} userErrors {{ field code message }} }}
}}
"""
UPDATE = f"""
mutation($input: CannedResponseUpdateInput!) {{
  cannedResponseUpdate(input: $input) {{ cannedResponse {{ {FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DELETE = "mutation($id: ID!) { cannedResponseDelete(id: $id) { deletedId userErrors { field code message } } }"
LIST = f"query($search: String, $channel: Channel) {{ cannedResponses(search: $search, channel: $channel) {{ {FIELDS} }} }}"
RENDER = "query($id: ID!, $threadId: ID) { cannedResponseRender(id: $id, threadId: $threadId) }"


def _errors(result: dict, field: str) -> list[tuple[str, list[str] | None]]:
    assert "errors" not in result, result
    return [(error["code"], error["field"]) for error in result["data"][field]["userErrors"]]


async def _create(inbox: Inbox, token: str | None = None, **values: object) -> dict:
    values.setdefault("body", "Hello {{contact.first_name}}")
    payload = await inbox.ok(CREATE, {"input": values}, "cannedResponseCreate", token)
    return payload["cannedResponse"]


async def test_shared_responses_are_created_listed_updated_and_deleted(inbox: Inbox) -> None:
    # given a shared response made by the admin
    quote = await _create(inbox, name="Quote follow-up", shortcut="Quote", channel="EMAIL")
    assert (quote["shortcut"], quote["shared"], quote["channel"]) == ("/quote", True, "EMAIL")
    anywhere = await _create(inbox, name="ack", body="Noted, {{agent.name}}.")
    # then everyone sees it; `channel` keeps those of the channel and those of every channel
    viewer = await _member(inbox, "viewer")
    listed = (await inbox.gql(LIST, token=viewer.token))["data"]["cannedResponses"]
    assert [r["name"] for r in listed] == ["ack", "Quote follow-up"]
    on_sms = (await inbox.gql(LIST, {"channel": "SMS"}))["data"]["cannedResponses"]
    assert [r["id"] for r in on_sms] == [anywhere["id"]]
    found = (await inbox.gql(LIST, {"search": "QUOTE"}))["data"]["cannedResponses"]
    assert [r["id"] for r in found] == [quote["id"]]
    # when it is updated, and the channel cleared
    payload = await inbox.ok(
        UPDATE,
        {"input": {"id": quote["id"], "body": "Any news, {{contact.name}}?", "channel": None}},
        "cannedResponseUpdate",
    )
    assert payload["cannedResponse"]["body"] == "Any news, {{contact.name}}?"
    assert payload["cannedResponse"]["channel"] is None
    assert payload["cannedResponse"]["shortcut"] == "/quote"
    # and deleted
    assert (await inbox.ok(DELETE, {"id": quote["id"]}, "cannedResponseDelete"))["deletedId"] == quote["id"]
    assert [r["id"] for r in (await inbox.gql(LIST))["data"]["cannedResponses"]] == [anywhere["id"]]


async def test_names_and_shortcuts_are_unique_per_scope_and_values_are_checked(inbox: Inbox) -> None:
    await _create(inbox, name="Quote", shortcut="/quote")
    taken = await inbox.gql(CREATE, {"input": {"name": "QUOTE ", "body": "x"}})
    assert _errors(taken, "cannedResponseCreate") == [("TAKEN", ["name"])]
    taken = await inbox.gql(CREATE, {"input": {"name": "Other", "shortcut": "/QUOTE", "body": "x"}})
    assert _errors(taken, "cannedResponseCreate") == [("TAKEN", ["shortcut"])]
    # a personal one may share a shared one's name and shortcut
    mine = await _create(inbox, name="Quote", shortcut="/quote", personal=True)
    assert mine["shared"] is False
    bad = await inbox.gql(CREATE, {"input": {"name": "x", "shortcut": "/no spaces", "body": "x"}})
    assert _errors(bad, "cannedResponseCreate") == [("INVALID", ["shortcut"])]
    long = await inbox.gql(CREATE, {"input": {"name": "x", "body": "a" * 10_001}})
    assert _errors(long, "cannedResponseCreate") == [("TOO_LONG", ["body"])]
    empty = await inbox.gql(CREATE, {"input": {"name": " ", "body": "x"}})
    assert _errors(empty, "cannedResponseCreate") == [("INVALID", ["name"])]


async def test_an_unknown_variable_is_refused_when_saved(inbox: Inbox) -> None:
    result = await inbox.gql(CREATE, {"input": {"name": "x", "body": "Hi {{contact.phone}} {{ __class__ }}"}})
    [error] = result["data"]["cannedResponseCreate"]["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["body"])
    assert "contact.phone" in error["message"]
    response = await _create(inbox, name="ok", body="Hi {{ contact.name }}")
    result = await inbox.gql(UPDATE, {"input": {"id": response["id"], "body": "{{thread.secret}}"}})
    assert _errors(result, "cannedResponseUpdate") == [("INVALID", ["body"])]


async def test_personal_responses_are_seen_and_managed_by_their_owner_only(inbox: Inbox) -> None:
    # given a support agent's own response and a shared one
    support = await _member(inbox, "support", "sam@acme.test")
    other = await _member(inbox, "support", "ola@acme.test")
    shared = await _create(inbox, name="Shared")
    mine = await _create(inbox, support.token, name="Mine", personal=True)
    # then the owner sees both, a colleague and the admin only the shared one
    names = [r["name"] for r in (await inbox.gql(LIST, token=support.token))["data"]["cannedResponses"]]
    assert names == ["Mine", "Shared"]
    for token in (other.token, None):
        assert [r["name"] for r in (await inbox.gql(LIST, token=token))["data"]["cannedResponses"]] == ["Shared"]
    # and to anyone else it does not exist
    for token in (other.token, None):
        result = await inbox.gql(UPDATE, {"input": {"id": mine["id"], "name": "Taken over"}}, token=token)
        assert _errors(result, "cannedResponseUpdate") == [("NOT_FOUND", ["id"])]
        result = await inbox.gql(DELETE, {"id": mine["id"]}, token=token)
        assert _errors(result, "cannedResponseDelete") == [("NOT_FOUND", ["id"])]
        assert (await inbox.gql(RENDER, {"id": mine["id"]}, token=token))["data"]["cannedResponseRender"] is None
    # the owner changes and deletes it
    await inbox.ok(UPDATE, {"input": {"id": mine["id"], "name": "Still mine"}}, "cannedResponseUpdate", support.token)
    await inbox.ok(DELETE, {"id": mine["id"]}, "cannedResponseDelete", support.token)
    # but a support agent may not change or make shared ones
    for query, variables in (
        (UPDATE, {"input": {"id": shared["id"], "name": "Mine now"}}),
        (DELETE, {"id": shared["id"]}),
        (CREATE, {"input": {"name": "New shared", "body": "x"}}),
    ):
        result = await inbox.gql(query, variables, token=support.token)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result


async def test_roles(inbox: Inbox) -> None:
    manager = await _member(inbox, "manager")
    viewer = await _member(inbox, "viewer")
    validator = await _member(inbox, "validator")
    await _create(inbox, manager.token, name="By the manager")
    await _create(inbox, validator.token, name="Validator's own", personal=True)  # NOTE_ADD
    for personal in (True, False):
        result = await inbox.gql(CREATE, {"input": {"name": "x", "body": "x", "personal": personal}}, viewer.token)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result


async def test_render_fills_every_variable(inbox: Inbox) -> None:
    # given a thread with a contact, a customer and a shipment
    customer = await inbox.customer("Acme Imports")
    contact = await inbox.contact("Priya  Shah", customerId=customer["id"])
    shipment = await inbox.shipment(
        "SHP-42", eta="2026-12-04T10:00:00+00:00", containerNumbers=["CSQU3054383", "MSCU1234566"]
    )
    thread = await inbox.thread(
        "Rates for December", contactId=contact["id"], customerId=customer["id"], shipmentId=shipment["id"]
    )
    me = (await inbox.gql("{ me { name } }"))["data"]["me"]["name"]
    body = (
        "{{contact.name}}|{{contact.first_name}}|{{customer.name}}|{{thread.reference}}|{{thread.subject}}|"
        "{{shipment.reference}}|{{shipment.eta}}|{{shipment.containers}}|{{ agent.name }}"
    )
    response = await _create(inbox, name="All", body=body)
    # when it is rendered for the thread
    rendered = (await inbox.gql(RENDER, {"id": response["id"], "threadId": thread["id"]}))["data"]
    # then
    assert rendered["cannedResponseRender"].split("|") == [
        "Priya  Shah",
        "Priya",
        "Acme Imports",
        thread["reference"],
        "Rates for December",
        "SHP-42",
        "04 Dec 2026",
        "CSQU3054383, MSCU1234566",
        me,
    ]
    # and a thread without links, or no thread, renders what it has and leaves the rest empty
    bare = await inbox.thread("Bare")
    rendered = (await inbox.gql(RENDER, {"id": response["id"], "threadId": bare["id"]}))["data"]
    assert rendered["cannedResponseRender"] == f"|||{bare['reference']}|Bare||||{me}"
    rendered = (await inbox.gql(RENDER, {"id": response["id"]}))["data"]
    assert rendered["cannedResponseRender"] == f"||||||||{me}"


async def test_values_are_not_templates(inbox: Inbox) -> None:
    contact = await inbox.contact("{{agent.name}} {{7*7}}")
    thread = await inbox.thread("x", contactId=contact["id"])
    response = await _create(inbox, name="x", body="Dear {{contact.name}}")
    rendered = (await inbox.gql(RENDER, {"id": response["id"], "threadId": thread["id"]}))["data"]
    assert rendered["cannedResponseRender"] == "Dear {{agent.name}} {{7*7}}"


async def test_another_organizations_responses_are_not_found(inbox: Inbox) -> None:
    globex = await _foreign(inbox)
    theirs = await _create(globex, name="Globex secret", body="Globex {{agent.name}}")
    thread = await inbox.thread("Ours")
    ours = await _create(inbox, name="Ours")
    result = await inbox.gql(UPDATE, {"input": {"id": theirs["id"], "name": "Mine"}})
    assert _errors(result, "cannedResponseUpdate") == [("NOT_FOUND", ["id"])]
    assert _errors(await inbox.gql(DELETE, {"id": theirs["id"]}), "cannedResponseDelete") == [("NOT_FOUND", ["id"])]
    assert (await inbox.gql(RENDER, {"id": theirs["id"], "threadId": thread["id"]}))["data"] == {
        "cannedResponseRender": None
    }
    their_thread = await globex.thread("Theirs")
    rendered = await inbox.gql(RENDER, {"id": ours["id"], "threadId": their_thread["id"]})
    assert rendered["data"] == {"cannedResponseRender": None}
    assert [r["name"] for r in (await inbox.gql(LIST))["data"]["cannedResponses"]] == ["Ours"]
    # and their row is as it was
    assert [r["name"] for r in (await globex.gql(LIST))["data"]["cannedResponses"]] == ["Globex secret"]
