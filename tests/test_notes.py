"""Notes on a thread: noteAdd (the trimmed body, mentions by email and by id, users of another organization or
deactivated users as mentions), the thread's notes connection oldest first, and who may add notes."""

from __future__ import annotations

from banxway.db.models import Note
from tests.inbox_helpers import ME_ID, Inbox, _count, _errors, _foreign, _member, _thread

NOTE_FIELDS = "id body createdAt author { id email } mentions { id email } thread { id }"

NOTE_ADD = f"""
mutation($input: NoteAddInput!) {{
  noteAdd(input: $input) {{ note {{ {NOTE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_NOTES = """
query($id: ID!) { thread(id: $id) { notes(first: 50) { totalCount edges { node { body author { email } } } } } }
"""

USER_UPDATE = """
mutation($id: ID!, $active: Boolean) {
  userUpdate(input: {id: $id, active: $active}) { user { id active } userErrors { field code message } }
}
"""


# -- noteAdd ---------------------------------------------------------------------------------------


async def test_note_add_stores_a_note_by_the_viewer(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    payload = await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "  Call them at 5  "}}, "noteAdd")
    # then
    note = payload["note"]
    assert note["body"] == "Call them at 5"
    assert note["author"]["email"] == inbox.org.admin_email
    assert note["mentions"] == []
    assert note["thread"] == {"id": thread["id"]}


async def test_note_add_mentions_by_email_and_by_id(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    manager = await _member(inbox, "manager")
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    body = f"@{support.email} please check with @{manager.email.upper()}, cc nobody@acme.test and @ghost@acme.test."
    # when
    payload = await inbox.ok(
        NOTE_ADD,
        {"input": {"threadId": thread["id"], "body": body, "mentionedUserIds": [validator.id, support.id]}},
        "noteAdd",
    )
    # then
    mentioned = {user["email"] for user in payload["note"]["mentions"]}
    assert mentioned == {support.email, manager.email, validator.email}
    assert len(payload["note"]["mentions"]) == 3


async def test_note_add_does_not_mention_a_user_of_another_organization(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    thread = await _thread(inbox)
    # when
    payload = await inbox.ok(
        NOTE_ADD, {"input": {"threadId": thread["id"], "body": f"@{globex.org.admin_email} hi"}}, "noteAdd"
    )
    # then
    assert payload["note"]["mentions"] == []


async def test_note_add_with_a_foreign_mentioned_user_id_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    stranger = (await globex.gql(ME_ID))["data"]["me"]["id"]
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(
        NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Hi", "mentionedUserIds": [stranger]}}
    )
    # then
    payload = result["data"]["noteAdd"]
    assert payload["note"] is None
    assert [error["code"] for error in payload["userErrors"]] == ["NOT_FOUND"]
    assert payload["userErrors"][0]["field"] in (["mentionedUserIds.0"], ["mentionedUserIds", "0"])
    assert await _count(inbox, Note) == 0


async def test_note_add_with_a_deactivated_mentioned_user_is_invalid(inbox: Inbox) -> None:
    # given
    gone = await _member(inbox, "support", "gone@acme.test")
    await inbox.ok(USER_UPDATE, {"id": gone.id, "active": False}, "userUpdate")
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(
        NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Hi", "mentionedUserIds": [gone.id]}}
    )
    # then
    assert [error["code"] for error in result["data"]["noteAdd"]["userErrors"]] == ["INVALID"]
    assert await _count(inbox, Note) == 0


async def test_an_empty_note_is_invalid(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "  "}})
    # then
    assert _errors(result["data"]["noteAdd"]) == [("INVALID", ["body"])]
    assert await _count(inbox, Note) == 0


async def test_notes_are_listed_on_the_thread_oldest_first(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    other = await _thread(inbox, subject="Other")
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "First"}}, "noteAdd")
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Second"}}, "noteAdd", support.token)
    await inbox.ok(NOTE_ADD, {"input": {"threadId": other["id"], "body": "Elsewhere"}}, "noteAdd")
    # when
    result = await inbox.gql(THREAD_NOTES, {"id": thread["id"]})
    # then
    notes = result["data"]["thread"]["notes"]
    assert notes["totalCount"] == 2
    assert [(e["node"]["body"], e["node"]["author"]["email"]) for e in notes["edges"]] == [
        ("First", inbox.org.admin_email),
        ("Second", support.email),
    ]


async def test_a_viewer_may_not_add_notes(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Hi"}}, viewer.token)
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await _count(inbox, Note) == 0
