"""Agents over MCP, Banxway as the client: connections to external MCP servers and agent tasks on threads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from banxway import db
from banxway.resolvers import agents as use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, filter_id, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.notes import Note
from banxway.schema.pagination import Connection, connection
from banxway.schema.users import User

if TYPE_CHECKING:
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]
AgentTaskStatus = strawberry.enum(db.AgentTaskStatus, description="QUEUED → RUNNING → COMPLETED or FAILED; CANCELLED.")
AgentError, AgentErrorCode = error_type(
    "Agent", ["INVALID", "NOT_FOUND", "TAKEN", "TOO_LONG", "TOOL_NOT_ALLOWED", "NOT_ALLOWED", "INVALID_TRANSITION"]
)


@strawberry.type(description="A tool an MCP server lists.")
class AgentTool:
    name: str
    description: str | None


@strawberry.type(description="An external MCP server (an agent platform); its auth header is never shown.")
class AgentConnection(Node):
    id: strawberry.ID = _id_field("AgentConnection")
    name: str
    url: str
    auth_header_name: str = strawberry.field(description="The header the stored secret is sent in.")
    allowed_tools: list[str] = strawberry.field(description="The tools tasks may call; empty: every tool listed.")
    active: bool
    last_tested_at: datetime | None
    last_error: str | None = strawberry.field(description="What went wrong at the last failed test.")
    created_at: datetime

    is_type_of = _model_type_of(db.AgentConnection)
    resolve_nodes = _node_resolver("agent_connection_by_id")

    @strawberry.field(description="Whether an auth header is stored (its value is write-only).")
    def has_auth_header(self) -> bool:
        return self.auth_header is not None  # type: ignore[attr-defined]


@strawberry.type(description="A tool of an agent connection asked to work on a thread; its answer becomes a note.")
class AgentTask(Node):
    id: strawberry.ID = _id_field("AgentTask")
    tool: str
    arguments: JSON
    attempts: int
    result: str | None = strawberry.field(description="The tool's answer (cut at 20,000 characters).")
    truncated: bool = strawberry.field(description="Whether the answer was longer than what `result` keeps.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    thread_id: strawberry.Private[uuid.UUID]
    connection_id: strawberry.Private[uuid.UUID | None]
    note_id: strawberry.Private[uuid.UUID | None]
    created_by_id: strawberry.Private[uuid.UUID | None]

    is_type_of = _model_type_of(db.AgentTask)
    resolve_nodes = _node_resolver("agent_task_by_id")

    @strawberry.field
    def status(self) -> AgentTaskStatus:  # type: ignore[valid-type]
        return db.AgentTaskStatus(self.status)  # type: ignore[arg-type]

    @strawberry.field
    def thread(self, info: Ctx) -> ThreadRef | None:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[return-value]

    @strawberry.field(description="Null once the connection was deleted.")
    def connection(self, info: Ctx) -> AgentConnection | None:
        return related(self, info, "connection", "agent_connection_by_id", self.connection_id)  # type: ignore[return-value]

    @strawberry.field(description="The note the answer was posted as.")
    def note(self, info: Ctx) -> Note | None:
        return related(self, info, "note", "note_by_id", self.note_id)  # type: ignore[return-value]

    @strawberry.field
    def created_by(self, info: Ctx) -> User | None:
        return related(self, info, "created_by", "user_by_id", self.created_by_id)  # type: ignore[return-value]


@strawberry.input
class AgentTaskFilter:
    thread_id: strawberry.ID | None = None
    status: list[AgentTaskStatus] | None = None  # type: ignore[valid-type]


@strawberry.input(description="ADMIN and MANAGER: connect an external MCP server (streamable HTTP).")
class AgentConnectionCreateInput:
    name: str
    url: str
    auth_header: str | None = strawberry.field(
        default=None, description="e.g. 'Bearer …': stored encrypted, sent with every request, never shown again."
    )
    auth_header_name: str | None = strawberry.field(default=None, description="Default Authorization.")
    allowed_tools: list[str] | None = strawberry.field(default=None, description="Empty: every tool listed.")
    active: bool | None = None


@strawberry.input(description="Changes the fields given; authHeader null removes it. A new url needs authHeader.")
class AgentConnectionUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    url: str | None = strawberry.UNSET
    auth_header: str | None = strawberry.UNSET
    auth_header_name: str | None = strawberry.UNSET
    allowed_tools: list[str] | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input
class AgentConnectionIdInput:
    id: strawberry.ID


@strawberry.input(description="Ask a tool of an agent connection to work on a thread; its answer becomes a note.")
class AgentTaskCreateInput:
    thread_id: strawberry.ID
    connection_id: strawberry.ID
    tool: str
    arguments: JSON | None = strawberry.field(
        default=None,
        description="The tool's arguments; the thread's reference, subject, shipment reference and "
        "containers are added for the keys the tool declares.",
    )


@strawberry.input
class AgentTaskIdInput:
    id: strawberry.ID


@strawberry.type
class AgentConnectionPayload:
    agent_connection: AgentConnection | None = None
    user_errors: list[AgentError]  # type: ignore[valid-type]


@strawberry.type
class AgentConnectionDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[AgentError]  # type: ignore[valid-type]


@strawberry.type
class AgentConnectionTestPayload:
    ok: bool = False
    detail: str = ""
    tools: list[AgentTool] = strawberry.field(default_factory=list)
    agent_connection: AgentConnection | None = None
    user_errors: list[AgentError]  # type: ignore[valid-type]


@strawberry.type
class AgentTaskPayload:
    agent_task: AgentTask | None = None
    user_errors: list[AgentError]  # type: ignore[valid-type]


def _given(input: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(input, name) for name in names if given(getattr(input, name))}


_FIELDS = ("name", "url", "auth_header", "auth_header_name", "allowed_tools", "active")


@strawberry.type
class AgentQuery:
    @strawberry.field(description="The organization's agent connections, by name.")
    async def agent_connections(self, info: Ctx) -> list[AgentConnection]:
        return await use_cases.agent_connections(info.context)  # type: ignore[return-value]

    @strawberry.field(description="Agent tasks, newest first.")
    async def agent_tasks(
        self,
        info: Ctx,
        thread_id: strawberry.ID | None = None,
        status: list[AgentTaskStatus] | None = None,  # type: ignore[valid-type]
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AgentTask]:
        where = use_cases.TaskFilter(
            thread_id=filter_id(thread_id, "Thread"), status=[s.value for s in status or []] or None
        )
        return connection(await use_cases.agent_tasks_page(info.context, where, first=first, after=after))


@strawberry.type
class AgentMutation:
    @strawberry.mutation(description="ADMIN and MANAGER: connect an external MCP server.")
    async def agent_connection_create(self, info: Ctx, input: AgentConnectionCreateInput) -> AgentConnectionPayload:
        async def call() -> dict:
            fields = {name: value for name, value in _given(input, *_FIELDS).items() if value is not None}
            return {"agent_connection": await use_cases.agent_connection_create(info.context, fields)}

        return await mutate(AgentConnectionPayload, AgentError, AgentErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER: change an agent connection.")
    async def agent_connection_update(self, info: Ctx, input: AgentConnectionUpdateInput) -> AgentConnectionPayload:
        async def call() -> dict:
            connection_id = decode(input.id, "AgentConnection", "id")
            fields = _given(input, *_FIELDS)
            connection = await use_cases.agent_connection_update(info.context, connection_id, fields)
            return {"agent_connection": connection}

        return await mutate(AgentConnectionPayload, AgentError, AgentErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER: delete an agent connection (its queued tasks are cancelled).")
    async def agent_connection_delete(self, info: Ctx, input: AgentConnectionIdInput) -> AgentConnectionDeletePayload:
        async def call() -> dict:
            await use_cases.agent_connection_delete(info.context, decode(input.id, "AgentConnection", "id"))
            return {"deleted_id": input.id}

        return await mutate(AgentConnectionDeletePayload, AgentError, AgentErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER: list the server's tools with the stored auth header.")
    async def agent_connection_test(self, info: Ctx, input: AgentConnectionIdInput) -> AgentConnectionTestPayload:
        async def call() -> dict:
            connection_id = decode(input.id, "AgentConnection", "id")
            result = await use_cases.agent_connection_test(info.context, connection_id)
            return {
                "ok": result.ok,
                "detail": result.detail,
                "tools": [AgentTool(name=t.name, description=t.description) for t in result.tools],
                "agent_connection": await use_cases.agent_connection(info.context, connection_id),
            }

        return await mutate(AgentConnectionTestPayload, AgentError, AgentErrorCode, call)

    @strawberry.mutation(description="Ask an agent's tool to work on a thread; the answer is posted as a note.")
    async def agent_task_create(self, info: Ctx, input: AgentTaskCreateInput) -> AgentTaskPayload:
        async def call() -> dict:
            task = await use_cases.agent_task_create(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                connection_id=decode(input.connection_id, "AgentConnection", "connectionId"),
                tool=input.tool,
                arguments=input.arguments,  # type: ignore[arg-type]
            )
            return {"agent_task": task}

        return await mutate(AgentTaskPayload, AgentError, AgentErrorCode, call)

    @strawberry.mutation(description="Cancel a queued or running agent task (its creator, ADMIN or MANAGER).")
    async def agent_task_cancel(self, info: Ctx, input: AgentTaskIdInput) -> AgentTaskPayload:
        async def call() -> dict:
            return {"agent_task": await use_cases.agent_task_cancel(info.context, decode(input.id, "AgentTask", "id"))}

        return await mutate(AgentTaskPayload, AgentError, AgentErrorCode, call)
