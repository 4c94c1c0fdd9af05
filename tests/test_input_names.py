"""Consistent input names: `threadId` wherever a thread is meant. An older name stays as a deprecated input field
and keeps working (`ThreadUpdateInput.id`); giving both names, or neither, is INVALID and names them."""

from __future__ import annotations

from pathlib import Path

import graphql
from sqlalchemy import func, select

from banxway.db.models import Event, Thread
from banxway.db.session import system_session
from tests.inbox_helpers import Inbox, _errors, _foreign, _thread

THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) {
  threadUpdate(input: $input) { thread { id priority } userErrors { field code message } }
}
"""

INPUT_FIELDS = """
query($name: String!) {
  __type(name: $name) { inputFields(includeDeprecated: true) { name isDeprecated deprecationReason } }
}
"""


async def _priority(inbox: Inbox, thread_id: str) -> str:
    result = await inbox.gql("query($id: ID!) { thread(id: $id) { priority } }", {"id": thread_id})
    return result["data"]["thread"]["priority"]


async def _events(inbox: Inbox) -> int:
    async with system_session(inbox.api.state.sessionmaker) as session:
        query = select(func.count()).select_from(Event).where(Event.organization_id == inbox.org.id)
        return await session.scalar(query)


# -- threadUpdate: threadId, and the deprecated id ---------------------------------------------------------


async def test_thread_update_takes_the_thread_as_thread_id(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    payload = await inbox.ok(THREAD_UPDATE, {"input": {"threadId": thread["id"], "priority": "HIGH"}}, "threadUpdate")
    # then
    assert payload["thread"] == {"id": thread["id"], "priority": "HIGH"}
    assert await _priority(inbox, thread["id"]) == "HIGH"


async def test_an_older_client_that_sends_the_deprecated_id_keeps_working(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when a client written before the rename sends `id` (and one that sends an explicit null `threadId` beside it)
    first = await inbox.ok(THREAD_UPDATE, {"input": {"id": thread["id"], "priority": "HIGH"}}, "threadUpdate")
    second = await inbox.ok(
        THREAD_UPDATE, {"input": {"id": thread["id"], "threadId": None, "priority": "URGENT"}}, "threadUpdate"
    )
    # then both change the thread
    assert first["thread"]["priority"] == "HIGH"
    assert second["thread"]["priority"] == "URGENT"
    assert await _priority(inbox, thread["id"]) == "URGENT"


async def test_both_names_at_once_are_invalid_and_change_nothing(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    before = await _events(inbox)
    # when
    result = await inbox.gql(
        THREAD_UPDATE, {"input": {"threadId": thread["id"], "id": thread["id"], "priority": "HIGH"}}
    )
    # then
    payload = result["data"]["threadUpdate"]
    assert payload["thread"] is None
    assert _errors(payload) == [("INVALID", ["threadId"])]
    assert "`threadId`" in payload["userErrors"][0]["message"] and "`id`" in payload["userErrors"][0]["message"]
    assert await _priority(inbox, thread["id"]) == "NORMAL"
    assert await _events(inbox) == before


async def test_neither_name_is_invalid(inbox: Inbox) -> None:
    # when
    result = await inbox.gql(THREAD_UPDATE, {"input": {"priority": "HIGH"}})
    # then
    payload = result["data"]["threadUpdate"]
    assert _errors(payload) == [("INVALID", ["threadId"])]
    assert "neither" in payload["userErrors"][0]["message"]


async def test_another_organizations_thread_is_not_found_under_either_name(inbox: Inbox) -> None:
    # given a thread of another organization
    globex = await _foreign(inbox)
    theirs = await _thread(globex)
    for name in ("threadId", "id"):
        # when an admin here changes it under either name
        result = await inbox.gql(THREAD_UPDATE, {"input": {name: theirs["id"], "priority": "URGENT"}})
        # then it is not found, naming the field the client used
        assert _errors(result["data"]["threadUpdate"]) == [("NOT_FOUND", [name])]
    async with system_session(inbox.api.state.sessionmaker) as session:
        priorities = list(await session.scalars(select(Thread.priority).where(Thread.organization_id == globex.org.id)))
    assert [p.name for p in priorities] == ["NORMAL"]


# -- the schema says so ----------------------------------------------------------------------------------------


async def test_the_old_name_is_deprecated_in_introspection_and_in_the_schema_file(inbox: Inbox) -> None:
    # when
    result = await inbox.gql(INPUT_FIELDS, {"name": "ThreadUpdateInput"})
    # then introspection lists it as deprecated (and hides it without includeDeprecated)
    fields = {f["name"]: f for f in result["data"]["__type"]["inputFields"]}
    assert fields["threadId"]["isDeprecated"] is False
    assert fields["id"]["isDeprecated"] is True
    assert "threadId" in fields["id"]["deprecationReason"]
    plain = await inbox.gql('{ __type(name: "ThreadUpdateInput") { inputFields { name } } }')
    assert "id" not in {f["name"] for f in plain["data"]["__type"]["inputFields"]}
    # and the committed schema carries the directive
    schema = graphql.build_schema((Path(__file__).parents[1] / "schema.graphql").read_text())
    deprecated = schema.type_map["ThreadUpdateInput"].fields["id"]  # type: ignore[union-attr]
    assert deprecated.deprecation_reason == fields["id"]["deprecationReason"]


def test_every_thread_mutation_names_its_thread_thread_id() -> None:
    """The audit, kept: a mutation on one thread (thread*, but not threadCreate) takes `threadId`; any other
    name for the thread in its input is deprecated."""
    schema = graphql.build_schema((Path(__file__).parents[1] / "schema.graphql").read_text())
    assert schema.mutation_type is not None
    offenders = []
    for name, field in schema.mutation_type.fields.items():
        if not name.startswith("thread") or name.startswith("threads") or name == "threadCreate":
            continue
        input_type = graphql.get_named_type(field.args["input"].type)
        assert isinstance(input_type, graphql.GraphQLInputObjectType), name
        fields = input_type.fields
        if "threadId" not in fields or fields["threadId"].deprecation_reason:
            offenders.append(f"{name}: no threadId")
        if "id" in fields and not fields["id"].deprecation_reason:
            offenders.append(f"{name}: `id` is not deprecated")
    assert offenders == []
