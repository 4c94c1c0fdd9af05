"""Workflows (banxway.resolvers.workflows; the definition's JSON is banxway.resolvers.workflow_spec)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from banxway import db
from banxway.auth import Permission
from banxway.enums import WorkflowInstanceStatus as InstanceStatusEnum
from banxway.enums import WorkflowStepStatus as StepStatusEnum
from banxway.errors import DomainError
from banxway.resolvers import workflows as workflow_use_cases
from banxway.schema.errors import RECORD_CODES, error_type
from banxway.schema.ids import decode, filter_id, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.pagination import Connection, connection
from banxway.schema.users import User

if TYPE_CHECKING:
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]

WorkflowInstanceStatus = strawberry.enum(InstanceStatusEnum, name="WorkflowInstanceStatus")
WorkflowStepStatus = strawberry.enum(StepStatusEnum, name="WorkflowStepStatus")
WorkflowError, WorkflowErrorCode = error_type("Workflow", [*RECORD_CODES, "INVALID_TRANSITION"])

DEFINITION_DOC = (
    "The definition: `{trigger, conditions, steps}` as JSON (see docs/api.md#workflows): a trigger (THREAD_CREATED, "
    "MESSAGE_RECEIVED, ANALYSIS_COMPLETED, THREAD_STATUS_CHANGED, SLA_WARNING, SLA_BREACHED, SHIPMENT_MILESTONE, "
    "SCHEDULE), conditions (all/any/not over field comparisons, keyword, channel, businessHours) and steps (ASSIGN, "
    "SET, CREATE_ACTION, SEND_REPLY, NOTIFY, WAIT, LINK_SHIPMENT, HTTP)."
)


@strawberry.type(description="One saved definition of a workflow; editing the definition adds a version.")
class WorkflowVersion:
    version: int
    definition: JSON
    created_at: datetime
    created_by_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    def created_by(self, info: Ctx) -> User | None:
        return related(self, info, "created_by", "user_by_id", self.created_by_id)  # type: ignore[return-value]


@strawberry.type(
    description="An automation: when its trigger fires on a thread that meets its conditions, its steps run in "
    "order as an instance. It acts as `runAs` (its last editor), with that user's role."
)
class Workflow(Node):
    id: strawberry.ID = _id_field("Workflow")
    name: str
    description: str | None
    active: bool
    version: int = strawberry.field(description="The current version.")
    trigger_type: str
    next_run_at: datetime | None = strawberry.field(description="A SCHEDULE workflow's next instant.")
    created_at: datetime
    updated_at: datetime
    run_as_id: strawberry.Private[uuid.UUID | None]
    signing_secret: strawberry.Private[str]

    is_type_of = _model_type_of(db.Workflow)
    resolve_nodes = _node_resolver("workflow_by_id")

    @strawberry.field(description="The current version's definition.")
    async def definition(self, info: Ctx) -> JSON:
        return await workflow_use_cases.current_definition(info.context, self)  # type: ignore[arg-type]

    @strawberry.field(description="Every version, oldest first.")
    async def versions(self, info: Ctx) -> list[WorkflowVersion]:
        return await workflow_use_cases.workflow_versions(info.context, self.id)  # type: ignore[return-value,arg-type]

    @strawberry.field(description="Who the workflow acts as (its last editor).")
    def run_as(self, info: Ctx) -> User | None:
        return related(self, info, "run_as", "user_by_id", self.run_as_id)  # type: ignore[return-value]

    @strawberry.field(
        name="signingSecret",
        description="The key of the HTTP steps' X-Banxway-Signature (HMAC-SHA256 of `<t>.<body>`); only for "
        "ADMIN and MANAGER, null for others.",
    )
    def signing_secret_value(self, info: Ctx) -> str | None:
        if not info.context.viewer.can(Permission.AUTOMATION_MANAGE):
            return None
        return info.context.box.decrypt(self.signing_secret)


@strawberry.type(description="One attempt of one step: its history.")
class WorkflowStepRun:
    step_index: int
    step_type: str
    attempt: int
    status: WorkflowStepStatus  # type: ignore[valid-type]
    started_at: datetime
    finished_at: datetime | None
    outcome: JSON | None
    error: str | None

    @staticmethod
    def of(row: Any) -> WorkflowStepRun:
        return WorkflowStepRun(
            step_index=row.step_index,
            step_type=row.step_type,
            attempt=row.attempt,
            status=StepStatusEnum[row.status],
            started_at=row.started_at,
            finished_at=row.finished_at,
            outcome=row.outcome,
            error=row.error,
        )


@strawberry.type(description="One run of a workflow version on a thread.")
class WorkflowInstance(Node):
    id: strawberry.ID = _id_field("WorkflowInstance")
    step_index: int = strawberry.field(description="The step that runs next (or waits).")
    trigger_type: str
    depth: int = strawberry.field(description="0, or how many workflows' changes led to this one.")
    waiting_for: str | None = strawberry.field(
        description="While WAITING: CUSTOMER_REPLIED, AGENT_REPLIED, THREAD_RESOLVED, APPROVAL, or null (a duration)."
    )
    due_at: datetime | None = strawberry.field(description="While WAITING: when the wait times out.")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    workflow_id: strawberry.Private[uuid.UUID]
    thread_id: strawberry.Private[uuid.UUID]
    version_id: strawberry.Private[uuid.UUID]

    is_type_of = _model_type_of(db.WorkflowInstance)
    resolve_nodes = _node_resolver("workflow_instance_by_id")

    @strawberry.field
    def status(self) -> WorkflowInstanceStatus:  # type: ignore[valid-type]
        return InstanceStatusEnum[self.status]  # type: ignore[index]

    @strawberry.field
    def workflow(self, info: Ctx) -> Workflow | None:
        return related(self, info, "workflow", "workflow_by_id", self.workflow_id)  # type: ignore[return-value]

    @strawberry.field
    def thread(self, info: Ctx) -> ThreadRef | None:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[return-value]

    @strawberry.field(description="Every step attempt, in order.")
    async def steps(self, info: Ctx) -> list[WorkflowStepRun]:
        rows = await info.context.loaders.step_runs_by_instance_id.load(self.id)  # type: ignore[arg-type]
        return [WorkflowStepRun.of(row) for row in rows]


@strawberry.type
class WorkflowProblem:
    path: str = strawberry.field(description="Where in the definition, e.g. `steps.1.team`.")
    message: str


@strawberry.type
class WorkflowValidation:
    valid: bool
    problems: list[WorkflowProblem]


@strawberry.type
class WorkflowConditionResult:
    path: str
    condition: str
    matched: bool
    actual: JSON | None = strawberry.field(description="The thread's value compared, where there is one.")


@strawberry.type
class WorkflowDryRunStep:
    index: int
    type: str
    summary: str


@strawberry.type(description="What the workflow would do on the thread now; nothing was written.")
class WorkflowDryRun:
    matched: bool = strawberry.field(description="Whether the thread meets the conditions (true without any).")
    trigger: str
    conditions: list[WorkflowConditionResult] = strawberry.field(
        description="Each condition's result, outermost first."
    )
    steps: list[WorkflowDryRunStep] = strawberry.field(description="The steps that would run (none unless matched).")


@strawberry.input
class WorkflowCreateInput:
    name: str
    definition: JSON = strawberry.field(description=DEFINITION_DOC)
    description: str | None = None
    active: bool = strawberry.field(default=False, description="Start active (it then runs as you).")


@strawberry.input(description="Fields left out stay as they are; a different definition adds a version.")
class WorkflowUpdateInput:
    workflow_id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    definition: JSON | None = strawberry.field(default=strawberry.UNSET, description=DEFINITION_DOC)


@strawberry.input
class WorkflowInstanceFilter:
    workflow_id: strawberry.ID | None = None
    thread_id: strawberry.ID | None = None
    status: list[WorkflowInstanceStatus] | None = None  # type: ignore[valid-type]


@strawberry.type
class WorkflowPayload:
    workflow: Workflow | None = None
    user_errors: list[WorkflowError]  # type: ignore[valid-type]


@strawberry.type
class WorkflowInstancePayload:
    instance: WorkflowInstance | None = None
    user_errors: list[WorkflowError]  # type: ignore[valid-type]


async def _mutate(payload: Any, call: Any) -> Any:
    """As schema.errors.mutate, with every problem of an invalid definition as its own userError."""
    try:
        fields = await call()
    except workflow_use_cases.DefinitionInvalid as exc:
        errors = [
            WorkflowError(field=["definition", *p.path.split(".")], message=p.message, code=WorkflowErrorCode.INVALID)  # type: ignore[call-arg]
            for p in exc.problems
        ]
        return payload(user_errors=errors)
    except DomainError as exc:
        return payload(
            user_errors=[WorkflowError(field=exc.field, message=exc.message, code=WorkflowErrorCode(exc.code))]
        )  # type: ignore[call-arg]
    return payload(user_errors=[], **fields)


async def _set_active(info: Ctx, workflow_id: strawberry.ID, active: bool) -> WorkflowPayload:
    async def call() -> dict:
        workflow_uuid = decode(workflow_id, "Workflow", "workflowId")
        return {"workflow": await workflow_use_cases.workflow_set_active(info.context, workflow_uuid, active)}

    return await _mutate(WorkflowPayload, call)


@strawberry.type
class WorkflowQuery:
    @strawberry.field(description="The organization's workflows, by name.")
    async def workflows(self, info: Ctx) -> list[Workflow]:
        return await workflow_use_cases.workflows(info.context)  # type: ignore[return-value]

    @strawberry.field(description="Every problem of a definition, with its path; writes nothing.")
    async def workflow_validate(
        self, info: Ctx, definition: Annotated[JSON, strawberry.argument(description=DEFINITION_DOC)]
    ) -> WorkflowValidation:
        problems = await workflow_use_cases.workflow_validate(info.context, definition)
        return WorkflowValidation(
            valid=not problems, problems=[WorkflowProblem(path=p.path, message=p.message) for p in problems]
        )

    @strawberry.field(
        description="Which of the workflow's conditions the thread meets now, and which steps would run; writes "
        "nothing. Null when the workflow or the thread is not found."
    )
    async def workflow_dry_run(
        self, info: Ctx, workflow_id: strawberry.ID, thread_id: strawberry.ID
    ) -> WorkflowDryRun | None:
        try:
            result = await workflow_use_cases.workflow_dry_run(
                info.context, decode(workflow_id, "Workflow", "workflowId"), decode(thread_id, "Thread", "threadId")
            )
        except DomainError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        return WorkflowDryRun(
            matched=result.matched,
            trigger=result.trigger,
            conditions=[
                WorkflowConditionResult(path=e.path, condition=e.condition, matched=e.matched, actual=e.actual)
                for e in result.conditions
            ],
            steps=[WorkflowDryRunStep(index=i, type=t, summary=s) for i, t, s in result.steps],
        )

    @strawberry.field(description="Workflow instances, newest first.")
    async def workflow_instances(
        self,
        info: Ctx,
        filter: WorkflowInstanceFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[WorkflowInstance]:
        where = workflow_use_cases.InstanceFilter()
        if filter is not None:
            where.workflow_id = filter_id(filter.workflow_id, "Workflow")
            where.thread_id = filter_id(filter.thread_id, "Thread")
            where.status = list(filter.status or []) or None
        page = await workflow_use_cases.workflow_instances_page(info.context, where, first=first, after=after)
        return connection(page)


@strawberry.type
class WorkflowMutation:
    @strawberry.mutation(description="ADMIN and MANAGER. Every problem of the definition is a userError.")
    async def workflow_create(self, info: Ctx, input: WorkflowCreateInput) -> WorkflowPayload:
        async def call() -> dict:
            workflow = await workflow_use_cases.workflow_create(
                info.context,
                name=input.name,
                description=input.description,
                definition=input.definition,
                active=input.active,
            )
            return {"workflow": workflow}

        return await _mutate(WorkflowPayload, call)

    @strawberry.mutation(description="ADMIN and MANAGER; running instances keep their version.")
    async def workflow_update(self, info: Ctx, input: WorkflowUpdateInput) -> WorkflowPayload:
        async def call() -> dict:
            values = {
                name: getattr(input, name)
                for name in ("name", "description", "definition")
                if given(getattr(input, name))
            }
            workflow_id = decode(input.workflow_id, "Workflow", "workflowId")
            return {"workflow": await workflow_use_cases.workflow_update(info.context, workflow_id, values)}

        return await _mutate(WorkflowPayload, call)

    @strawberry.mutation(description="ADMIN and MANAGER. The workflow then runs as you.")
    async def workflow_activate(self, info: Ctx, workflow_id: strawberry.ID) -> WorkflowPayload:
        return await _set_active(info, workflow_id, True)

    @strawberry.mutation(description="ADMIN and MANAGER. Running instances go on (cancel them one by one).")
    async def workflow_deactivate(self, info: Ctx, workflow_id: strawberry.ID) -> WorkflowPayload:
        return await _set_active(info, workflow_id, False)

    @strawberry.mutation(description="ADMIN and MANAGER: stop a RUNNING or WAITING instance.")
    async def workflow_instance_cancel(self, info: Ctx, instance_id: strawberry.ID) -> WorkflowInstancePayload:
        async def call() -> dict:
            instance_uuid = decode(instance_id, "WorkflowInstance", "instanceId")
            return {"instance": await workflow_use_cases.workflow_instance_cancel(info.context, instance_uuid)}

        return await _mutate(WorkflowInstancePayload, call)
