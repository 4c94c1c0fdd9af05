"""Teams and assignment rules: who is in a team, each agent's capacity and availability, and giving a thread to a
team — one of its members picked round-robin or by fewest open threads, skipping those away or at capacity.

`pick_agent` is the one place the rules live; `thread_assign_team` (the mutation) calls it, and so will the
workflows' assign step. Concurrent assignments are serialised on the team's row and the candidates' rows, so a
round-robin never hands two threads to the same turn and a capacity is never overshot.
"""

from __future__ import annotations

import enum
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Team, TeamMember, Thread, User
from banxway.enums import NotificationType, ThreadStatus
from banxway.errors import DomainError
from banxway.events import ThreadAssigned, ThreadUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.notifications import notify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context

OPEN_STATUSES = (ThreadStatus.NEW, ThreadStatus.OPEN, ThreadStatus.PENDING)
_MAX_CAPACITY = 10_000


class Strategy(enum.Enum):
    ROUND_ROBIN = "ROUND_ROBIN"  # the member after the one who got the team's last thread
    LEAST_OPEN = "LEAST_OPEN"  # the member with the fewest open threads (ties: round-robin order)


# -- teams ----------------------------------------------------------------------------------------------------


async def teams(ctx: Context) -> list[Team]:
    ctx.require(Permission.READ)
    return await ctx.db.scalars(select(Team).order_by(func.lower(Team.name)))


async def team_member_ids(ctx: Context, team_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    ctx.require(Permission.READ)
    rows = await ctx.db.execute(
        select(TeamMember.team_id, TeamMember.user_id)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id.in_(team_ids))
        .order_by(func.lower(User.name), User.id)
    )
    found: dict[uuid.UUID, list[uuid.UUID]] = {team_id: [] for team_id in team_ids}
    for team_id, user_id in rows:
        found[team_id].append(user_id)
    return found


async def _members(session: AsyncSession, member_ids: list[uuid.UUID | None]) -> list[uuid.UUID]:
    wanted = list(dict.fromkeys(member_ids))
    if None in wanted:
        raise DomainError("NOT_FOUND", "No such user.", "memberIds")
    found = set(await session.scalars(select(User.id).where(User.id.in_(wanted))))
    for index, user_id in enumerate(wanted):
        if user_id not in found:
            raise DomainError("NOT_FOUND", "No such user.", f"memberIds.{index}")
    return wanted  # type: ignore[return-value]


async def _name(session: AsyncSession, name: str | None, team_id: uuid.UUID | None) -> str:
    value = v.text(name, "name", max_length=100, required=True)
    assert value is not None
    taken = await session.scalar(
        select(Team.id).where(func.lower(Team.name) == value.lower(), Team.id.is_distinct_from(team_id))
    )
    if taken is not None:
        raise DomainError("TAKEN", "Another team has that name.", "name")
    return value


async def _set_members(session: AsyncSession, team: Team, member_ids: list[uuid.UUID]) -> None:
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    session.add_all(
        TeamMember(organization_id=team.organization_id, team_id=team.id, user_id=user_id) for user_id in member_ids
    )


async def team_create(ctx: Context, name: str, member_ids: list[uuid.UUID | None]) -> Team:
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        team = Team(organization_id=viewer.organization_id, name=await _name(session, name, None))
        members = await _members(session, member_ids)
        session.add(team)
        await session.flush()
        await _set_members(session, team, members)
        after = {"name": team.name, "members": sorted(to_global_id("User", m) for m in members)}
        await audit_change(ctx, session, action="teamCreate", target=to_global_id("Team", team.id), after=after)
    return team


async def team_update(ctx: Context, team_id: uuid.UUID | None, changes: dict[str, Any]) -> Team:
    """`changes`: `name`, and `member_ids` (the whole new list)."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        team = await get_or_error(session, Team, team_id, "id", lock=True, label="team")
        before: dict[str, Any] = {"name": team.name, "members": await _member_list(session, team.id)}
        if "name" in changes:
            team.name = await _name(session, changes["name"], team.id)
        if "member_ids" in changes:
            await _set_members(session, team, await _members(session, changes["member_ids"] or []))
        after: dict[str, Any] = {"name": team.name, "members": await _member_list(session, team.id)}
        changed = [key for key in before if before[key] != after[key]]
        if changed:
            await audit_change(
                ctx,
                session,
                action="teamUpdate",
                target=to_global_id("Team", team.id),
                before={key: before[key] for key in changed},
                after={key: after[key] for key in changed},
            )
    return team


async def _member_list(session: AsyncSession, team_id: uuid.UUID) -> list[str]:
    await session.flush()
    rows = await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team_id))
    return sorted(to_global_id("User", user_id) for user_id in rows)


async def team_delete(ctx: Context, team_id: uuid.UUID | None) -> uuid.UUID:
    """Delete a team; its threads keep their assignees and lose the team."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        team = await get_or_error(session, Team, team_id, "id", lock=True, label="team")
        before = {"name": team.name, "members": await _member_list(session, team.id)}
        await audit_change(ctx, session, action="teamDelete", target=to_global_id("Team", team.id), before=before)
        await session.delete(team)
    return team.id


async def agent_settings_set(ctx: Context, user_id: uuid.UUID | None, changes: dict[str, Any]) -> User:
    """An agent's `max_open_threads` (null: no cap) and `available`. Anyone may set their own availability;
    the rest needs AUTOMATION_MANAGE."""
    viewer = ctx.require(Permission.READ)
    if set(changes) - {"available"} or user_id != viewer.user_id:
        ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        user = await get_or_error(session, User, user_id, "userId", lock=True, label="user")
        if "max_open_threads" in changes:
            cap = changes["max_open_threads"]
            if cap is not None and not 0 <= cap <= _MAX_CAPACITY:
                raise DomainError("INVALID", f"Expected 0 to {_MAX_CAPACITY} open threads, or null.", "maxOpenThreads")
            user.max_open_threads = cap
        if "available" in changes:
            if changes["available"] is None:
                raise DomainError("INVALID", "available cannot be cleared.", "available")
            user.available = changes["available"]
    return user


# -- assignment -----------------------------------------------------------------------------------------------


async def open_thread_counts(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(Thread.assignee_id, func.count())
        .where(Thread.assignee_id.in_(user_ids), Thread.status.in_(OPEN_STATUSES))
        .group_by(Thread.assignee_id)
    )
    return {user_id: count for user_id, count in rows}


async def pick_agent(session: AsyncSession, team: Team, strategy: Strategy) -> User | None:
    """The member a new thread of `team` goes to, or None when every member is away, inactive or full. Locks the
    team's row (the caller's transaction) and advances its round-robin pointer."""
    await session.execute(select(Team.id).where(Team.id == team.id).with_for_update())
    members = list(
        await session.scalars(
            select(User)
            .join(TeamMember, TeamMember.user_id == User.id)
            .where(TeamMember.team_id == team.id)
            .order_by(User.id)
            .with_for_update(of=User)
        )
    )
    if not members:
        return None
    counts = await open_thread_counts(session, [m.id for m in members])
    # round-robin order: the members after the last one served, then from the start
    ids = [m.id for m in members]
    start = ids.index(team.last_assigned_user_id) + 1 if team.last_assigned_user_id in ids else 0
    ordered = members[start:] + members[:start]
    eligible = [
        m
        for m in ordered
        if m.active and m.available and (m.max_open_threads is None or counts.get(m.id, 0) < m.max_open_threads)
    ]
    if not eligible:
        return None
    # LEAST_OPEN: the fewest open threads; min keeps the first of equals, so ties go in round-robin order
    chosen = min(eligible, key=lambda m: counts.get(m.id, 0)) if strategy == Strategy.LEAST_OPEN else eligible[0]
    team.last_assigned_user_id = chosen.id
    return chosen


async def give_to_team(
    session: AsyncSession, thread: Thread, team: Team, strategy: Strategy, *, actor_id: uuid.UUID | None, by: str
) -> User | None:
    """Set the thread's team and assignee (one of the team's, or nobody when none can take it: the thread then
    waits unassigned in the team's queue); record the events and notify the new assignee. An archived thread is
    INVALID_TRANSITION (threadAssignTeam, a workflow's ASSIGN step)."""
    if thread.status == ThreadStatus.ARCHIVED:
        raise DomainError("INVALID_TRANSITION", "An archived thread cannot be assigned.", "threadId")
    chosen = await pick_agent(session, team, strategy)
    changed = []
    if thread.team_id != team.id:
        thread.team_id = team.id
        changed.append("team_id")

    def record(event: Any) -> None:
        events.record(session, event, organization_id=thread.organization_id, actor_id=actor_id)

    if changed:
        record(ThreadUpdated(thread_id=thread.id, changed=changed))
    assignee_id = chosen.id if chosen else None
    if thread.assignee_id != assignee_id:
        previous, thread.assignee_id = thread.assignee_id, assignee_id
        record(ThreadAssigned(thread_id=thread.id, assignee_id=assignee_id, previous_assignee_id=previous))
        await notify(
            session,
            thread,
            [assignee_id],
            NotificationType.ASSIGNMENT,
            f"{by} assigned {thread.reference} to you ({team.name}): {thread.subject}",
            actor_id=actor_id,
        )
    return chosen


async def thread_assign_team(
    ctx: Context, thread_id: uuid.UUID | None, team_id: uuid.UUID | None, strategy: Strategy
) -> Thread:
    viewer = ctx.require(Permission.THREAD_ASSIGN_ANY)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        team = await get_or_error(session, Team, team_id, "teamId", label="team")
        await give_to_team(session, thread, team, strategy, actor_id=viewer.user_id, by=viewer.name)
    return thread
