"""The workflow engine: committed events start instances, an actor runs their steps, timers end their waits.

* **Starting** (`workflows_start`, the `start_workflows` actor, enqueued by banxway.tasks.consequences for the
  event types in TRIGGER_EVENTS): the active workflows whose trigger the event fires and whose conditions the
  thread meets get an instance — at most one per (workflow, thread, event), so a redelivered job starts nothing
  twice. The same event ends the waits it answers (a customer's reply, an approval).
* **Running** (`workflow_run`, the `run_workflow` actor): one step at a time, each in one transaction with the
  instance's row lock: the step's writes (through the same write paths as the mutations), its history row and
  the instance's next step commit together, so a redelivered job never repeats a step. A reply is sent outside
  that transaction with an idempotency key (a repeat finds the message it sent); an HTTP call is claimed first and
  is never repeated after a crash (its step fails instead). An error of the thread's rules (an archived thread, a
  closed WhatsApp window) fails the instance at once; anything else is retried with back-off, then fails it.
* **Acting**: a workflow acts as `run_as` (its last editor) with that user's role, named "Workflow <name>".
* **Loops**: events a step records carry its workflow and depth (banxway.events.WORKFLOW_RUN); they never start
  the same workflow, and one past workflow_spec.MAX_DEPTH starts an instance that fails saying so.
* **Waits** are rows (`due_at`), swept each minute and enqueued delayed to their instant, like every timer.
"""

from __future__ import annotations

import re
import ssl
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.context import Context, SystemContext, Viewer
from banxway.db.models import (
    Action,
    Contact,
    Customer,
    Event,
    Message,
    Shipment,
    ShipmentMilestone,
    Team,
    TeamMember,
    Thread,
    User,
    Workflow,
    WorkflowInstance,
    WorkflowStepRun,
    WorkflowVersion,
)
from banxway.db.session import SerialSession, tenant_session
from banxway.enums import (
    ActionStatus,
    ActionType,
    Direction,
    MessageStatus,
    NotificationType,
    ThreadStatus,
)
from banxway.enums import WorkflowInstanceStatus as Status
from banxway.enums import WorkflowStepStatus as StepStatus
from banxway.errors import DomainError, PermissionDenied
from banxway.integrations import network, webhook_sender
from banxway.logs import get_logger
from banxway.resolvers import canned_responses, teams, threads
from banxway.resolvers import workflow_spec as spec
from banxway.resolvers.actions import create_action
from banxway.resolvers.agents import new_agent_task
from banxway.resolvers.messages import message_send
from banxway.resolvers.notifications import notify
from banxway.resolvers.sla import organization_calendar

if TYPE_CHECKING:
    from banxway.state import AppState

log = get_logger("banxway.workflows")

MAX_ATTEMPTS = 3  # of a step that fails on something other than the thread's rules
RETRY_DELAYS_S = (5, 30)
SHIPMENT_THREADS_LIMIT = 20
HTTP_TIMEOUT_S = 10.0

# event type -> the trigger types it may fire (and, in `_resumes`, the waits it may end)
TRIGGER_EVENTS: dict[str, tuple[str, ...]] = {
    events.ThreadCreated.type: ("THREAD_CREATED",),
    events.MessageAdded.type: ("MESSAGE_RECEIVED",),
    events.ThreadUpdated.type: ("THREAD_STATUS_CHANGED",),
    events.ThreadArchived.type: ("THREAD_STATUS_CHANGED",),
    events.SlaWarning.type: ("SLA_WARNING",),
    events.SlaBreached.type: ("SLA_BREACHED",),
    events.ShipmentMilestoneAdded.type: ("SHIPMENT_MILESTONE",),
    events.AnalysisCompleted.type: ("ANALYSIS_COMPLETED",),
    events.ActionUpdated.type: (),  # ends approvals
}


class RetryStep(Exception):
    """A step failed on something that may pass later; the actor retries after `delay_s`."""

    def __init__(self, message: str, delay_s: int) -> None:
        super().__init__(message)
        self.delay_s = delay_s


# -- starting ---------------------------------------------------------------------------------------------------


def is_automated(organization_id: Any) -> ColumnElement[bool]:
    """Whether the organization (a column or value) has an active workflow or a waiting instance: its trigger events
    are worth a job (asked by the relay for a batch of organizations in one statement, `consequences.start`)."""
    active = select(Workflow.id).where(Workflow.organization_id == organization_id, Workflow.active.is_(True))
    waiting = select(WorkflowInstance.id).where(
        WorkflowInstance.organization_id == organization_id, WorkflowInstance.status == Status.WAITING.name
    )
    return or_(active.exists(), waiting.exists())


async def workflows_start(ctx: SystemContext, event_id: int) -> list[uuid.UUID]:
    """Start the instances an event calls for and end the waits it answers; the ids of the instances to run."""
    async with ctx.session() as session:
        event = await session.get(Event, event_id)
        if event is None:
            return []
    org = ctx.for_organization(event.organization_id)
    to_run = await _end_waits(org, event)
    trigger_types = TRIGGER_EVENTS.get(event.type, ())
    if not trigger_types:
        return to_run
    async with org.transaction() as session:
        workflows = list(
            await session.scalars(
                select(Workflow).where(Workflow.active.is_(True), Workflow.trigger_type.in_(_trigger_types(event)))
            )
        )
        for workflow in workflows:
            if event.workflow_id == workflow.id:
                continue  # a workflow's own changes never start it again
            version = await _version(session, workflow)
            definition = _definition(version)
            if definition is None:
                continue
            for thread in await _threads_of(session, event, definition.trigger):
                if not await _meets(session, definition, thread, _message_id(event)):
                    continue
                depth = (event.workflow_depth or 0) + 1 if event.workflow_id else 0
                instance_id = await _new_instance(
                    session, workflow, version, thread, f"event:{event.id}", depth, definition.trigger.type
                )
                if instance_id is not None:
                    to_run.append(instance_id)
    return to_run


def _trigger_types(event: Event) -> list[str]:
    payload = event.payload
    if event.type == events.MessageAdded.type and payload.get("direction") != Direction.INBOUND.name:
        return []
    if event.type == events.ThreadUpdated.type and "status" not in payload.get("changed", []):
        return []
    return list(TRIGGER_EVENTS.get(event.type, ()))


def _message_id(event: Event) -> uuid.UUID | None:
    value = event.payload.get("message_id")
    return uuid.UUID(value) if value else None


async def _threads_of(session: AsyncSession, event: Event, trigger: Any) -> list[Thread]:
    """The threads an event fires `trigger` on (none when the trigger's own filter says no)."""
    payload = event.payload
    if isinstance(trigger, spec.MilestoneTrigger):
        milestone = await session.get(ShipmentMilestone, uuid.UUID(payload["milestone_id"]))
        if milestone is None or (trigger.milestone is not None and milestone.type != trigger.milestone):
            return []
        return list(
            await session.scalars(
                select(Thread)
                .where(
                    Thread.shipment_id == uuid.UUID(payload["shipment_id"]),
                    Thread.status != ThreadStatus.ARCHIVED,
                )
                .order_by(Thread.last_activity_at.desc())
                .limit(SHIPMENT_THREADS_LIMIT)
            )
        )
    if event.thread_id is None:
        return []
    thread = await session.get(Thread, event.thread_id)
    if thread is None:
        return []
    if isinstance(trigger, spec.ThreadCreatedTrigger | spec.MessageReceivedTrigger) and trigger.channel is not None:
        channel = payload.get("channel") or thread.primary_channel.name
        if channel != trigger.channel.name:
            return []
    if isinstance(trigger, spec.StatusChangedTrigger) and trigger.to and thread.status not in trigger.to:
        return []
    if (
        isinstance(trigger, spec.AnalysisCompletedTrigger)
        and trigger.intent is not None
        and payload.get("intent") != trigger.intent.name
    ):
        return []
    if (
        isinstance(trigger, spec.SlaTrigger)
        and trigger.target is not None
        and payload.get("target") != trigger.target.name
    ):
        return []
    return [thread]


async def _meets(
    session: AsyncSession, definition: spec.Definition, thread: Thread, message_id: uuid.UUID | None
) -> bool:
    """Whether the thread meets the definition's conditions (the facts are read only when there are some)."""
    if definition.conditions is None:
        return True
    explained = spec.evaluate(definition.conditions, await thread_facts(session, thread, message_id))
    return explained[0].matched


async def _new_instance(
    session: AsyncSession,
    workflow: Workflow,
    version: WorkflowVersion,
    thread: Thread,
    trigger_key: str,
    depth: int,
    trigger_type: str,
) -> uuid.UUID | None:
    """A new instance (None when this trigger already started one); past MAX_DEPTH it starts FAILED, saying why."""
    too_deep = depth > spec.MAX_DEPTH
    error = (
        f"Not run: started by a chain of {depth + 1} workflows (at most {spec.MAX_DEPTH + 1}); a workflow's changes "
        "started another, which started another, …"
        if too_deep
        else None
    )
    status = Status.FAILED if too_deep else Status.RUNNING
    instance_id = await session.scalar(
        insert(WorkflowInstance)
        .values(
            organization_id=workflow.organization_id,
            workflow_id=workflow.id,
            version_id=version.id,
            thread_id=thread.id,
            trigger_key=trigger_key,
            trigger_type=trigger_type,
            depth=depth,
            status=status.name,
            error=error,
            finished_at=func.now() if too_deep else None,
        )
        .on_conflict_do_nothing(constraint="uq_workflow_instances_workflow_id_thread_id_trigger_key")
        .returning(WorkflowInstance.id)
    )
    if instance_id is None:
        return None
    if too_deep:
        _record(
            session,
            thread,
            events.WorkflowFailed(
                thread_id=thread.id,
                instance_id=instance_id,
                workflow_id=workflow.id,
                step_index=None,
                error=error or "",
            ),
        )
        return None
    return instance_id


# -- waits ----------------------------------------------------------------------------------------------------


def _resumes(event: Event) -> list[str]:
    """The waits (WorkflowInstance.waiting_for) an event may end."""
    payload = event.payload
    if event.type == events.MessageAdded.type:
        if payload.get("direction") == Direction.INBOUND.name:
            return ["CUSTOMER_REPLIED"]
        if payload.get("channel") != "INTERNAL" and payload.get("status") != MessageStatus.SCHEDULED.name:
            return ["AGENT_REPLIED"]
    if event.type == events.ThreadUpdated.type and "status" in payload.get("changed", []):
        return ["THREAD_RESOLVED"]
    if event.type == events.ActionUpdated.type and "status" in payload.get("changed", []):
        return ["APPROVAL"]
    return []


async def _end_waits(org: SystemContext, event: Event) -> list[uuid.UUID]:
    kinds = _resumes(event)
    if not kinds or event.thread_id is None:
        return []
    ended: list[uuid.UUID] = []
    async with org.transaction() as session:
        waiting = list(
            await session.scalars(
                select(WorkflowInstance)
                .where(
                    WorkflowInstance.thread_id == event.thread_id,
                    WorkflowInstance.status == Status.WAITING.name,
                    WorkflowInstance.waiting_for.in_(kinds),
                )
                .order_by(WorkflowInstance.id)
                .with_for_update()  # not skip_locked: an instance a timer holds now must still hear of the event
            )
        )
        thread = await session.get(Thread, event.thread_id) if waiting else None
        for instance in waiting:
            outcome = await _wait_outcome(session, instance, event, thread)
            if outcome is not None:
                _resume(instance, outcome, event.type)
                ended.append(instance.id)
    return ended


async def _wait_outcome(
    session: AsyncSession, instance: WorkflowInstance, event: Event, thread: Thread | None
) -> str | None:
    if instance.waiting_for == "APPROVAL":
        if event.payload.get("action_id") != str(instance.wait_action_id):
            return None
        action = await session.get(Action, instance.wait_action_id)
        if action is None or action.status == ActionStatus.CANCELLED:
            return "REJECTED"
        return "APPROVED" if action.status == ActionStatus.DONE else None
    if instance.waiting_for == "THREAD_RESOLVED":
        return "EVENT" if thread is not None and thread.status in (ThreadStatus.RESOLVED, ThreadStatus.CLOSED) else None
    return "EVENT"


def _resume(instance: WorkflowInstance, outcome: str, by: str | None) -> None:
    instance.status = Status.RUNNING.name
    instance.resume = {"outcome": outcome, "by": by}
    instance.waiting_for = None
    instance.due_at = None


async def workflow_timers_due(ctx: SystemContext, within: timedelta) -> list[tuple[uuid.UUID, datetime]]:
    """(instance id, when) of the waits that end before now + `within`, soonest first."""
    horizon = datetime.now(UTC) + within
    async with ctx.session() as session:
        rows = await session.execute(
            select(WorkflowInstance.id, WorkflowInstance.due_at)
            .where(
                WorkflowInstance.due_at.is_not(None),
                WorkflowInstance.due_at <= horizon,
                WorkflowInstance.status == Status.WAITING.name,
            )
            .order_by(WorkflowInstance.due_at)
            .limit(10_000)
        )
        return [(row[0], row[1]) for row in rows]


# -- schedules --------------------------------------------------------------------------------------------------


async def workflows_scheduled(ctx: SystemContext, at: datetime | None = None) -> list[uuid.UUID]:
    """Start the SCHEDULE workflows whose instant came: one instance per matching thread (not archived, the most
    recently active first, at most SCHEDULE_LIMIT); the next instant is set in the same transaction."""
    now = at or datetime.now(UTC)
    async with ctx.session() as session:
        due = list(
            await session.execute(
                select(Workflow.id, Workflow.organization_id).where(
                    Workflow.active.is_(True), Workflow.next_run_at.is_not(None), Workflow.next_run_at <= now
                )
            )
        )
    started: list[uuid.UUID] = []
    for workflow_id, organization_id in due:
        async with ctx.for_organization(organization_id).transaction() as session:
            workflow = await session.scalar(
                select(Workflow).where(Workflow.id == workflow_id).with_for_update(skip_locked=True)
            )
            if workflow is None or not workflow.active or workflow.next_run_at is None or workflow.next_run_at > now:
                continue
            instant = workflow.next_run_at
            version = await _version(session, workflow)
            definition = _definition(version)
            if definition is None or not isinstance(definition.trigger, spec.ScheduleTrigger):
                workflow.next_run_at = None
                continue
            workflow.next_run_at = definition.trigger.next_after(now)
            candidates = await session.scalars(
                select(Thread)
                .where(Thread.status != ThreadStatus.ARCHIVED)
                .order_by(Thread.last_activity_at.desc())
                .limit(spec.SCHEDULE_LIMIT)
            )
            for thread in list(candidates):
                if await _meets(session, definition, thread, None):
                    instance_id = await _new_instance(
                        session, workflow, version, thread, f"schedule:{instant.isoformat()}", 0, "SCHEDULE"
                    )
                    if instance_id is not None:
                        started.append(instance_id)
    return started


# -- facts ------------------------------------------------------------------------------------------------------


async def thread_facts(session: AsyncSession, thread: Thread, message_id: uuid.UUID | None) -> dict[str, Any]:
    """What conditions compare (workflow_spec.FIELDS): the thread, its customer, contact, shipment, the message
    that started the run (or the thread's last inbound one), and whether it is business hours now."""

    async def one(model: Any, row_id: uuid.UUID | None) -> Any:
        return await session.get(model, row_id) if row_id is not None else None

    customer = await one(Customer, thread.customer_id)
    contact = await one(Contact, thread.contact_id)
    shipment = await one(Shipment, thread.shipment_id)
    message = await one(Message, message_id)
    if message is None:
        message = await session.scalar(
            select(Message)
            .where(Message.thread_id == thread.id, Message.direction == Direction.INBOUND)
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    calendar = await organization_calendar(session, thread.organization_id)
    facts: dict[str, Any] = {
        "thread.status": thread.status.name,
        "thread.priority": thread.priority.name,
        "thread.type": thread.type.name,
        "thread.channel": thread.primary_channel.name,
        "thread.subject": thread.subject,
        "thread.tags": list(thread.tags),
        "thread.reference": thread.reference,
        "thread.assigned": thread.assignee_id is not None,
        "thread.team": str(thread.team_id) if thread.team_id else None,
        "thread.intent": thread.intent.name if thread.intent else None,
        "thread.sentiment": thread.sentiment.name if thread.sentiment else None,
        "message.channel": message.channel.name if message else None,
        "message.body": message.body if message else None,
        "business_hours.inside": calendar.is_open(datetime.now(UTC)) if calendar else True,
    }
    if customer is not None:
        fields = customer.custom_fields or {}
        facts.update(
            {
                "customer.name": customer.name,
                "customer.code": customer.code,
                "customer.tags": list(customer.tags),
                "customer.tier": fields.get("tier"),
                **{f"customer.fields.{k}": value for k, value in fields.items()},
            }
        )
    if contact is not None:
        facts.update({"contact.name": contact.name, "contact.title": contact.title})
    if shipment is not None:
        facts.update(
            {
                "shipment.reference": shipment.reference,
                "shipment.mode": shipment.mode.name,
                "shipment.direction": shipment.direction.name,
                "shipment.status": shipment.status.name,
                "shipment.carrier": shipment.carrier,
                "shipment.origin": shipment.origin_code or shipment.origin_name,
                "shipment.destination": shipment.destination_code or shipment.destination_name,
                "shipment.eta": shipment.eta,
                "shipment.etd": shipment.etd,
            }
        )
    return facts


# -- running ----------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one step runs with."""

    state: AppState
    workflow: Workflow
    instance: WorkflowInstance
    thread: Thread
    step: Any
    index: int
    attempt: int  # this run's number among the step's history rows
    failures: int  # the step's failed attempts so far
    viewer: Viewer
    total: int  # the definition's number of steps: past the last, the instance is COMPLETED with its last step


async def workflow_run(ctx: SystemContext, instance_id: uuid.UUID) -> str:
    """Run the instance's steps until it waits, ends or fails; returns its status. Raises RetryStep when a step
    should be tried again later."""
    async with ctx.session() as session:
        organization_id = await session.scalar(
            select(WorkflowInstance.organization_id).where(WorkflowInstance.id == instance_id)
        )
    if organization_id is None:
        return "GONE"
    org = ctx.for_organization(organization_id)
    for _ in range(spec.MAX_STEPS * 2 + 2):
        status = await _step(org, instance_id)
        if status != Status.RUNNING.name:
            return status
    return Status.RUNNING.name  # pragma: no cover - a definition has at most MAX_STEPS steps


async def _lock(session: AsyncSession, instance_id: uuid.UUID) -> WorkflowInstance | None:
    return await session.scalar(select(WorkflowInstance).where(WorkflowInstance.id == instance_id).with_for_update())


async def _step(org: SystemContext, instance_id: uuid.UUID) -> str:
    """Run the instance's steps that are due, in one transaction, until one waits, ends the instance, fails, or is
    external (sent or called after this transaction commits its claim); the instance's status afterwards. Each step
    still writes its own history row and event; they all commit (or none do) with the steps' writes."""
    external: _Run | None = None
    retry: RetryStep | None = None
    async with org.transaction() as session:
        instance = await _lock(session, instance_id)
        if instance is None:
            return "GONE"
        now = datetime.now(UTC)
        if instance.status == Status.WAITING.name and instance.due_at is not None and instance.due_at <= now:
            _resume(instance, "TIMEOUT", None)
        if instance.status != Status.RUNNING.name:
            return instance.status
        workflow = await session.get(Workflow, instance.workflow_id)
        thread = await session.scalar(select(Thread).where(Thread.id == instance.thread_id).with_for_update())
        definition = await _instance_definition(session, instance.version_id)
        if workflow is None or thread is None or definition is None:
            _finish(session, instance, thread, Status.FAILED, "The workflow, its version or the thread is gone.")
            return Status.FAILED.name
        session.info[events.WORKFLOW_RUN] = (workflow.id, instance.depth)
        viewer = await _acting_viewer(session, workflow)
        if viewer is None:
            _finish(
                session,
                instance,
                thread,
                Status.FAILED,
                "The workflow runs as its last editor, who is deactivated or gone: save or activate it again.",
                instance.step_index,
            )
            return Status.FAILED.name
        while instance.status == Status.RUNNING.name:
            index = instance.step_index
            if index >= len(definition.steps):
                _finish(session, instance, thread, Status.COMPLETED)
                break
            step = definition.steps[index]
            runs = list(
                await session.scalars(
                    select(WorkflowStepRun).where(
                        WorkflowStepRun.instance_id == instance.id, WorkflowStepRun.step_index == index
                    )
                )
            )
            for stale in (r for r in runs if r.status == StepStatus.RUNNING.name):  # died between claim and end
                stale.status, stale.finished_at = StepStatus.FAILED.name, now
                stale.error = "interrupted (the worker stopped during the step)"
                if isinstance(step, spec.HttpStep):
                    _finish(
                        session,
                        instance,
                        thread,
                        Status.FAILED,
                        f"Step {index} (HTTP) was interrupted after its request may have been sent; not repeated.",
                        index,
                    )
                    return Status.FAILED.name
            attempt = 1 + max((r.attempt for r in runs), default=0)
            failures = sum(1 for r in runs if r.status == StepStatus.FAILED.name)
            run = _Run(
                org.state, workflow, instance, thread, step, index, attempt, failures, viewer, len(definition.steps)
            )
            if _is_external(run):
                session.add(_step_run(run, StepStatus.RUNNING))  # the claim, committed before the call
                external = run
                break
            mark = events.recorded_mark(session)
            try:
                async with session.begin_nested():
                    outcome = await _run_in_transaction(run, session)
            except Exception as exc:
                events.drop_recorded_since(session, mark)  # rolled back with the savepoint
                await session.refresh(instance)
                await session.refresh(thread)
                permanent = isinstance(exc, DomainError | PermissionDenied)
                if not permanent:
                    log.exception("workflow step failed", instance=str(instance.id), step=index)
                if permanent or failures + 1 >= MAX_ATTEMPTS:
                    _failed_step(session, run, _message(exc))
                    return Status.FAILED.name
                session.add(_step_run(run, StepStatus.FAILED, error=_message(exc)))
                retry = _retry(run, _message(exc))
                break
            _advance(session, run, outcome)
        status = instance.status
    if retry is not None:
        raise retry
    if external is None:
        return status
    try:
        outcome = await _run_external(external)
    except (DomainError, PermissionDenied) as exc:
        return await _end_external(org, external, None, _message(exc), retry=False)
    except RetryStep as exc:
        return await _end_external(org, external, None, str(exc), retry=True)
    return await _end_external(org, external, outcome, None, retry=False)


def _message(exc: Exception) -> str:
    field = getattr(exc, "field", None)
    return f"{exc} ({'.'.join(field)})" if field else str(exc)


async def _acting_viewer(session: AsyncSession, workflow: Workflow) -> Viewer | None:
    user = await session.get(User, workflow.run_as_id) if workflow.run_as_id else None
    if user is None or not user.active:
        return None
    return Viewer(
        user.id, user.organization_id, user.role, user.email, f"Workflow “{workflow.name}”", user.session_version
    )


class WorkflowContext(Context):
    """What a step acts through: the workflow's editor's permissions; the events it records have no actor (like
    the SLA's breach actions) and carry the workflow instead (events.WORKFLOW_RUN)."""

    def record(self, session: AsyncSession, event: events.DomainEvent) -> None:
        events.record(session, event, organization_id=self.viewer.organization_id, actor_id=None)


def _acting(run: _Run, session: AsyncSession | None) -> Context:
    """A Context acting as the workflow: in the step's transaction (`session`), or in its own."""
    ctx = WorkflowContext(run.state, viewer_or_none=run.viewer)
    own = session if session is not None else tenant_session(run.state.sessionmaker, run.workflow.organization_id)
    own.info[events.WORKFLOW_RUN] = (run.workflow.id, run.instance.depth)
    ctx._own_scope.db = SerialSession(own)
    return ctx


def _step_run(run: _Run, status: StepStatus, outcome: dict | None = None, error: str | None = None) -> WorkflowStepRun:
    finished = status in (StepStatus.COMPLETED, StepStatus.FAILED)
    return WorkflowStepRun(
        organization_id=run.workflow.organization_id,
        instance_id=run.instance.id,
        step_index=run.index,
        step_type=run.step.type,
        attempt=run.attempt,
        status=status.name,
        outcome=outcome,
        error=error,
        finished_at=datetime.now(UTC) if finished else None,
    )


def _record(session: AsyncSession, thread: Thread, event: events.DomainEvent) -> None:
    events.record(session, event, organization_id=thread.organization_id, actor_id=None)


def _finish(
    session: AsyncSession,
    instance: WorkflowInstance,
    thread: Thread | None,
    status: Status,
    error: str | None = None,
    step_index: int | None = None,
) -> None:
    instance.status = status.name
    instance.error = error
    instance.due_at = None
    instance.waiting_for = None
    instance.finished_at = datetime.now(UTC)
    if status == Status.FAILED and thread is not None:
        _record(
            session,
            thread,
            events.WorkflowFailed(
                thread_id=thread.id,
                instance_id=instance.id,
                workflow_id=instance.workflow_id,
                step_index=step_index,
                error=error or "",
            ),
        )


def _failed_step(session: AsyncSession, run: _Run, error: str) -> None:
    session.add(_step_run(run, StepStatus.FAILED, error=error))
    _finish(session, run.instance, run.thread, Status.FAILED, f"Step {run.index} ({run.step.type}): {error}", run.index)


@dataclass
class _Outcome:
    """What a step did: `result` (DONE, SKIPPED, WAITING, …) and details; `wait` puts the instance to sleep;
    `next_index` jumps (a timeout branch); `end` completes the instance."""

    result: str
    details: dict[str, Any] | None = None
    wait: tuple[str | None, datetime | None, uuid.UUID | None] | None = None
    next_index: int | None = None
    end: bool = False


def _advance(session: AsyncSession, run: _Run, outcome: _Outcome, claim: WorkflowStepRun | None = None) -> None:
    """Record what the step did (in its `claim`, an external step's, or a new history row) and move the instance on:
    to waiting, to the next (or a jumped-to) step, or COMPLETED past the last; WORKFLOW_STEP_COMPLETED."""
    instance = run.instance
    details = {"result": outcome.result, **(outcome.details or {})}
    if outcome.wait is not None:
        waiting_for, due_at, action_id = outcome.wait
        instance.status, instance.waiting_for, instance.due_at = Status.WAITING.name, waiting_for, due_at
        instance.wait_action_id = action_id
        session.add(_step_run(run, StepStatus.WAITING, details))
    else:
        instance.resume = None
        if claim is None:
            session.add(_step_run(run, StepStatus.COMPLETED, details))
        else:
            claim.status, claim.finished_at, claim.outcome = StepStatus.COMPLETED.name, datetime.now(UTC), details
        instance.step_index = outcome.next_index if outcome.next_index is not None else run.index + 1
        if outcome.end or instance.step_index >= run.total:
            _finish(session, instance, run.thread, Status.COMPLETED)
    _record(
        session,
        run.thread,
        events.WorkflowStepCompleted(
            thread_id=run.thread.id,
            instance_id=instance.id,
            workflow_id=run.workflow.id,
            step_index=run.index,
            step_type=run.step.type,
            outcome=outcome.result,
        ),
    )


def _is_external(run: _Run) -> bool:
    if isinstance(run.step, spec.HttpStep):
        return True
    if isinstance(run.step, spec.SendReplyStep):
        resumed = (run.instance.resume or {}).get("outcome")
        return not run.step.approval or resumed == "APPROVED"
    return False


async def _end_external(
    org: SystemContext, run: _Run, outcome: _Outcome | None, error: str | None, *, retry: bool
) -> str:
    """Record how an external step ended, in a transaction that checks the claim still stands."""
    async with org.transaction() as session:
        instance = await _lock(session, run.instance.id)
        if instance is None or instance.status != Status.RUNNING.name or instance.step_index != run.index:
            return instance.status if instance else "GONE"
        claim = await session.scalar(
            select(WorkflowStepRun).where(
                WorkflowStepRun.instance_id == instance.id,
                WorkflowStepRun.step_index == run.index,
                WorkflowStepRun.attempt == run.attempt,
            )
        )
        thread = await session.get(Thread, instance.thread_id)
        if claim is None or claim.status != StepStatus.RUNNING.name or thread is None:
            return instance.status
        session.info[events.WORKFLOW_RUN] = (run.workflow.id, instance.depth)
        run.instance, run.thread = instance, thread
        if outcome is not None:
            _advance(session, run, outcome, claim)
            return instance.status
        claim.status, claim.finished_at, claim.error = StepStatus.FAILED.name, datetime.now(UTC), error
        if not (retry and run.failures + 1 < MAX_ATTEMPTS):
            _finish(session, instance, thread, Status.FAILED, f"Step {run.index} ({run.step.type}): {error}", run.index)
            return Status.FAILED.name
    raise _retry(run, error or "failed")


def _retry(run: _Run, error: str) -> RetryStep:
    return RetryStep(error, RETRY_DELAYS_S[min(run.failures, len(RETRY_DELAYS_S) - 1)])


# -- the steps --------------------------------------------------------------------------------------------------


async def _run_in_transaction(run: _Run, session: AsyncSession) -> _Outcome:
    step, thread = run.step, run.thread
    ctx = _acting(run, session)
    resumed = (run.instance.resume or {}).get("outcome")
    if isinstance(step, spec.AssignStep):
        if step.team is not None:
            team = await session.get(Team, spec.parse_reference(step.team, "Team"))
            if team is None:
                raise DomainError("NOT_FOUND", "The team no longer exists.", "team")
            chosen = await teams.give_to_team(
                session, thread, team, teams.Strategy[step.strategy], actor_id=None, by=run.viewer.name
            )
            return _Outcome("ASSIGNED" if chosen else "QUEUED", {"assigneeId": str(chosen.id) if chosen else None})
        user_id = spec.parse_reference(step.user, "User")
        await threads.assign_thread(ctx, session, thread, user_id)
        return _Outcome("ASSIGNED", {"assigneeId": str(user_id)})
    if isinstance(step, spec.SetStep):
        changes: dict[str, Any] = {}
        if step.status is not None:
            changes["status"] = step.status
        if step.priority is not None:
            changes["priority"] = step.priority
        if step.thread_type is not None:
            changes["type"] = step.thread_type
        if step.add_tags or step.remove_tags:
            removed = {t.strip().lower() for t in step.remove_tags}
            changes["tags"] = [t for t in [*thread.tags, *step.add_tags] if t.strip().lower() not in removed]
        await threads.update_thread(ctx, session, thread, threads.clean_update(changes))
        return _Outcome("DONE", {"changed": sorted(changes)})
    if isinstance(step, spec.CreateActionStep):
        due_at = datetime.now(UTC) + timedelta(minutes=step.due_in_minutes) if step.due_in_minutes else None
        if step.assign_to == "THREAD_ASSIGNEE":
            assignee = thread.assignee_id
        elif step.assign_to == "NOBODY":
            assignee = None
        else:
            assignee = spec.parse_reference(step.assign_to, "User")
        action = await create_action(ctx, session, thread, step.title, step.action_type, due_at, assignee)
        return _Outcome("DONE", {"actionId": str(action.id)})
    if isinstance(step, spec.CallAgentStep):
        connection_id = spec.parse_reference(step.connection, "AgentConnection")
        task = await new_agent_task(ctx, session, thread, connection_id, step.tool, step.arguments)
        return _Outcome("QUEUED", {"agentTaskId": str(task.id)})
    if isinstance(step, spec.NotifyStep):
        wanted: list[uuid.UUID | None] = []
        if step.user:
            wanted.append(spec.parse_reference(step.user, "User"))
        if step.team:
            team_id = spec.parse_reference(step.team, "Team")
            wanted += list(await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team_id)))
        if step.assignee:
            wanted.append(thread.assignee_id)
        told = await notify(
            session, thread, wanted, NotificationType.WORKFLOW, f"{run.workflow.name}: {step.message}", actor_id=None
        )
        return _Outcome("DONE", {"notified": len(told)})
    if isinstance(step, spec.WaitStep):
        if resumed is None:
            minutes = step.minutes or step.timeout_minutes or 0
            return _Outcome("WAITING", wait=(step.until, datetime.now(UTC) + timedelta(minutes=minutes), None))
        if resumed == "EVENT" or step.until is None:
            return _Outcome("DONE" if resumed == "TIMEOUT" else "EVENT")
        if step.on_timeout == "END":
            return _Outcome("TIMEOUT", end=True)
        return _Outcome("TIMEOUT", next_index=step.on_timeout if isinstance(step.on_timeout, int) else None)
    if isinstance(step, spec.LinkShipmentStep):
        shipment = await _shipment_for(session, thread, step)
        if shipment is None:
            return _Outcome("NOT_FOUND")
        if thread.shipment_id == shipment.id:
            return _Outcome("ALREADY_LINKED", {"shipmentId": str(shipment.id)})
        await threads.update_thread(ctx, session, thread, {"shipment_id": shipment.id})
        return _Outcome("LINKED", {"shipmentId": str(shipment.id), "reference": shipment.reference})
    if isinstance(step, spec.SendReplyStep):  # held for approval (the send itself is external)
        if resumed is None:
            text = await _reply_text(ctx, step, thread)
            action = await create_action(
                ctx,
                session,
                thread,
                f"Approve the reply to {thread.reference}: {text[:200]}",
                ActionType.QUOTE_APPROVAL,
                None,
                None,
            )
            due = (
                datetime.now(UTC) + timedelta(minutes=step.approval_timeout_minutes)
                if step.approval_timeout_minutes
                else None
            )
            return _Outcome("WAITING_FOR_APPROVAL", {"actionId": str(action.id)}, wait=("APPROVAL", due, action.id))
        return _Outcome("NOT_SENT", {"because": resumed})
    raise AssertionError(step)  # pragma: no cover


async def _run_external(run: _Run) -> _Outcome:
    step = run.step
    if isinstance(step, spec.SendReplyStep):
        ctx = _acting(run, None)
        try:
            text = await _reply_text(ctx, step, run.thread)
            message = await message_send(
                ctx,
                thread_id=run.thread.id,
                channel=step.channel or run.thread.primary_channel,
                body=text,
                idempotency_key=f"workflow:{run.instance.id}:{run.index}",
            )
        finally:
            await ctx.aclose()
        return _Outcome("SENT", {"messageId": str(message.id)})
    return await _call(run)


async def _reply_text(ctx: Context, step: spec.SendReplyStep, thread: Thread) -> str:
    body = step.body
    if step.canned_response is not None:
        rendered = await canned_responses.canned_response_render(
            ctx, spec.parse_reference(step.canned_response, "CannedResponse"), thread.id
        )
        if rendered is None:
            raise DomainError("NOT_FOUND", "The canned response no longer exists.", "cannedResponse")
        return rendered
    return await canned_responses.fill(ctx, body or "", thread)


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{3,}")


async def _shipment_for(session: AsyncSession, thread: Thread, step: spec.LinkShipmentStep) -> Shipment | None:
    if step.shipment is not None:
        return await session.get(Shipment, spec.parse_reference(step.shipment, "Shipment"))
    last = await session.scalar(
        select(Message.body)
        .where(Message.thread_id == thread.id, Message.direction == Direction.INBOUND)
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    tokens = sorted({t.upper() for t in _TOKEN.findall(f"{thread.subject} {last or ''}")})[:200]
    if not tokens:
        return None
    return await session.scalar(
        select(Shipment)
        .where(
            or_(
                func.upper(Shipment.reference).in_(tokens),
                func.upper(Shipment.bl_number).in_(tokens),
                func.upper(Shipment.booking_number).in_(tokens),
                func.upper(Shipment.awb_number).in_(tokens),
                Shipment.container_numbers.overlap(tokens),
            )
        )
        .order_by(Shipment.created_at.desc())
        .limit(1)
    )


async def _call(run: _Run) -> _Outcome:
    settings = run.state.settings
    thread = run.thread
    body = orjson.dumps(
        {
            "workflowId": str(run.workflow.id),
            "instanceId": str(run.instance.id),
            "step": run.index,
            "thread": {
                "id": str(thread.id),
                "reference": thread.reference,
                "subject": thread.subject,
                "status": thread.status.name,
                "priority": thread.priority.name,
                "channel": thread.primary_channel.name,
                "tags": list(thread.tags),
            },
        }
    )
    secret = run.state.box.decrypt(run.workflow.signing_secret)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Banxway-Workflows/1",
        "X-Banxway-Signature": webhook_sender.sign(secret, int(time.time()), body),
        "X-Banxway-Delivery": f"{run.instance.id}:{run.index}",
    }
    verify: ssl.SSLContext | bool = True
    if settings.outbound_ca_file:
        verify = ssl.create_default_context(cafile=settings.outbound_ca_file)
    transport = network.transport(public_only=not settings.allow_private_webhooks, verify=verify)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT_S, follow_redirects=False) as client:
            response = await client.post(run.step.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise RetryStep(f"{run.step.url} could not be reached ({type(exc).__name__}: {exc})", 0) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise RetryStep(f"{run.step.url} answered {response.status_code}", 0)
    if response.status_code >= 300:
        raise DomainError("INVALID", f"{run.step.url} answered {response.status_code}", "url")
    return _Outcome("DONE", {"status": response.status_code})


# -- helpers ----------------------------------------------------------------------------------------------------


async def _version(session: AsyncSession, workflow: Workflow) -> WorkflowVersion:
    version = await session.scalar(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == workflow.version
        )
    )
    assert version is not None
    return version


# Versions never change once saved: their parsed definitions are kept (a bounded cache, per process).
_DEFINITIONS: OrderedDict[uuid.UUID, spec.Definition | None] = OrderedDict()
_DEFINITIONS_KEPT = 1000


async def _instance_definition(session: AsyncSession, version_id: uuid.UUID) -> spec.Definition | None:
    if version_id in _DEFINITIONS:
        _DEFINITIONS.move_to_end(version_id)
        return _DEFINITIONS[version_id]
    version = await session.get(WorkflowVersion, version_id)
    return _definition(version) if version is not None else None


def _definition(version: WorkflowVersion) -> spec.Definition | None:
    if version.id in _DEFINITIONS:
        _DEFINITIONS.move_to_end(version.id)
        return _DEFINITIONS[version.id]
    definition, problems = spec.parse(version.definition)
    if problems:  # saved definitions were valid; a later release may have tightened the rules
        log.warning("workflow definition no longer valid", version=str(version.id), problems=len(problems))
    _DEFINITIONS[version.id] = definition
    if len(_DEFINITIONS) > _DEFINITIONS_KEPT:
        _DEFINITIONS.popitem(last=False)
    return definition
