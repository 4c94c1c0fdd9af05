"""Teams and assignment rules (banxway.resolvers.teams): membership, round-robin and least-open assignment that
skip away, deactivated and full agents, the team queue when nobody can take a thread, and no capacity overshot
under concurrent assignments."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from banxway.db.models import Event, Notification
from banxway.db.session import system_session
from banxway.enums import NotificationType
from banxway.schema.ids import local_id
from tests.inbox_helpers import Inbox, Member, _foreign, _member

TEAM_FIELDS = "id name members { id email }"
TEAM_CREATE = f"""
mutation($input: TeamCreateInput!) {{ teamCreate(input: $input) {{ team {{ {TEAM_FIELDS} }} userErrors {{ field code message }} }} }}
"""
TEAM_UPDATE = f"""
mutation($input: TeamUpdateInput!) {{ teamUpdate(input: $input) {{ team {{ {TEAM_FIELDS} }} userErrors {{ field code message }} }} }}
"""
TEAM_DELETE = "mutation($id: ID!) { teamDelete(id: $id) { deletedId userErrors { field code message } } }"
TEAMS = f"{{ teams {{ {TEAM_FIELDS} }} }}"
ASSIGN_TEAM = """
mutation($input: ThreadAssignTeamInput!) {
  threadAssignTeam(input: $input) { thread { id team { id name } assignee { id } } userErrors { field code message } }
}
"""
SETTINGS = """
mutation($input: AgentSettingsInput!) {
  agentSettingsSet(input: $input) { user { id maxOpenThreads available } userErrors { field code message } }
}
"""
THREAD_CREATE = """
mutation($input: ThreadCreateInput!) { threadCreate(input: $input) { thread { id } userErrors { field code message } } }
"""


async def _agents(inbox: Inbox, *names: str) -> list[Member]:
    return [await _member(inbox, "support", f"{name}@acme.test") for name in names]


async def _team(inbox: Inbox, members: list[Member], name: str = "Sea Export") -> dict:
    payload = await inbox.ok(TEAM_CREATE, {"input": {"name": name, "memberIds": [m.id for m in members]}}, "teamCreate")
    return payload["team"]


async def _thread(inbox: Inbox, subject: str = "Quote") -> str:
    return (await inbox.ok(THREAD_CREATE, {"input": {"subject": subject}}, "threadCreate"))["thread"]["id"]


async def _assign(inbox: Inbox, team: dict, strategy: str = "ROUND_ROBIN", thread_id: str | None = None) -> dict:
    thread_id = thread_id or await _thread(inbox)
    payload = await inbox.ok(
        ASSIGN_TEAM, {"input": {"threadId": thread_id, "teamId": team["id"], "strategy": strategy}}, "threadAssignTeam"
    )
    return payload["thread"]


def _assignee(thread: dict) -> str | None:
    return thread["assignee"]["id"] if thread["assignee"] else None


async def test_a_team_is_created_updated_listed_and_deleted(inbox: Inbox) -> None:
    ana, ben = await _agents(inbox, "ana", "ben")
    team = await _team(inbox, [ben, ana])
    assert [m["email"] for m in team["members"]] == ["ana@acme.test", "ben@acme.test"]  # by name
    updated = await inbox.ok(TEAM_UPDATE, {"input": {"id": team["id"], "memberIds": [ben.id]}}, "teamUpdate")
    assert [m["id"] for m in updated["team"]["members"]] == [ben.id]
    renamed = await inbox.ok(TEAM_UPDATE, {"input": {"id": team["id"], "name": "Air Import"}}, "teamUpdate")
    assert (renamed["team"]["name"], [m["id"] for m in renamed["team"]["members"]]) == ("Air Import", [ben.id])
    viewer = await _member(inbox, "viewer")
    assert [t["name"] for t in (await inbox.gql(TEAMS, token=viewer.token))["data"]["teams"]] == ["Air Import"]
    thread = await _assign(inbox, team)
    assert (await inbox.ok(TEAM_DELETE, {"id": team["id"]}, "teamDelete"))["deletedId"] == team["id"]
    assert (await inbox.gql(TEAMS))["data"]["teams"] == []
    after = await inbox.gql("query($id: ID!) { thread(id: $id) { team { id } assignee { id } } }", {"id": thread["id"]})
    assert after["data"]["thread"] == {"team": None, "assignee": {"id": ben.id}}


async def test_bad_teams_are_refused_and_only_managers_change_them(inbox: Inbox) -> None:
    [ana] = await _agents(inbox, "ana")
    await _team(inbox, [ana])
    taken = await inbox.gql(TEAM_CREATE, {"input": {"name": "sea export"}})
    assert [(e["code"], e["field"]) for e in taken["data"]["teamCreate"]["userErrors"]] == [("TAKEN", ["name"])]
    other = await _foreign(inbox)
    stranger = (await other.gql("{ me { id } }"))["data"]["me"]["id"]
    foreign = await inbox.gql(TEAM_CREATE, {"input": {"name": "Mixed", "memberIds": [ana.id, stranger]}})
    errors = foreign["data"]["teamCreate"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("NOT_FOUND", ["memberIds", "1"])]
    blank = await inbox.gql(TEAM_CREATE, {"input": {"name": "  "}})
    assert [e["field"] for e in blank["data"]["teamCreate"]["userErrors"]] == [["name"]]
    forbidden = await inbox.gql(TEAM_CREATE, {"input": {"name": "Agents' own"}}, token=ana.token)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert [t["name"] for t in (await inbox.gql(TEAMS))["data"]["teams"]] == ["Sea Export"]
    assert (await other.gql(TEAMS))["data"]["teams"] == []


async def test_round_robin_takes_turns_and_skips_away_and_full_agents(inbox: Inbox) -> None:
    ana, ben, cleo = sorted(await _agents(inbox, "ana", "ben", "cleo"), key=lambda m: str(local_id(m.id, "User")))
    team = await _team(inbox, [ana, ben, cleo])
    # turns, in a stable order, round and round
    turns = [_assignee(await _assign(inbox, team)) for _ in range(4)]
    assert turns == [ana.id, ben.id, cleo.id, ana.id]
    # when ben is away and cleo is at capacity (1 open thread)
    await inbox.ok(SETTINGS, {"input": {"userId": ben.id, "available": False}}, "agentSettingsSet", token=ben.token)
    await inbox.ok(SETTINGS, {"input": {"userId": cleo.id, "maxOpenThreads": 1}}, "agentSettingsSet")
    # then ana takes the next ones
    assert [_assignee(await _assign(inbox, team)) for _ in range(2)] == [ana.id, ana.id]
    # and when ana is away too, the thread waits in the team's queue
    await inbox.ok(SETTINGS, {"input": {"userId": ana.id, "available": False}}, "agentSettingsSet")
    queued = await _assign(inbox, team)
    assert (queued["team"]["id"], queued["assignee"]) == (team["id"], None)
    listed = await inbox.gql(
        "query($f: ThreadFilter) { threads(filter: $f) { edges { node { id } } } }",
        {"f": {"teamId": team["id"], "unassigned": True}},
    )
    assert [e["node"]["id"] for e in listed["data"]["threads"]["edges"]] == [queued["id"]]


async def test_least_open_picks_the_agent_with_fewest_open_threads(inbox: Inbox) -> None:
    ana, ben = sorted(await _agents(inbox, "ana", "ben"), key=lambda m: str(local_id(m.id, "User")))
    team = await _team(inbox, [ana, ben])
    await _assign(inbox, team, "LEAST_OPEN", await _thread(inbox))  # both at 0: the first in turn, ana
    # ana has one open thread, ben none: ben; then both have one: the turn after ben's, ana
    picked = [_assignee(await _assign(inbox, team, "LEAST_OPEN")) for _ in range(2)]
    assert picked == [ben.id, ana.id]
    assert (await _count_for(inbox, ana), await _count_for(inbox, ben)) == (2, 1)


async def _count_for(inbox: Inbox, member: Member) -> int:
    result = await inbox.gql(
        "query($f: ThreadFilter) { threads(filter: $f) { totalCount } }", {"f": {"assigneeId": member.id}}
    )
    return result["data"]["threads"]["totalCount"]


async def test_an_assignment_records_its_events_and_notifies_the_agent(inbox: Inbox) -> None:
    [ana] = await _agents(inbox, "ana")
    team = await _team(inbox, [ana])
    thread = await _assign(inbox, team)
    thread_id = str(local_id(thread["id"], "Thread"))
    async with system_session(inbox.api.state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).order_by(Event.id)))
        told = list(
            await session.scalars(select(Notification.user_id).where(Notification.type == NotificationType.ASSIGNMENT))
        )
    mine = [(r.type, r.payload.get("changed")) for r in rows if r.payload.get("thread_id") == thread_id]
    assert mine[-2:] == [("THREAD_UPDATED", ["team_id"]), ("THREAD_ASSIGNED", None)]
    assert told == [local_id(ana.id, "User")]


async def test_concurrent_assignments_never_overshoot_a_capacity(inbox: Inbox) -> None:
    agents = await _agents(inbox, "ana", "ben")
    team = await _team(inbox, agents)
    for agent in agents:
        await inbox.ok(SETTINGS, {"input": {"userId": agent.id, "maxOpenThreads": 3}}, "agentSettingsSet")
    threads = [await _thread(inbox, f"Quote {i}") for i in range(8)]
    results = await asyncio.gather(*(_assign(inbox, team, "LEAST_OPEN", thread_id) for thread_id in threads))
    assignees = [_assignee(r) for r in results]
    assert sorted(assignees.count(agent.id) for agent in agents) == [3, 3]
    assert assignees.count(None) == 2


async def test_agent_settings_need_a_manager_except_ones_own_availability(inbox: Inbox) -> None:
    ana, ben = await _agents(inbox, "ana", "ben")
    own = await inbox.ok(
        SETTINGS, {"input": {"userId": ana.id, "available": False}}, "agentSettingsSet", token=ana.token
    )
    assert own["user"] == {"id": ana.id, "maxOpenThreads": None, "available": False}
    for variables in (
        {"userId": ana.id, "maxOpenThreads": 50},  # her own capacity
        {"userId": ben.id, "available": False},  # someone else's availability
    ):
        result = await inbox.gql(SETTINGS, {"input": variables}, token=ana.token)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", variables
    bad = await inbox.gql(SETTINGS, {"input": {"userId": ben.id, "maxOpenThreads": -1}})
    assert [e["field"] for e in bad["data"]["agentSettingsSet"]["userErrors"]] == [["maxOpenThreads"]]
    other = await _foreign(inbox)
    foreign = await other.gql(SETTINGS, {"input": {"userId": ben.id, "maxOpenThreads": 1}})
    assert [e["code"] for e in foreign["data"]["agentSettingsSet"]["userErrors"]] == ["NOT_FOUND"]
