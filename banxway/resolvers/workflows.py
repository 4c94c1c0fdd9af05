"""Workflows as the API sees them: definitions with versions (ADMIN and MANAGER edit, everyone reads), validation
with every problem's path, a dry run that writes nothing, instances with their step history, cancellation.
The engine that runs them is banxway.resolvers.workflow_engine."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from banxway import events
from banxway.auth import Permission
from banxway.context import Context
from banxway.db.models import (
    AgentConnection,
    CannedResponse,
    Shipment,
    Team,
    Thread,
    User,
    Workflow,
    WorkflowInstance,
    WorkflowVersion,
)
from banxway.enums import WorkflowInstanceStatus as Status
from banxway.errors import DomainError
from banxway.integrations import network
from banxway.resolvers import validation as v
from banxway.resolvers import workflow_spec as spec
from banxway.resolvers.common import get_or_error
from banxway.resolvers.pagination import Page, paginate
from banxway.resolvers.workflow_engine import thread_facts


class DefinitionInvalid(DomainError):
    """A definition with problems; `problems` lists every one with its path (the first is the error's field)."""

    def __init__(self, problems: list[spec.Problem]) -> None:
        first = problems[0]
        super().__init__("INVALID", first.message, f"definition.{first.path}")
        self.problems = problems


async def workflows(ctx: Context) -> list[Workflow]:
    ctx.require(Permission.READ)
    return await ctx.db.scalars(select(Workflow).order_by(func.lower(Workflow.name), Workflow.id))


async def workflow_versions(ctx: Context, workflow_id: uuid.UUID) -> list[WorkflowVersion]:
    ctx.require(Permission.READ)
    return await ctx.db.scalars(
        select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id).order_by(WorkflowVersion.version)
    )


async def current_definition(ctx: Context, workflow: Workflow) -> dict[str, Any]:
    version = await ctx.db.scalar(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == workflow.version
        )
    )
    return version.definition if version is not None else {}


# -- validation -------------------------------------------------------------------------------------------------


_REFERENCES = (
    ("team", "team", Team, "Team"),
    ("user", "user", User, "User"),
    ("cannedResponse", "canned_response", CannedResponse, "CannedResponse"),
    ("shipment", "shipment", Shipment, "Shipment"),
    ("connection", "connection", AgentConnection, "AgentConnection"),
)


async def _problems(ctx: Context, data: Any) -> tuple[spec.Definition | None, list[spec.Problem]]:
    """The definition's problems, including ids that name nothing of the organization."""
    definition, problems = spec.parse(data)
    if definition is None:
        return None, problems
    found: list[spec.Problem] = []
    for index, step in enumerate(definition.steps):
        for name, attribute, model, type_name in _REFERENCES:
            value = getattr(step, attribute, None)
            if value is None:
                continue
            row_id = spec.parse_reference(value, type_name)
            row = await ctx.db.scalar(select(model.id).where(model.id == row_id))
            if row is None:
                found.append(spec.Problem(path=f"steps.{index}.{name}", message=f"no such {type_name}"))
        if isinstance(step, spec.HttpStep) and not ctx.settings.allow_private_webhooks:
            address = await network.private_address(step.url)
            if address is not None:
                message = f"{step.url} is on a private or reserved address ({address}): HTTP steps call the internet"
                found.append(spec.Problem(path=f"steps.{index}.url", message=message))
        assign_to = getattr(step, "assign_to", None)
        if assign_to not in (None, "THREAD_ASSIGNEE", "NOBODY"):
            row_id = spec.parse_reference(assign_to, "User")
            if await ctx.db.scalar(select(User.id).where(User.id == row_id)) is None:
                found.append(spec.Problem(path=f"steps.{index}.assignTo", message="no such User"))
    return (definition if not found else None), found


async def workflow_validate(ctx: Context, data: Any) -> list[spec.Problem]:
    ctx.require(Permission.READ)
    return (await _problems(ctx, data))[1]


async def _valid(ctx: Context, data: Any) -> spec.Definition:
    definition, problems = await _problems(ctx, data)
    if definition is None:
        raise DefinitionInvalid(problems)
    return definition


# -- editing ----------------------------------------------------------------------------------------------------


async def _unique_name(ctx: Context, name: str, workflow_id: uuid.UUID | None) -> None:
    clash = await ctx.db.scalar(
        select(Workflow.id).where(func.lower(Workflow.name) == name.lower(), Workflow.id != workflow_id)
    )
    if clash is not None:
        raise DomainError("TAKEN", f"A workflow named {name!r} exists.", "name")


def _schedule(workflow: Workflow, definition: spec.Definition) -> None:
    trigger = definition.trigger
    workflow.trigger_type = trigger.type
    scheduled = workflow.active and isinstance(trigger, spec.ScheduleTrigger)
    workflow.next_run_at = trigger.next_after(datetime.now(UTC)) if scheduled else None  # type: ignore[union-attr]


async def workflow_create(
    ctx: Context, *, name: str, description: str | None, definition: Any, active: bool
) -> Workflow:
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    clean_name = v.text(name, "name", max_length=200, required=True)
    clean_description = v.text(description, "description", max_length=2000)
    parsed = await _valid(ctx, definition)
    await _unique_name(ctx, clean_name, None)
    async with ctx.transaction() as session:
        workflow = Workflow(
            organization_id=viewer.organization_id,
            name=clean_name,
            description=clean_description,
            active=active,
            version=1,
            signing_secret=ctx.box.encrypt(secrets.token_urlsafe(32)),
            run_as_id=viewer.user_id,
        )
        _schedule(workflow, parsed)
        session.add(workflow)
        await session.flush()
        session.add(
            WorkflowVersion(
                organization_id=viewer.organization_id,
                workflow_id=workflow.id,
                version=1,
                definition=spec.to_json(parsed),
                created_by_id=viewer.user_id,
            )
        )
    return workflow


async def workflow_update(ctx: Context, workflow_id: uuid.UUID | None, changes: dict[str, Any]) -> Workflow:
    """Name and description change in place; a different definition becomes a new version (running instances
    keep theirs). The workflow then runs as the viewer."""
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = v.text(changes["name"], "name", max_length=200, required=True)
    if "description" in changes:
        values["description"] = v.text(changes["description"], "description", max_length=2000)
    parsed = await _valid(ctx, changes["definition"]) if changes.get("definition") is not None else None
    if "name" in values:
        await _unique_name(ctx, values["name"], workflow_id)
    async with ctx.transaction() as session:
        workflow = await get_or_error(session, Workflow, workflow_id, "workflowId", lock=True, label="workflow")
        for name, value in values.items():
            setattr(workflow, name, value)
        workflow.run_as_id = viewer.user_id
        if parsed is not None:
            current = await session.scalar(
                select(WorkflowVersion.definition).where(
                    WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == workflow.version
                )
            )
            new = spec.to_json(parsed)
            if new != current:
                workflow.version += 1
                session.add(
                    WorkflowVersion(
                        organization_id=workflow.organization_id,
                        workflow_id=workflow.id,
                        version=workflow.version,
                        definition=new,
                        created_by_id=viewer.user_id,
                    )
                )
            _schedule(workflow, parsed)
        workflow.updated_at = datetime.now(UTC)
    return workflow


async def workflow_set_active(ctx: Context, workflow_id: uuid.UUID | None, active: bool) -> Workflow:
    """Activate (it then runs as the viewer) or deactivate: new triggers start nothing; running instances go on
    (cancel them with workflowInstanceCancel)."""
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        workflow = await get_or_error(session, Workflow, workflow_id, "workflowId", lock=True, label="workflow")
        definition = await session.scalar(
            select(WorkflowVersion.definition).where(
                WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == workflow.version
            )
        )
        parsed, problems = spec.parse(definition)
        if parsed is None:
            raise DefinitionInvalid(problems)
        workflow.active = active
        if active:
            workflow.run_as_id = viewer.user_id
        _schedule(workflow, parsed)
    return workflow


# -- dry run ----------------------------------------------------------------------------------------------------


@dataclass
class DryRun:
    matched: bool
    trigger: str
    conditions: list[spec.Explained]
    steps: list[tuple[int, str, str]] = field(default_factory=list)  # (index, type, what it would do)


async def workflow_dry_run(ctx: Context, workflow_id: uuid.UUID | None, thread_id: uuid.UUID | None) -> DryRun:
    """Which conditions the thread meets now and which steps would run; writes nothing."""
    ctx.require(Permission.READ)
    session = ctx.db.session
    workflow = await get_or_error(ctx.db, Workflow, workflow_id, "workflowId", label="workflow")
    thread = await get_or_error(ctx.db, Thread, thread_id, "threadId", label="thread")
    definition, problems = spec.parse(await current_definition(ctx, workflow))
    if definition is None:
        raise DefinitionInvalid(problems)
    async with ctx.db.lock:
        facts = await thread_facts(session, thread, None)
        explained = spec.evaluate(definition.conditions, facts)
        matched = not explained or explained[0].matched
        steps = [(i, step.type, await _describe(session, step)) for i, step in enumerate(definition.steps)]
    return DryRun(matched, _describe_trigger(definition.trigger), explained, steps if matched else [])


def _describe_trigger(trigger: Any) -> str:
    extra = {k: v for k, v in trigger.model_dump(mode="json", by_alias=True, exclude_none=True).items() if k != "type"}
    details = ", ".join(f"{k}: {v}" for k, v in extra.items() if v not in ([], None))
    return f"{trigger.type}" + (f" ({details})" if details else "")


async def _name_of(session: Any, model: Any, value: str | None, type_name: str) -> str:
    row = await session.get(model, spec.parse_reference(value, type_name)) if value else None
    return getattr(row, "name", None) or getattr(row, "reference", None) or f"a missing {type_name}"


async def _describe(session: Any, step: Any) -> str:
    if isinstance(step, spec.AssignStep):
        if step.team:
            return f"assign to team {await _name_of(session, Team, step.team, 'Team')} ({step.strategy})"
        return f"assign to {await _name_of(session, User, step.user, 'User')}"
    if isinstance(step, spec.SetStep):
        parts = [f"{k} {v}" for k, v in step.model_dump(mode="json", by_alias=True, exclude_none=True).items()]
        return "set " + ", ".join(p for p in parts if not p.startswith("type") and not p.endswith("[]"))
    if isinstance(step, spec.CreateActionStep):
        due = f", due in {step.due_in_minutes} min" if step.due_in_minutes else ""
        return f"create {step.action_type.name} action {step.title!r}{due}"
    if isinstance(step, spec.SendReplyStep):
        source = (
            f"canned response {await _name_of(session, CannedResponse, step.canned_response, 'CannedResponse')}"
            if step.canned_response
            else "a body"
        )
        return f"send a reply from {source}" + (" after a VALIDATOR approves it" if step.approval else "")
    if isinstance(step, spec.NotifyStep):
        return f"notify: {step.message}"
    if isinstance(step, spec.WaitStep):
        if step.minutes:
            return f"wait {step.minutes} min"
        return f"wait until {step.until} (timeout {step.timeout_minutes} min, then {step.on_timeout})"
    if isinstance(step, spec.LinkShipmentStep):
        return "link the shipment " + (
            await _name_of(session, Shipment, step.shipment, "Shipment") if step.shipment else "mentioned in the thread"
        )
    if isinstance(step, spec.CallAgentStep):
        connection = await _name_of(session, AgentConnection, step.connection, "AgentConnection")
        return f"ask {step.tool} of {connection} (an agent task; its answer comes back as a note)"
    return f"POST the thread to {step.url}"


# -- instances --------------------------------------------------------------------------------------------------


@dataclass
class InstanceFilter:
    workflow_id: uuid.UUID | None = None
    thread_id: uuid.UUID | None = None
    status: list[Status] | None = None


async def workflow_instances_page(
    ctx: Context, where: InstanceFilter, *, first: int | None, after: str | None
) -> Page[WorkflowInstance]:
    """Newest first."""
    ctx.require(Permission.READ)
    query = select(WorkflowInstance)
    if where.workflow_id is not None:
        query = query.where(WorkflowInstance.workflow_id == where.workflow_id)
    if where.thread_id is not None:
        query = query.where(WorkflowInstance.thread_id == where.thread_id)
    if where.status:
        query = query.where(WorkflowInstance.status.in_([s.name for s in where.status]))
    keys = (WorkflowInstance.created_at, WorkflowInstance.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)


async def workflow_instance_cancel(ctx: Context, instance_id: uuid.UUID | None) -> WorkflowInstance:
    """Stop a RUNNING or WAITING instance: no further step runs (one running now finishes)."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        instance = await get_or_error(session, WorkflowInstance, instance_id, "instanceId", lock=True, label="instance")
        if instance.status not in (Status.RUNNING.name, Status.WAITING.name):
            raise DomainError("INVALID_TRANSITION", f"The instance is {instance.status} already.", "instanceId")
        instance.status = Status.CANCELLED.name
        instance.due_at = None
        instance.waiting_for = None
        instance.finished_at = datetime.now(UTC)
        ctx.record(
            session,
            events.WorkflowCancelled(
                thread_id=instance.thread_id, instance_id=instance.id, workflow_id=instance.workflow_id
            ),
        )
    return instance
