"""Banxway as an MCP client (issue 20): an organization connects external MCP servers (an agent platform, a
carrier-tracking service) and asks their tools to work on a thread; the answer comes back as an internal note.

Connections (AUTOMATION_MANAGE): a name unique in the organization, the server's streamable HTTP URL (refused on a
private or reserved address unless BANXWAY_ALLOW_PRIVATE_WEBHOOKS, checked again at connect time), an auth
header stored encrypted (SecretBox) and never shown again, and an allow-list of tools: empty means every tool the
server lists. Connection changes record no event (administration; nothing live shows them).

Agent tasks (THREAD_CREATE): `agent_task_create` records AGENT_TASK_CREATED, whose consequence is the
`run_agent_task` actor, which calls `agent_task_run`: the task is claimed QUEUED → RUNNING (compare-and-set:
a redelivered job finds it claimed and does nothing), the tool is called with the thread's context under the
provider timeout, then in one transaction the result is posted on the thread as an internal note by the task's
creator (NOTE_ADDED, no @mention notifications: an external agent's words ping no one) and the task is COMPLETED
(AGENT_TASK_COMPLETED). A tool error, a refused address or the last attempt's transient failure FAILS it
(AGENT_TASK_FAILED); an earlier transient failure puts it back to QUEUED and raises `RetryAgentTask`.
`agent_task_cancel` stops a QUEUED or RUNNING task (a running call's answer is then dropped)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from banxway import events
from banxway.auth import Permission
from banxway.db.models import AgentConnection, AgentTask, AgentTaskStatus, Shipment, Thread
from banxway.errors import DomainError
from banxway.events import AgentTaskCompleted, AgentTaskCreated, AgentTaskFailed
from banxway.integrations import agents as adapter
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.notes import add_note
from banxway.resolvers.pagination import Page, paginate
from banxway.resolvers.validation import refuse_private_url

if TYPE_CHECKING:
    from banxway.context import Context, SystemContext

MAX_ATTEMPTS = 4  # the first run and the actor's 3 retries
_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_TOOL = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")
_MAX_ARGUMENTS = 20_000  # characters of the arguments, as JSON


class RetryAgentTask(Exception):
    """A transient failure: the task is QUEUED again; the actor raises so that Dramatiq retries with back-off."""


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    detail: str
    tools: list[adapter.AgentTool]


# -- connections --------------------------------------------------------------------------------------------------


async def _url(ctx: Context, value: str) -> str:
    url = (value or "").strip()
    if not _URL.match(url) or len(url) > 500:
        raise DomainError("INVALID", f"'{value}' is not an http:// or https:// address.", "url")
    if not ctx.settings.allow_private_webhooks:
        await refuse_private_url(url, "url", "an agent's server is on the internet")
    return url


def _tools(values: list[str]) -> list[str]:
    cleaned = []
    for index, value in enumerate(values):
        name = (value or "").strip()
        if not _TOOL.match(name):
            raise DomainError("INVALID", f"'{value}' is not a tool name.", f"allowedTools.{index}")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


async def _values(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if fields.get("name") is not None:
        values["name"] = v.text(fields["name"], "name", max_length=100, required=True)
    if fields.get("url") is not None:
        values["url"] = await _url(ctx, fields["url"])
    if fields.get("auth_header_name") is not None:
        name = fields["auth_header_name"].strip()
        if not _HEADER_NAME.match(name):
            raise DomainError("INVALID", f"'{name}' is not an HTTP header name.", "authHeaderName")
        values["auth_header_name"] = name
    if "auth_header" in fields:  # null or "": none
        secret = (fields["auth_header"] or "").strip()
        if "\n" in secret or "\r" in secret:
            raise DomainError("INVALID", "The auth header is one line.", "authHeader")
        values["auth_header"] = ctx.box.encrypt(secret) if secret else None
    if fields.get("allowed_tools") is not None:
        values["allowed_tools"] = _tools(fields["allowed_tools"])
    if fields.get("active") is not None:
        values["active"] = bool(fields["active"])
    return values


async def agent_connection_create(ctx: Context, fields: dict[str, Any]) -> AgentConnection:
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    values = await _values(ctx, fields)
    for name in ("name", "url"):
        if name not in values:
            raise DomainError("INVALID", f"{name} is required.", name)
    try:
        async with ctx.transaction() as session:
            connection = AgentConnection(organization_id=viewer.organization_id, **values)
            session.add(connection)
            await session.flush()
    except IntegrityError:
        raise DomainError("TAKEN", f"A connection named {values['name']} exists.", "name") from None
    return connection


async def agent_connection_update(
    ctx: Context, connection_id: uuid.UUID | None, fields: dict[str, Any]
) -> AgentConnection:
    """Change the fields given. A new URL needs the auth header again (the kept one would go to another host)."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    values = await _values(ctx, fields)
    try:
        async with ctx.transaction() as session:
            connection = await get_or_error(
                session, AgentConnection, connection_id, "id", lock=True, label="connection"
            )
            if (
                "url" in values
                and values["url"] != connection.url
                and connection.auth_header is not None
                and "auth_header" not in values
            ):
                raise DomainError(
                    "INVALID",
                    "Changing the url sends the auth header to another host: give authHeader again.",
                    "authHeader",
                )
            for name, value in values.items():
                setattr(connection, name, value)
            await session.flush()
    except IntegrityError:
        raise DomainError("TAKEN", f"A connection named {values.get('name')} exists.", "name") from None
    return connection


async def agent_connection_delete(ctx: Context, connection_id: uuid.UUID | None) -> uuid.UUID:
    """Delete a connection; its tasks stay (their connection becomes null), queued ones are cancelled."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        connection = await get_or_error(session, AgentConnection, connection_id, "id", lock=True, label="connection")
        queued = await session.scalars(
            select(AgentTask)
            .where(AgentTask.connection_id == connection.id, AgentTask.status == AgentTaskStatus.QUEUED.value)
            .with_for_update()
        )
        for task in queued:
            _finish(ctx, session, task, AgentTaskStatus.CANCELLED, "Its agent connection was deleted.")
        await session.delete(connection)
    return connection.id


def server_of(ctx: Context | SystemContext, connection: AgentConnection) -> adapter.AgentServer:
    headers = {}
    if connection.auth_header:
        headers[connection.auth_header_name] = ctx.state.box.decrypt(connection.auth_header)
    return adapter.AgentServer(
        url=connection.url,
        headers=headers,
        timeout=ctx.state.settings.provider_timeout_seconds,
        public_only=not ctx.state.settings.allow_private_webhooks,
    )


async def agent_connection_test(ctx: Context, connection_id: uuid.UUID | None) -> ConnectionTest:
    """List the server's tools with the stored header; the outcome is kept (`last_tested_at`, `last_error`)."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    connection = await get_or_error(ctx.db.session, AgentConnection, connection_id, "id", label="connection")
    try:
        tools = await adapter.list_tools(server_of(ctx, connection))
        result = ConnectionTest(True, f"{len(tools)} tools listed", tools)
    except adapter.AgentError as exc:
        result = ConnectionTest(False, exc.detail, [])
    async with ctx.transaction() as session:
        row = await get_or_error(session, AgentConnection, connection_id, "id", lock=True, label="connection")
        row.last_tested_at = datetime.now(UTC)
        row.last_error = None if result.ok else result.detail
    return result


async def agent_connections(ctx: Context) -> list[AgentConnection]:
    """The organization's connections by name (READ: whoever may create a task may see what to choose from)."""
    ctx.require(Permission.READ)
    return list(await ctx.db.scalars(select(AgentConnection).order_by(AgentConnection.name)))


async def agent_connection(ctx: Context, connection_id: uuid.UUID | None) -> AgentConnection | None:
    ctx.require(Permission.READ)
    return await ctx.db.session.get(AgentConnection, connection_id) if connection_id is not None else None


# -- tasks --------------------------------------------------------------------------------------------------------


async def agent_task_create(
    ctx: Context,
    *,
    thread_id: uuid.UUID | None,
    connection_id: uuid.UUID | None,
    tool: str,
    arguments: dict[str, Any] | None,
) -> AgentTask:
    ctx.require(Permission.THREAD_CREATE)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        return await new_agent_task(ctx, session, thread, connection_id, tool, arguments)


async def new_agent_task(
    ctx: Context,
    session: Any,
    thread: Thread,
    connection_id: uuid.UUID | None,
    tool: str,
    arguments: dict[str, Any] | None,
) -> AgentTask:
    """The one write of an agent task and its AGENT_TASK_CREATED (whose consequence runs it), in the caller's
    transaction: agentTaskCreate, and a workflow's CALL_AGENT step (acting as the workflow's editor)."""
    viewer = ctx.viewer
    name = (tool or "").strip()
    if not _TOOL.match(name):
        raise DomainError("INVALID", f"'{tool}' is not a tool name.", "tool")
    arguments = arguments or {}
    if not isinstance(arguments, dict):
        raise DomainError("INVALID", "arguments is a JSON object.", "arguments")
    if len(str(arguments)) > _MAX_ARGUMENTS:
        raise DomainError("INVALID", f"arguments is longer than {_MAX_ARGUMENTS} characters.", "arguments")
    connection = await get_or_error(session, AgentConnection, connection_id, "connectionId", label="connection")
    if not connection.active:
        raise DomainError("INVALID", f"The connection {connection.name} is not active.", "connectionId")
    if connection.allowed_tools and name not in connection.allowed_tools:
        raise DomainError(
            "TOOL_NOT_ALLOWED",
            f"{connection.name} allows {', '.join(connection.allowed_tools)}, not {name}.",
            "tool",
        )
    task = AgentTask(
        organization_id=viewer.organization_id,
        thread_id=thread.id,
        connection_id=connection.id,
        tool=name,
        arguments=arguments,
        created_by_id=viewer.user_id,
    )
    session.add(task)
    await session.flush()
    ctx.record(session, AgentTaskCreated(thread_id=thread.id, task_id=task.id))
    return task


def _finish(ctx: Context | SystemContext, session: Any, task: AgentTask, status: AgentTaskStatus, error: str) -> None:
    task.status = status.value
    task.error = error
    task.finished_at = datetime.now(UTC)
    ctx.record(
        session,
        AgentTaskFailed(
            thread_id=task.thread_id, task_id=task.id, error=error, cancelled=status == AgentTaskStatus.CANCELLED
        ),
    )


async def agent_task_cancel(ctx: Context, task_id: uuid.UUID | None) -> AgentTask:
    """Cancel a QUEUED or RUNNING task (AGENT_TASK_FAILED with `cancelled`): its creator, or AUTOMATION_MANAGE."""
    viewer = ctx.require(Permission.THREAD_CREATE)
    async with ctx.transaction() as session:
        task = await get_or_error(session, AgentTask, task_id, "id", lock=True, label="agent task")
        if task.created_by_id != viewer.user_id and not viewer.can(Permission.AUTOMATION_MANAGE):
            raise DomainError("NOT_ALLOWED", "Only its creator or an automation manager may cancel a task.", "id")
        if task.status not in (AgentTaskStatus.QUEUED.value, AgentTaskStatus.RUNNING.value):
            raise DomainError("INVALID_TRANSITION", f"The task is {task.status} already.", "id")
        _finish(ctx, session, task, AgentTaskStatus.CANCELLED, f"Cancelled by {viewer.name}.")
    return task


@dataclass
class TaskFilter:
    thread_id: uuid.UUID | None = None
    status: list[str] | None = None


async def agent_tasks_page(ctx: Context, where: TaskFilter, *, first: int | None, after: str | None) -> Page[AgentTask]:
    """Newest first."""
    ctx.require(Permission.READ)
    query = select(AgentTask)
    if where.thread_id is not None:
        query = query.where(AgentTask.thread_id == where.thread_id)
    if where.status:
        query = query.where(AgentTask.status.in_(where.status))
    keys = (AgentTask.created_at, AgentTask.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)


async def _thread_context(session: Any, thread: Thread) -> dict[str, Any]:
    shipment = await session.get(Shipment, thread.shipment_id) if thread.shipment_id else None
    return {
        "reference": thread.reference,
        "subject": thread.subject,
        "shipment_reference": shipment.reference if shipment else None,
        "containers": list(shipment.container_numbers) if shipment else [],
    }


def _note_body(task: AgentTask, connection_name: str, result: adapter.ToolResult) -> str:
    body = f"Agent {connection_name} · {task.tool}:\n\n{result.text or '(no text)'}"
    if result.truncated:
        body += f"\n\n[Truncated: the answer was longer than {adapter.RESULT_LIMIT:,} characters.]"
    return body


async def agent_task_run(ctx: SystemContext, task_id: uuid.UUID) -> AgentTaskStatus | None:
    """Run a QUEUED task (see the module); its status afterwards, None if there is no such task. Raises
    RetryAgentTask on a transient failure before the last attempt."""
    async with ctx.transaction() as session:  # claim: compare-and-set, committed before the call
        claimed = await session.scalar(
            update(AgentTask)
            .where(AgentTask.id == task_id, AgentTask.status == AgentTaskStatus.QUEUED.value)
            .values(
                status=AgentTaskStatus.RUNNING.value,
                attempts=AgentTask.attempts + 1,
                started_at=datetime.now(UTC),
            )
            .returning(AgentTask.organization_id)
        )
        if claimed is None:
            status = await session.scalar(select(AgentTask.status).where(AgentTask.id == task_id))
            return AgentTaskStatus(status) if status else None
    ctx = ctx.for_organization(claimed)
    async with ctx.session() as session:
        task = await session.get(AgentTask, task_id)
        assert task is not None
        connection = await session.get(AgentConnection, task.connection_id) if task.connection_id else None
        thread = await session.get(Thread, task.thread_id)
        context = await _thread_context(session, thread) if thread else {}
        server = server_of(ctx, connection) if connection else None
        name = connection.name if connection else "?"
        attempts, tool, arguments = task.attempts, task.tool, dict(task.arguments)
    result: adapter.ToolResult | None = None
    error: adapter.AgentError | None = None
    if server is None or not connection.active:  # type: ignore[union-attr]
        error = adapter.AgentError("The agent connection was deleted or deactivated.", transient=False)
    else:
        try:
            result = await adapter.call_tool(server, tool, arguments, context)
        except adapter.AgentError as exc:
            error = exc
    async with ctx.transaction() as session:
        task = await session.get(AgentTask, task_id, with_for_update=True)
        assert task is not None
        if task.status != AgentTaskStatus.RUNNING.value:  # cancelled meanwhile: the answer is dropped
            return AgentTaskStatus(task.status)
        if result is not None:
            thread = await session.get_one(Thread, task.thread_id)
            note = await add_note(session, thread, author_id=task.created_by_id, body=_note_body(task, name, result))
            task.status = AgentTaskStatus.COMPLETED.value
            task.result, task.truncated, task.note_id = result.text, result.truncated, note.id
            task.error = None
            task.finished_at = datetime.now(UTC)
            event = AgentTaskCompleted(thread_id=task.thread_id, task_id=task.id, note_id=note.id)
            # by the task's creator, as the note is
            events.record(session, event, organization_id=task.organization_id, actor_id=task.created_by_id)
            return AgentTaskStatus.COMPLETED
        assert error is not None
        if error.transient and attempts < MAX_ATTEMPTS:
            task.status = AgentTaskStatus.QUEUED.value
            task.error = error.detail
            retry = True
        else:
            suffix = f" (after {attempts} attempts)" if error.transient else ""
            _finish(ctx, session, task, AgentTaskStatus.FAILED, error.detail + suffix)
            retry = False
    if retry:
        raise RetryAgentTask(error.detail)
    return AgentTaskStatus.FAILED


STUCK_AFTER = timedelta(minutes=10)  # far past the provider timeout: the worker that claimed it is gone
LOST_AFTER = timedelta(minutes=5)  # QUEUED that long: its job was lost (Redis down when it was sent, say)


async def agent_tasks_to_requeue(ctx: SystemContext, *, limit: int = 500) -> list[uuid.UUID]:
    """The tasks to enqueue again: QUEUED ones whose job was lost, and RUNNING ones whose worker died mid-call —
    those go back to QUEUED (an attempt spent), or FAILED (AGENT_TASK_FAILED) after the last attempt."""
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        stuck = list(
            await session.scalars(
                select(AgentTask)
                .where(AgentTask.status == AgentTaskStatus.RUNNING.value, AgentTask.started_at < now - STUCK_AFTER)
                .with_for_update(skip_locked=True)
                .limit(limit)
            )
        )
        for task in stuck:
            if task.attempts < MAX_ATTEMPTS:
                task.status = AgentTaskStatus.QUEUED.value
                task.error = "The worker stopped during the call; asked again."
            else:
                _finish(
                    ctx.for_organization(task.organization_id),
                    session,
                    task,
                    AgentTaskStatus.FAILED,
                    f"The worker stopped during the call (after {task.attempts} attempts).",
                )
        lost = await session.scalars(
            select(AgentTask.id)
            .where(
                AgentTask.status == AgentTaskStatus.QUEUED.value,
                func.coalesce(AgentTask.started_at, AgentTask.created_at) < now - LOST_AFTER,
            )
            .limit(limit)
        )
        return sorted({*lost, *(task.id for task in stuck if task.status == AgentTaskStatus.QUEUED.value)})
