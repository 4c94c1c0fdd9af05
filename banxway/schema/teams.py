"""Teams and assignment rules (banxway.resolvers.teams)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from banxway import db
from banxway.resolvers import teams as team_use_cases
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver
from banxway.schema.users import User

AssignmentStrategy = strawberry.enum(team_use_cases.Strategy, name="AssignmentStrategy")
TeamError, TeamErrorCode = error_type("Team", RECORD_CODES)
AgentSettingsError, AgentSettingsErrorCode = error_type("AgentSettings", ["INVALID", "NOT_FOUND"])


@strawberry.type(description="A group of users a thread can be given to (threadAssignTeam).")
class Team(Node):
    id: strawberry.ID = _id_field("Team")
    name: str
    created_at: datetime

    is_type_of = _model_type_of(db.Team)
    resolve_nodes = _node_resolver("team_by_id")

    @strawberry.field(description="Members, by name.")
    async def members(self, info: Ctx) -> list[User]:
        ids = (await team_use_cases.team_member_ids(info.context, [self.id]))[self.id]  # type: ignore[list-item]
        return [user for user in await info.context.loaders.user_by_id.load_many(ids) if user is not None]  # type: ignore[misc]


@strawberry.input
class TeamCreateInput:
    name: str
    member_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input(description="Fields left out stay as they are; memberIds replaces the whole list.")
class TeamUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    member_ids: list[strawberry.ID] | None = strawberry.UNSET


@strawberry.type
class TeamPayload:
    team: Team | None = None
    user_errors: list[TeamError]  # type: ignore[valid-type]


@strawberry.type
class TeamDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[TeamError]  # type: ignore[valid-type]


@strawberry.input(description="Fields left out stay as they are.")
class AgentSettingsInput:
    user_id: strawberry.ID
    max_open_threads: int | None = strawberry.UNSET
    available: bool | None = strawberry.UNSET


@strawberry.type
class AgentSettingsPayload:
    user: User | None = None
    user_errors: list[AgentSettingsError]  # type: ignore[valid-type]


def _member_ids(values: list[strawberry.ID] | None) -> list:
    return [decode(value, "User", f"memberIds.{i}") for i, value in enumerate(values or [])]


@strawberry.type
class TeamQuery:
    @strawberry.field(description="The organization's teams, by name.")
    async def teams(self, info: Ctx) -> list[Team]:
        return await team_use_cases.teams(info.context)  # type: ignore[return-value]


@strawberry.type
class TeamMutation:
    @strawberry.mutation(description="ADMIN and MANAGER.")
    async def team_create(self, info: Ctx, input: TeamCreateInput) -> TeamPayload:
        async def call() -> dict:
            team = await team_use_cases.team_create(info.context, input.name, _member_ids(input.member_ids))
            return {"team": team}

        return await mutate(TeamPayload, TeamError, TeamErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER.")
    async def team_update(self, info: Ctx, input: TeamUpdateInput) -> TeamPayload:
        async def call() -> dict:
            values = changes(input, {"name": "name"})
            if given(input.member_ids):
                values["member_ids"] = _member_ids(input.member_ids)
            team = await team_use_cases.team_update(info.context, decode(input.id, "Team", "id"), values)
            return {"team": team}

        return await mutate(TeamPayload, TeamError, TeamErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER. Threads keep their assignees and lose the team.")
    async def team_delete(self, info: Ctx, id: strawberry.ID) -> TeamDeletePayload:
        async def call() -> dict:
            await team_use_cases.team_delete(info.context, decode(id, "Team", "id"))
            return {"deleted_id": id}

        return await mutate(TeamDeletePayload, TeamError, TeamErrorCode, call)

    @strawberry.mutation(
        description="An agent's capacity and availability. Everyone may set their own `available` (away: false); "
        "the rest needs ADMIN or MANAGER."
    )
    async def agent_settings_set(self, info: Ctx, input: AgentSettingsInput) -> AgentSettingsPayload:
        async def call() -> dict:
            values = changes(input, {"max_open_threads": "max_open_threads", "available": "available"})
            user_id = decode(input.user_id, "User", "userId")
            return {"user": await team_use_cases.agent_settings_set(info.context, user_id, values)}

        return await mutate(AgentSettingsPayload, AgentSettingsError, AgentSettingsErrorCode, call)
