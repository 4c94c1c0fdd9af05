"""Issue 16, item 10: NUL characters and absurdly nested JSON are refused cleanly, and lose nothing."""

from __future__ import annotations

from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox

NOTE = """
mutation($input: NoteAddInput!) { noteAdd(input: $input) { note { id body } userErrors { field code message } } }
"""


async def test_a_nul_in_a_variable_is_refused_naming_the_field(inbox: Inbox) -> None:
    thread = await inbox.thread()
    result = await inbox.gql(NOTE, {"input": {"threadId": thread["id"], "body": "rates\x00attached"}})
    error = result["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "input.body"
    assert "NUL" in error["message"]
    assert result.get("data") is None


async def test_a_nul_in_custom_fields_is_refused(inbox: Inbox) -> None:
    mutation = """mutation($input: CustomerInput!) { customerCreate(input: $input) { customer { id } } }"""
    result = await inbox.gql(mutation, {"input": {"name": "Acme", "customFields": {"notes": ["ok", "bad\x00"]}}})
    assert result["errors"][0]["extensions"]["field"] == "input.customFields.notes[1]"


async def test_a_nul_in_a_string_literal_is_refused(inbox: Inbox) -> None:
    result = await inbox.gql('mutation { customerCreate(input: {name: "Ac\\u0000me"}) { customer { id } } }')
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_variables_nested_100000_levels_deep_are_a_bad_request_not_a_crash(api: Api, org: Org) -> None:
    token = await api.token(org.admin_email)
    nested = "[" * 100_000 + "]" * 100_000
    body = '{"query": "{ me { id } }", "variables": {"x": ' + nested + "}}"
    response = await api.http.post(
        "/graphql",
        content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert "JSON" in response.text


async def test_an_inbound_message_with_a_nul_is_stored_without_it(inbox: Inbox) -> None:
    """A provider's text is stored as it came but for the NUL (a webhook must never lose a message)."""
    from sqlalchemy import select

    from banxway.db.models import Channel, Message
    from banxway.db.session import tenant_session
    from banxway.resolvers.inbound import message_receive
    from banxway.resolvers.threads import new_thread

    state = inbox.api.state
    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        thread = await new_thread(session, inbox.org.id, subject="SMS", primary_channel=Channel.SMS)
        await message_receive(
            session, inbox.org.id, thread_id=thread.id, channel=Channel.SMS, body="hi\x00 there", sender="+9198\x00"
        )
    async with tenant_session(state.sessionmaker, inbox.org.id) as session:
        message = await session.scalar(select(Message).where(Message.thread_id == thread.id))
    assert (message.body, message.sender) == ("hi there", "+9198")
