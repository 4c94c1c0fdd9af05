"""Editing and deleting notes: noteUpdate (the author only; `editedAt`; mentions read again, only new ones
notified), noteDelete (the author, or NOTE_MODERATE: ADMIN and MANAGER; a soft delete that erases the text and
takes the note out of the thread's notes and `node`), another organization's note, and their live events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from banxway.db.models import Event, Note, Notification
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Org
from tests.inbox_helpers import Inbox, _errors, _foreign, _member, _thread
from tests.live_helpers import GraphQLSocket, local_uuid, uvicorn_server, wait_subscribed

NOTE_FIELDS = "id body createdAt editedAt author { email } mentions { email }"

NOTE_ADD = f"""
mutation($input: NoteAddInput!) {{
  noteAdd(input: $input) {{ note {{ {NOTE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

NOTE_UPDATE = f"""
mutation($input: NoteUpdateInput!) {{
  noteUpdate(input: $input) {{ note {{ {NOTE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

NOTE_DELETE = """
mutation($input: NoteDeleteInput!) {
  noteDelete(input: $input) { deletedId thread { id } userErrors { field code message } }
}
"""

THREAD_NOTES = """
query($id: ID!) { thread(id: $id) { id notes(first: 50) { totalCount edges { node { id body } } } } }
"""

NODE = "query($id: ID!) { node(id: $id) { id ... on Note { body } } }"

MENTIONS = "{ notifications(first: 50) { edges { node { type summary note { id } } } } }"

INBOX_EVENTS = """
subscription { inboxEvents { type changed nodeId node { __typename ... on Note { id body editedAt } } } }
"""


async def _add(inbox: Inbox, thread_id: str, body: str, token: str | None = None, **fields: object) -> dict:
    payload = await inbox.ok(NOTE_ADD, {"input": {"threadId": thread_id, "body": body, **fields}}, "noteAdd", token)
    return payload["note"]


async def _mentions_of(inbox: Inbox, token: str) -> list[dict]:
    result = await inbox.gql(MENTIONS, token=token)
    return [edge["node"] for edge in result["data"]["notifications"]["edges"] if edge["node"]["type"] == "MENTION"]


async def _row(inbox: Inbox, global_id: str) -> Note:
    async with system_session(inbox.api.state.sessionmaker) as session:
        note = await session.scalar(select(Note).where(Note.id == local_uuid(global_id)))
        assert note is not None
        return note


async def _event_types(inbox: Inbox, global_id: str) -> list[str]:
    note_id = str(local_uuid(global_id))
    async with system_session(inbox.api.state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.organization_id == inbox.org.id).order_by(Event.id))
        return [row.type for row in rows if row.payload.get("note_id") == note_id]


# -- noteUpdate ------------------------------------------------------------------------------------------------


async def test_the_author_edits_a_note_and_only_newly_mentioned_colleagues_are_notified(inbox: Inbox) -> None:
    # given a note by support that mentions the validator
    support = await _member(inbox, "support")
    validator = await _member(inbox, "validator")
    manager = await _member(inbox, "manager")
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], f"@{validator.email} check the VGM", support.token)
    assert note["editedAt"] is None
    # when support rewrites it, mentioning the validator again and the manager for the first time
    body = f"  @{validator.email} check the VGM, @{manager.email} approve the rate  "
    payload = await inbox.ok(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": body}}, "noteUpdate", support.token)
    # then the note has the new text, its mentions are read again, and it says when it was edited
    edited = payload["note"]
    assert edited["body"] == body.strip()
    assert {user["email"] for user in edited["mentions"]} == {validator.email, manager.email}
    assert edited["createdAt"] == note["createdAt"]
    assert datetime.fromisoformat(edited["editedAt"]) >= datetime.fromisoformat(note["createdAt"])
    # and the manager is notified once, the validator (already told) not again
    [told] = await _mentions_of(inbox, manager.token)
    assert told["summary"].endswith(body.strip()) and told["note"] == {"id": note["id"]}
    assert len(await _mentions_of(inbox, validator.token)) == 1
    assert await _event_types(inbox, note["id"]) == ["NOTE_ADDED", "NOTE_UPDATED"]


async def test_a_colleague_mentioned_removed_and_mentioned_again_is_notified_once(inbox: Inbox) -> None:
    # given a note that mentioned the validator, then an edit that dropped the mention
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], f"@{validator.email} have a look")
    dropped = await inbox.ok(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "Never mind"}}, "noteUpdate")
    assert dropped["note"]["mentions"] == []
    # when the mention comes back
    body = f"@{validator.email} have a look after all"
    again = await inbox.ok(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": body}}, "noteUpdate")
    # then the note mentions them, and they were told only the first time
    assert [user["email"] for user in again["note"]["mentions"]] == [validator.email]
    assert len(await _mentions_of(inbox, validator.token)) == 1


async def test_mentions_given_by_id_stay_when_an_edit_leaves_them_out(inbox: Inbox) -> None:
    # given a note with a mention by id and one by email
    support = await _member(inbox, "support")
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], f"@{validator.email} see this", mentionedUserIds=[support.id])
    # when the text changes and drops the email, without mentionedUserIds
    payload = await inbox.ok(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "See this"}}, "noteUpdate")
    # then the mention by id stays, the one by email goes
    assert [user["email"] for user in payload["note"]["mentions"]] == [support.email]
    # and given mentionedUserIds replace those given before
    payload = await inbox.ok(
        NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "See this", "mentionedUserIds": []}}, "noteUpdate"
    )
    assert payload["note"]["mentions"] == []


async def test_an_edit_that_changes_nothing_leaves_edited_at_and_records_no_event(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], "Rates expire Friday")
    # when
    payload = await inbox.ok(
        NOTE_UPDATE, {"input": {"noteId": note["id"], "body": " Rates expire Friday "}}, "noteUpdate"
    )
    # then
    assert payload["note"]["editedAt"] is None
    assert await _event_types(inbox, note["id"]) == ["NOTE_ADDED"]


async def test_an_empty_or_too_long_edit_is_refused(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], "Keep me")
    # when
    empty = await inbox.gql(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "   "}})
    long = await inbox.gql(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "x" * 100_001}})
    # then
    assert _errors(empty["data"]["noteUpdate"]) == [("INVALID", ["body"])]
    assert _errors(long["data"]["noteUpdate"]) == [("TOO_LONG", ["body"])]
    assert (await _row(inbox, note["id"])).body == "Keep me"


async def test_only_the_author_may_edit_a_note_not_a_colleague_nor_a_manager(inbox: Inbox) -> None:
    # given a note by one support user
    author = await _member(inbox, "support", "author@acme.test")
    colleague = await _member(inbox, "support", "colleague@acme.test")
    manager = await _member(inbox, "manager")
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], "Mine", author.token)
    for token in (colleague.token, manager.token, inbox.token):
        # when someone else edits it
        result = await inbox.gql(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "Theirs"}}, token)
        # then it is forbidden, and the note is as it was
        assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
        assert result["data"] is None
    row = await _row(inbox, note["id"])
    assert (row.body, row.edited_at) == ("Mine", None)


# -- noteDelete ------------------------------------------------------------------------------------------------


async def test_the_author_deletes_a_note_it_leaves_the_thread_and_its_text_is_erased(inbox: Inbox) -> None:
    # given two notes by support, one mentioning the validator
    support = await _member(inbox, "support")
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    gone = await _add(inbox, thread["id"], f"@{validator.email} secret rate 1450 USD", support.token)
    kept = await _add(inbox, thread["id"], "Customer prefers Maersk", support.token)
    # when support deletes the first
    payload = await inbox.ok(NOTE_DELETE, {"input": {"noteId": gone["id"]}}, "noteDelete", support.token)
    # then it is gone from the thread's notes and from node(id:); the other stays
    assert payload == {"deletedId": gone["id"], "thread": {"id": thread["id"]}, "userErrors": []}
    notes = (await inbox.gql(THREAD_NOTES, {"id": thread["id"]}))["data"]["thread"]["notes"]
    assert notes["totalCount"] == 1
    assert [edge["node"]["id"] for edge in notes["edges"]] == [kept["id"]]
    assert (await inbox.gql(NODE, {"id": gone["id"]}))["data"]["node"] is None
    # and the row stays, for the events that name it, with its text and mentions erased
    row = await _row(inbox, gone["id"])
    assert (row.body, row.mentioned_user_ids) == ("", [])
    assert row.deleted_at is not None
    assert await _event_types(inbox, gone["id"]) == ["NOTE_ADDED", "NOTE_DELETED"]
    # and the validator's notification no longer shows the note
    assert [n["note"] for n in await _mentions_of(inbox, validator.token)] == [None]


async def test_a_deleted_note_can_be_neither_edited_nor_deleted_again(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], "Short-lived")
    await inbox.ok(NOTE_DELETE, {"input": {"noteId": note["id"]}}, "noteDelete")
    # when
    update = await inbox.gql(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "Back"}})
    delete = await inbox.gql(NOTE_DELETE, {"input": {"noteId": note["id"]}})
    # then
    assert _errors(update["data"]["noteUpdate"]) == [("NOT_FOUND", ["noteId"])]
    assert _errors(delete["data"]["noteDelete"]) == [("NOT_FOUND", ["noteId"])]
    assert delete["data"]["noteDelete"]["deletedId"] is None
    assert (await _row(inbox, note["id"])).body == ""


async def test_another_support_user_may_not_delete_a_note_but_a_manager_and_an_admin_may(inbox: Inbox) -> None:
    # given notes by a support user
    author = await _member(inbox, "support", "author@acme.test")
    colleague = await _member(inbox, "support", "colleague@acme.test")
    validator = await _member(inbox, "validator")
    manager = await _member(inbox, "manager")
    thread = await _thread(inbox)
    first = await _add(inbox, thread["id"], "First", author.token)
    second = await _add(inbox, thread["id"], "Second", author.token)
    # when a colleague or a validator deletes one, then it is forbidden and the note stays
    for token in (colleague.token, validator.token):
        result = await inbox.gql(NOTE_DELETE, {"input": {"noteId": first["id"]}}, token)
        assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _row(inbox, first["id"])).deleted_at is None
    # when a manager and an admin delete them, then they are deleted
    await inbox.ok(NOTE_DELETE, {"input": {"noteId": first["id"]}}, "noteDelete", manager.token)
    await inbox.ok(NOTE_DELETE, {"input": {"noteId": second["id"]}}, "noteDelete")
    notes = (await inbox.gql(THREAD_NOTES, {"id": thread["id"]}))["data"]["thread"]["notes"]
    assert notes == {"totalCount": 0, "edges": []}


async def test_a_viewer_may_not_delete_and_a_validator_may_delete_their_own(inbox: Inbox) -> None:
    # given a note by a validator (validators write notes, without NOTE_MODERATE)
    validator = await _member(inbox, "validator")
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], "Checked the BL", validator.token)
    # when a viewer deletes it, then it is forbidden
    result = await inbox.gql(NOTE_DELETE, {"input": {"noteId": note["id"]}}, viewer.token)
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    # when its author does, then it is deleted
    await inbox.ok(NOTE_DELETE, {"input": {"noteId": note["id"]}}, "noteDelete", validator.token)
    assert (await _row(inbox, note["id"])).deleted_at is not None


async def test_another_organizations_note_is_not_found_and_stays_as_it_was(inbox: Inbox) -> None:
    # given a note of another organization
    globex = await _foreign(inbox)
    theirs = await _add(globex, (await _thread(globex))["id"], "Globex internal")
    # when an admin here edits and deletes it
    update = await inbox.gql(NOTE_UPDATE, {"input": {"noteId": theirs["id"], "body": "Hacked"}})
    delete = await inbox.gql(NOTE_DELETE, {"input": {"noteId": theirs["id"]}})
    # then it is not found, and unchanged
    assert _errors(update["data"]["noteUpdate"]) == [("NOT_FOUND", ["noteId"])]
    assert _errors(delete["data"]["noteDelete"]) == [("NOT_FOUND", ["noteId"])]
    row = await _row(globex, theirs["id"])
    assert (row.body, row.edited_at, row.deleted_at) == ("Globex internal", None, None)


async def test_notifications_of_a_deleted_note_are_kept_without_it(inbox: Inbox) -> None:
    # given a mention, and the note deleted
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], f"@{support.email} call them")
    await inbox.ok(NOTE_DELETE, {"input": {"noteId": note["id"]}}, "noteDelete")
    # then the notification row still names the note (no dangling foreign key, nothing cascaded)
    async with system_session(inbox.api.state.sessionmaker) as session:
        rows = list(await session.scalars(select(Notification.note_id).where(Notification.note_id.is_not(None))))
    assert rows == [local_uuid(note["id"])]


# -- live events ----------------------------------------------------------------------------------------------


async def test_edits_and_deletions_reach_inbox_events_subscribers(
    inbox: Inbox, settings: Settings, state: AppState, org: Org
) -> None:
    # given a note, and a subscriber of the inbox's events
    thread = await _thread(inbox)
    note = await _add(inbox, thread["id"], "Draft")
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        await socket.subscribe("inbox", INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        # when the note is edited, then deleted
        await inbox.ok(NOTE_UPDATE, {"input": {"noteId": note["id"], "body": "Final"}}, "noteUpdate")
        _, updated = await socket.next()
        await inbox.ok(NOTE_DELETE, {"input": {"noteId": note["id"]}}, "noteDelete")
        _, deleted = await socket.next()
    # then the edit carries the note as it is now, and the deletion only its id (node null: remove it)
    assert updated["type"] == "NOTE_UPDATED"
    assert updated["changed"] == ["body"]
    assert updated["node"]["body"] == "Final" and updated["node"]["editedAt"] is not None
    assert deleted == {"type": "NOTE_DELETED", "changed": None, "nodeId": note["id"], "node": None}
