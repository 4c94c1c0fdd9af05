"""The Banxway MCP server (the official `mcp` SDK's `MCPServer`): tools, resources and prompts for an AI agent.

Every tool is a thin call of the use-case (`banxway.resolvers`) that the GraphQL query or mutation of the same job
calls, acting as the personal API token's user through `banxway.mcp.calls.call`: the organization scope, the role
matrix and the token's scopes bound it exactly as they bound GraphQL. `tools/list` shows a caller only the tools
their role allows within their token's scopes (`TOOL_PERMISSIONS`): READ gives the read tools; WRITE adds notes,
actions, assignment and shipment links; SEND adds `draft_reply` (composeStart needs MESSAGE_SEND) and
`send_message`. A tool called anyway is refused with FORBIDDEN, as its mutation would be."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.caching import CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context as McpContext
from mcp.server.mcpserver import MCPServer, UserMessage
from mcp_types import EmbeddedResource, TextResourceContents, ToolAnnotations
from pydantic import Field

from banxway.auth import Permission
from banxway.enums import (
    ActionType,
    Channel,
    ComposeTone,
    Intent,
    Priority,
    Sentiment,
    SlaStatus,
    ThreadStatus,
    ThreadType,
)
from banxway.errors import DomainError
from banxway.mcp.calls import TOOL_PERMISSIONS, call, caller_of, global_id, local_id
from banxway.mcp.views import (
    find_shipment,
    find_shipment_by_reference,
    find_thread,
    iso,
    shipment_dict,
    shipment_markdown,
    thread_detail,
    thread_dict,
    thread_key,
    thread_markdown,
    thread_summary,
    user_key,
)
from banxway.resolvers import actions as action_use_cases
from banxway.resolvers import compose as compose_use_cases
from banxway.resolvers import inbox as inbox_use_cases
from banxway.resolvers import messages as message_use_cases
from banxway.resolvers import notes as note_use_cases
from banxway.resolvers import shipments as shipment_use_cases
from banxway.resolvers import threads as thread_use_cases

if TYPE_CHECKING:
    from banxway.context import Context
    from banxway.db.models import Shipment

NIL = uuid.UUID(int=0)  # a filter on an id that is not one of ours matches nothing, never everything
RESOURCE_MESSAGES = 50  # messages of a thread in its Markdown (the most recent)

INSTRUCTIONS = """Banxway is a freight forwarder's shared inbox: threads (BX-YYYY-NNNN) of customer messages on
email, WhatsApp, SMS and calls, linked to customers, contacts and shipments (containers, BL, AWB, booking numbers).
Find work with search_threads or find_shipment, read a thread with get_thread (or the resource
banxway://threads/{reference}), draft a reply with draft_reply (nothing is sent), and record what you did with
add_note. Write tools act as the API token's user and are recorded in the audit log with the token's name. Errors
say CODE (field): message; FORBIDDEN means the token's scopes or its user's role do not allow the call."""

ThreadArgument = Annotated[str, Field(description="The thread: its reference (BX-2026-0042) or its global id.")]
Assignee = Annotated[
    str | None, Field(description="\"me\" (the token's user), a user's email or global id; null for nobody.")
]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DRAFT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
SEND = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)


# -- reading ------------------------------------------------------------------------------------------------------


async def search_threads(
    mcp_ctx: McpContext,
    search: Annotated[
        str | None,
        Field(
            description="Words each thread must match as prefixes: in its subject or reference, a message, a note, "
            "its shipment's reference, container, BL, AWB or booking number, its customer or contact."
        ),
    ] = None,
    status: Annotated[
        list[ThreadStatus] | None, Field(description="Any of these statuses; by default all but ARCHIVED.")
    ] = None,
    intent: Annotated[list[Intent] | None, Field(description="Any of these intents of the customer.")] = None,
    sentiment: Annotated[list[Sentiment] | None, Field(description="Any of these sentiments.")] = None,
    assigned_to_me: Annotated[bool, Field(description="Only threads assigned to the token's user.")] = False,
    unassigned: Annotated[bool, Field(description="Only threads assigned to nobody.")] = False,
    channel: Annotated[Channel | None, Field(description="The thread's primary channel.")] = None,
    priority: Priority | None = None,
    thread_type: Annotated[ThreadType | None, Field(description="The thread's type.")] = None,
    tag: str | None = None,
    sla_status: Annotated[list[SlaStatus] | None, Field(description="Any of these SLA statuses.")] = None,
    customer_id: Annotated[str | None, Field(description="A customer's global id.")] = None,
    shipment: Annotated[str | None, Field(description="A shipment's reference or global id.")] = None,
    snoozed: Annotated[bool, Field(description="Only snoozed threads (left out otherwise).")] = False,
    order_by: Literal["LAST_ACTIVITY_DESC", "CREATED_DESC", "PRIORITY", "SLA_DUE"] = "LAST_ACTIVITY_DESC",
    first: Annotated[int, Field(ge=1, le=50, description="How many threads (at most 50).")] = 20,
    after: Annotated[str | None, Field(description="The end_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Search the shared inbox, as its filters do: threads the token's user may see, most recent activity first.
    Returns each thread's reference, subject, status, customer, shipment, assignee, intent and last message time
    with their global ids, the total count and a cursor for the next page."""
    arguments = {
        "search": search,
        "status": status,
        "intent": intent,
        "sentiment": sentiment,
        "assigned_to_me": assigned_to_me or None,
        "unassigned": unassigned or None,
        "channel": channel,
        "priority": priority,
        "thread_type": thread_type,
        "tag": tag,
        "sla_status": sla_status,
        "customer_id": customer_id,
        "shipment": shipment,
        "snoozed": snoozed or None,
        "order_by": order_by,
        "first": first,
        "after": after,
    }
    async with call(mcp_ctx, "search_threads", target=search, arguments=arguments) as done:
        ctx = done.ctx
        shipment_id = None
        if shipment is not None:
            found = local_id(shipment, "Shipment")
            if found is None and (by_reference := await find_shipment_by_reference(ctx, shipment)) is not None:
                found = by_reference.id
            shipment_id = found or NIL
        where = thread_use_cases.ThreadFilter(
            status=status,
            assigned_to_me=assigned_to_me or None,
            unassigned=unassigned or None,
            customer_id=None if customer_id is None else (local_id(customer_id, "Customer") or NIL),
            shipment_id=shipment_id,
            channel=channel,
            type=thread_type,
            priority=priority,
            tag=tag,
            search=search,
            sla_status=sla_status,
            snoozed=snoozed or None,
            intent=intent,
            sentiment=sentiment,
        )
        prefetch = inbox_use_cases.ThreadPrefetch(links=(("assignee", None), ("customer", None), ("shipment", None)))
        page = await inbox_use_cases.threads_page(
            ctx, where, order_by, first=first, after=after, last=None, before=None, prefetch=prefetch, count=True
        )
        return {
            "total_count": page.total_count,
            "threads": [thread_summary(thread) for thread in page.rows],
            "has_next_page": page.has_next_page,
            "end_cursor": page.cursor(len(page.rows) - 1) if page.rows else None,
        }


async def get_thread(
    mcp_ctx: McpContext,
    thread: ThreadArgument,
    messages: Annotated[int, Field(ge=1, le=100, description="How many of the latest messages to include.")] = 20,
) -> dict[str, Any]:
    """Read one thread: its status, customer, contact and assignee, the shipment it is about (route, vessel,
    containers, BL, ETA, milestones), the customer's intent and sentiment, its latest messages (oldest first),
    internal notes and actions."""
    async with call(
        mcp_ctx,
        "get_thread",
        target=thread,
        arguments={"thread": thread, "messages": messages},
    ) as done:
        found = await find_thread(done.ctx, thread)
        done.target = found.reference
        return thread_dict(await thread_detail(done.ctx, found, messages=messages))


async def find_shipment_tool(
    mcp_ctx: McpContext,
    number: Annotated[
        str | None,
        Field(description="Any shipment number: tried as a reference, container, BL, booking and AWB number."),
    ] = None,
    reference: str | None = None,
    container_number: Annotated[str | None, Field(description="ISO 6346, e.g. MSCU1234566.")] = None,
    bl_number: str | None = None,
    awb_number: str | None = None,
    booking_number: str | None = None,
) -> dict[str, Any]:
    """Find shipments by reference, container, bill of lading (BL), air waybill (AWB) or booking number, with
    their route, carrier, vessel or flight, dates and milestones. Give one of the numbers, or `number` when you do
    not know which kind it is."""
    arguments = {
        "number": number,
        "reference": reference,
        "container_number": container_number,
        "bl_number": bl_number,
        "awb_number": awb_number,
        "booking_number": booking_number,
    }
    given = {name: value.strip() for name, value in arguments.items() if value and value.strip()}
    target = next(iter(given.values()), None)
    async with call(mcp_ctx, "find_shipment", target=target, arguments=arguments) as done:
        if not given:
            raise DomainError("INVALID", "Give a number: reference, container, BL, AWB or booking.", "number")
        ctx = done.ctx
        found: dict[uuid.UUID, Shipment] = {}
        if "number" in given:  # each kind in turn, until one finds something
            for kind in ("reference", "container", "bl", "booking", "awb"):
                found.update((shipment.id, shipment) for shipment in await _shipments_by(ctx, kind, given["number"]))
                if found:
                    break
        for kind, name in (
            ("reference", "reference"),
            ("container", "container_number"),
            ("bl", "bl_number"),
            ("booking", "booking_number"),
            ("awb", "awb_number"),
        ):
            if name in given:
                for shipment in await _shipments_by(ctx, kind, given[name]):
                    found.setdefault(shipment.id, shipment)
        milestones = await ctx.loaders.milestones_by_shipment_id.load_many(list(found))
        return {
            "shipments": [
                shipment_dict(shipment, list(rows or []))
                for shipment, rows in zip(found.values(), milestones, strict=True)
            ]
        }


async def _shipments_by(ctx: Context, kind: str, value: str) -> list[Shipment]:
    """Shipments whose `kind` number is `value`, through the `shipments` query's use-case."""
    if kind == "reference":
        shipment = await find_shipment_by_reference(ctx, value)
        return [shipment] if shipment is not None else []
    field = {"container": "container_number", "bl": "bl_number", "booking": "booking_number", "awb": "awb_number"}
    page = await shipment_use_cases.shipments_page(ctx, first=20, after=None, **{field[kind]: value})
    return list(page.rows)


async def draft_reply(
    mcp_ctx: McpContext,
    thread: ThreadArgument,
    instructions: Annotated[
        str | None, Field(description="What the reply should say or do, e.g. 'apologise, new ETA Friday'.")
    ] = None,
    tone: ComposeTone = ComposeTone.FRIENDLY,
    variants: Annotated[int, Field(ge=1, le=3, description="How many alternative drafts.")] = 1,
    channel: Annotated[
        Channel | None, Field(description="The channel to reply on; by default the thread's (never INTERNAL).")
    ] = None,
) -> dict[str, Any]:
    """Draft a reply to the customer with Banxway's compose pipeline (the thread's history, the customer, the
    shipment and its milestones, open actions, the signature). Returns the draft text(s). Nothing is sent: a person
    sends it, or send_message does when the token may send."""
    arguments = {"thread": thread, "instructions": instructions, "tone": tone, "variants": variants, "channel": channel}
    async with call(mcp_ctx, "draft_reply", target=thread, arguments=arguments) as done:
        ctx = done.ctx
        thread_id, done.target = await thread_key(ctx, thread)
        session = await compose_use_cases.compose_start(
            ctx, thread_id=thread_id, instructions=instructions, tone=tone, variants=variants, channel=channel
        )
        last: Any = None
        async for event in compose_use_cases.compose_events(ctx, session):
            last = event  # deltas, then one DoneEvent or ErrorEvent (the stream ends there)
        if isinstance(last, compose_use_cases.ErrorEvent):
            raise DomainError(last.code, last.message)
        if not isinstance(last, compose_use_cases.DoneEvent):
            raise DomainError("AI_UNAVAILABLE", "The draft did not finish; try again.")
        return {
            "session_id": global_id("ComposeSession", session.id),
            "channel": session.channel.value,
            "drafts": list(last.variants),
            "sent": False,
        }


# -- writing ------------------------------------------------------------------------------------------------------


async def add_note(
    mcp_ctx: McpContext,
    thread: ThreadArgument,
    body: Annotated[str, Field(description="The note; @email mentions notify those colleagues.")],
) -> dict[str, Any]:
    """Add an internal note to a thread (never seen by the customer), as the token's user."""
    async with call(
        mcp_ctx,
        "add_note",
        target=thread,
        arguments={"thread": thread, "body": body},
    ) as done:
        thread_id, done.target = await thread_key(done.ctx, thread)
        note = await note_use_cases.note_add(done.ctx, thread_id=thread_id, body=body)
        return {
            "note": {"id": global_id("Note", note.id), "body": note.body, "created_at": iso(note.created_at)},
            "thread_id": global_id("Thread", note.thread_id),
        }


async def create_action(
    mcp_ctx: McpContext,
    thread: ThreadArgument,
    title: Annotated[str, Field(description="What has to be done.")],
    action_type: Annotated[ActionType | None, Field(description="TASK by default.")] = None,
    due_at: Annotated[datetime | None, Field(description="When it is due (ISO 8601 with a time zone).")] = None,
    assignee: Assignee = None,
) -> dict[str, Any]:
    """Create an action (a task) on a thread, optionally due at a time and for a colleague."""
    arguments = {"thread": thread, "title": title, "action_type": action_type, "due_at": due_at, "assignee": assignee}
    async with call(mcp_ctx, "create_action", target=thread, arguments=arguments) as done:
        ctx = done.ctx
        thread_id, done.target = await thread_key(ctx, thread)
        action = await action_use_cases.action_create(
            ctx,
            thread_id=thread_id,
            title=title,
            type=action_type,
            due_at=due_at,
            assignee_id=await user_key(ctx, assignee),
        )
        return {
            "action": {
                "id": global_id("Action", action.id),
                "title": action.title,
                "type": action.type.value,
                "status": action.status.value,
                "due_at": iso(action.due_at),
                "assignee_id": global_id("User", action.assignee_id),
            },
            "thread_id": global_id("Thread", action.thread_id),
        }


async def assign_thread(mcp_ctx: McpContext, thread: ThreadArgument, assignee: Assignee = "me") -> dict[str, Any]:
    """Assign a thread to the token's user ("me", the default), to a colleague (needs a role that may assign
    anyone), or to nobody (null)."""
    async with call(
        mcp_ctx,
        "assign_thread",
        target=thread,
        arguments={"thread": thread, "assignee": assignee},
    ) as done:
        ctx = done.ctx
        thread_id, done.target = await thread_key(ctx, thread)
        updated = await thread_use_cases.thread_assign(ctx, thread_id, await user_key(ctx, assignee))
        return {
            "thread": {
                "id": global_id("Thread", updated.id),
                "reference": updated.reference,
                "assignee_id": global_id("User", updated.assignee_id),
            }
        }


async def link_shipment(
    mcp_ctx: McpContext,
    thread: ThreadArgument,
    shipment: Annotated[str | None, Field(description="The shipment's reference or global id; null unlinks.")],
) -> dict[str, Any]:
    """Link a thread to the shipment it is about (or unlink it), as threadUpdate does."""
    async with call(
        mcp_ctx,
        "link_shipment",
        target=thread,
        arguments={"thread": thread, "shipment": shipment},
    ) as done:
        ctx = done.ctx
        thread_id, done.target = await thread_key(ctx, thread)
        shipment_id = None
        if shipment is not None:
            shipment_id = local_id(shipment, "Shipment")
            if shipment_id is None:
                shipment_id = (await find_shipment(ctx, shipment)).id
        updated = await thread_use_cases.thread_update(ctx, thread_id, {"shipment_id": shipment_id})
        return {
            "thread": {
                "id": global_id("Thread", updated.id),
                "reference": updated.reference,
                "shipment_id": global_id("Shipment", updated.shipment_id),
                "customer_id": global_id("Customer", updated.customer_id),
            }
        }


async def send_message(
    mcp_ctx: McpContext,
    thread: ThreadArgument,
    body: Annotated[str, Field(description="The message, as the customer will read it.")],
    channel: Annotated[Channel | None, Field(description="By default the thread's primary channel.")] = None,
    subject: Annotated[str | None, Field(description="Email only; by default the thread's.")] = None,
    idempotency_key: Annotated[
        str | None, Field(description="The same key again returns the first message instead of sending twice.")
    ] = None,
) -> dict[str, Any]:
    """Send a message to the customer on a thread, as messageSend does: queued for delivery on its channel. Only
    for API tokens with the SEND scope."""
    arguments = {
        "thread": thread,
        "body": body,
        "channel": channel,
        "subject": subject,
        "idempotency_key": idempotency_key,
    }
    async with call(mcp_ctx, "send_message", target=thread, arguments=arguments) as done:
        ctx = done.ctx
        found = await find_thread(ctx, thread)
        done.target = found.reference
        message = await message_use_cases.message_send(
            ctx,
            thread_id=found.id,
            channel=channel or found.primary_channel,
            body=body,
            subject=subject,
            idempotency_key=idempotency_key,
        )
        return {
            "message": {
                "id": global_id("Message", message.id),
                "channel": message.channel.value,
                "status": message.status.value,
                "recipients": list(message.recipients),
                "created_at": iso(message.created_at),
            },
            "thread_id": global_id("Thread", message.thread_id),
        }


# -- resources and prompts ----------------------------------------------------------------------------------------


async def thread_resource(reference: str, mcp_ctx: McpContext) -> str:
    """A thread as Markdown: its facts, shipment and milestones, its latest 50 messages, notes and actions."""
    uri = f"banxway://threads/{reference}"
    async with call(mcp_ctx, "read_resource", target=uri, kind="resource", permission=Permission.READ) as done:
        return await _thread_markdown(done.ctx, reference)


async def shipment_resource(reference: str, mcp_ctx: McpContext) -> str:
    """A shipment as Markdown: route, carrier, vessel or flight, numbers, dates and its milestones."""
    uri = f"banxway://shipments/{reference}"
    async with call(mcp_ctx, "read_resource", target=uri, kind="resource", permission=Permission.READ) as done:
        shipment = await find_shipment(done.ctx, reference)
        milestones = await done.ctx.loaders.milestones_by_shipment_id.load(shipment.id)
        return "\n".join(shipment_markdown(shipment, list(milestones or []))) + "\n"


async def _thread_markdown(ctx: Context, reference: str) -> str:
    found = await find_thread(ctx, reference)
    return thread_markdown(await thread_detail(ctx, found, messages=RESOURCE_MESSAGES))


def _embedded(reference: str, markdown: str) -> UserMessage:
    contents = TextResourceContents(uri=f"banxway://threads/{reference}", text=markdown, mime_type="text/markdown")
    return UserMessage(EmbeddedResource(type="resource", resource=contents))


async def summarise_thread(
    reference: Annotated[str, Field(description="The thread's reference, e.g. BX-2026-0042.")],
    mcp_ctx: McpContext,
) -> list[UserMessage]:
    """Summarise a thread for a colleague taking it over."""
    async with call(
        mcp_ctx,
        "summarise_thread",
        target=reference,
        arguments={"reference": reference},
        kind="prompt",
        permission=Permission.READ,
    ) as done:
        markdown = await _thread_markdown(done.ctx, reference)
    return [
        _embedded(reference, markdown),
        UserMessage(
            f"Summarise thread {reference} above for a colleague who takes it over, in at most eight bullet points: "
            "what the customer wants, what we told them, the shipment's state (quote container, BL and AWB numbers "
            "and dates exactly as written), open actions and who owns them, and the next step. Say what is unknown "
            "rather than guessing."
        ),
    ]


async def draft_delay_notice(
    reference: Annotated[str, Field(description="The thread's reference, e.g. BX-2026-0042.")],
    new_eta: Annotated[str, Field(description="The new estimated time of arrival, e.g. 2026-12-18.")],
    mcp_ctx: McpContext,
) -> list[UserMessage]:
    """Draft a notice to the customer that their shipment is delayed, with the new ETA."""
    async with call(
        mcp_ctx,
        "draft_delay_notice",
        target=reference,
        arguments={"reference": reference, "new_eta": new_eta},
        kind="prompt",
        permission=Permission.READ,
    ) as done:
        markdown = await _thread_markdown(done.ctx, reference)
    return [
        _embedded(reference, markdown),
        UserMessage(
            f"Draft a short message to the customer of thread {reference} above saying their shipment is delayed "
            f"and the new ETA is {new_eta}. Name the shipment by its reference and container or AWB number, give the "
            "reason only if the thread states one, apologise once, and say when we will update them next. Write in "
            "the language and on the channel of their last message. Do not send it: call draft_reply with these "
            "instructions, or show the text for a person to review."
        ),
    ]


# -- the server ---------------------------------------------------------------------------------------------------


async def listed_for_caller(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """`tools/list` shows a caller only the tools their role allows within their token's scopes."""
    result = await call_next(ctx)
    if ctx.method != "tools/list":
        return result
    caller = caller_of(ctx.request)

    def allowed(name: str) -> bool:
        permission = TOOL_PERMISSIONS.get(name)
        return caller is not None and permission is not None and caller.viewer.can(permission)

    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        return {**result, "tools": [tool for tool in result["tools"] if allowed(str(tool.get("name")))]}
    tools = getattr(result, "tools", None)
    if isinstance(tools, list):
        return result.model_copy(update={"tools": [tool for tool in tools if allowed(tool.name)]})  # type: ignore[union-attr]
    return result


def build_server() -> MCPServer:
    """A new MCP server with Banxway's tools, resources and prompts (one per app: its session manager runs once)."""
    server = _quietly(
        lambda: MCPServer(
            "banxway",
            title="Banxway",
            instructions=INSTRUCTIONS,
            # what tools/list answers depends on the caller's token: never share a cached listing between tokens
            cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
            middleware=[listed_for_caller],
        )
    )
    server.add_tool(search_threads, annotations=READ)
    server.add_tool(get_thread, annotations=READ)
    server.add_tool(find_shipment_tool, name="find_shipment", annotations=READ)
    server.add_tool(draft_reply, annotations=DRAFT)
    server.add_tool(add_note, annotations=WRITE)
    server.add_tool(create_action, annotations=WRITE)
    server.add_tool(assign_thread, annotations=WRITE.model_copy(update={"idempotent_hint": True}))
    server.add_tool(link_shipment, annotations=WRITE.model_copy(update={"idempotent_hint": True}))
    server.add_tool(send_message, annotations=SEND)
    server.resource(
        "banxway://threads/{reference}", name="thread", title="A thread, as Markdown", mime_type="text/markdown"
    )(thread_resource)
    server.resource(
        "banxway://shipments/{reference}",
        name="shipment",
        title="A shipment with its milestones, as Markdown",
        mime_type="text/markdown",
    )(shipment_resource)
    server.prompt(title="Summarise this thread")(summarise_thread)
    server.prompt(title="Draft a delay notice")(draft_delay_notice)
    return server


def _quietly(build: Any) -> MCPServer:
    """Build the server without letting the SDK configure the process's logging: `MCPServer()` calls
    `logging.basicConfig` (a rich handler at INFO) when the root logger has no handler yet. Ours is configured by
    `banxway.logs`, and the SDK's per-request INFO lines (a stateless transport's set-up and tear-down) stay out."""
    root = logging.getLogger()
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        return build()
    finally:
        if placeholder is not None:
            root.removeHandler(placeholder)
        logging.getLogger("mcp").setLevel(max(logging.getLogger("mcp").getEffectiveLevel(), logging.WARNING))
