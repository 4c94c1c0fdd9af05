"""What every MCP call does around its use-case: who asks (the personal API token `POST /mcp` authenticated), a
`banxway.context.Context` for them, our errors as the protocol's, and the audit row.

A tool is a thin call of the resolver its GraphQL field uses, made through `call()`:

    async with call(mcp_ctx, "add_note", target=thread) as done:
        note = await note_use_cases.note_add(done.ctx, thread_id=..., body=body)

so that the organization scope, the role matrix and the token's scopes bound it exactly as they bound GraphQL, a
`DomainError` becomes a tool error "NOT_FOUND (threadId): No such thread.", a `PermissionDenied` one starting
"FORBIDDEN", and every call (refused and failed ones included) leaves one row in the audit log with the token's
name, the tool, its target and its outcome."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context as McpContext
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST

from banxway.auth import Permission
from banxway.context import Context, Viewer
from banxway.errors import DomainError, PermissionDenied
from banxway.logs import get_logger
from banxway.resolvers.audit import audit
from banxway.state import AppState

CHANNEL = "MCP"  # the audit log's channel for everything an agent does here
SCOPE_KEY = "banxway.mcp.caller"  # where `POST /mcp` leaves the authenticated caller in the ASGI scope
LONG_TEXT = 200  # audit details keep argument strings up to this long; longer ones only as their length
_TEXT_ARGUMENTS = frozenset({"body", "instructions"})  # never copied into the audit log, only their length

log = get_logger("banxway.mcp")


@dataclass(frozen=True)
class Caller:
    """Who a request to `POST /mcp` is from, and the process's state to act with."""

    state: AppState
    viewer: Viewer


# What each tool needs, checked (`Context.require`) before anything is read, and what `tools/list` shows a caller:
# only the tools their role allows within their token's scopes. The same permissions the resolvers check.
TOOL_PERMISSIONS: dict[str, Permission] = {
    "search_threads": Permission.READ,
    "get_thread": Permission.READ,
    "find_shipment": Permission.READ,
    "add_note": Permission.NOTE_ADD,
    "create_action": Permission.ACTION_MANAGE,
    "assign_thread": Permission.THREAD_ASSIGN_SELF,
    "link_shipment": Permission.THREAD_CREATE,
    # composeStart's MESSAGE_DRAFT: the roles that may reply; with an API token, the WRITE scope (never sends)
    "draft_reply": Permission.MESSAGE_DRAFT,
    "send_message": Permission.MESSAGE_SEND,
}


def caller_of(request: Any) -> Caller | None:
    """The caller `POST /mcp` authenticated for `request` (the transport's HTTP request), None without one."""
    scope = getattr(request, "scope", None)
    caller = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return caller if isinstance(caller, Caller) else None


@dataclass
class Done:
    """One call: the Context it acts through, and what its audit row says (the tool may refine the target)."""

    ctx: Context
    target: str | None
    details: dict[str, Any] = field(default_factory=dict)


def _tool_error(code: str, text: str) -> Exception:
    return ToolError(text)


def _resource_error(code: str, text: str) -> Exception:
    if code == "NOT_FOUND":
        return ResourceNotFoundError(text)
    return MCPError(code=INVALID_PARAMS if code != "FORBIDDEN" else INVALID_REQUEST, message=text, data={"code": code})


def _prompt_error(code: str, text: str) -> Exception:
    return MCPError(code=INVALID_PARAMS if code != "FORBIDDEN" else INVALID_REQUEST, message=text, data={"code": code})


ERRORS: dict[str, Callable[[str, str], Exception]] = {
    "tool": _tool_error,
    "resource": _resource_error,
    "prompt": _prompt_error,
}


def describe(exc: DomainError) -> str:
    """'NOT_FOUND (threadId): No such thread.' — the code and field of a `userErrors` entry, in one line."""
    field_name = ".".join(exc.field) if exc.field else None
    return f"{exc.code} ({field_name}): {exc.message}" if field_name else f"{exc.code}: {exc.message}"


@asynccontextmanager
async def call(
    mcp_ctx: McpContext,
    action: str,
    *,
    target: str | None = None,
    arguments: dict[str, Any] | None = None,
    kind: str = "tool",
    permission: Permission | None = None,
) -> AsyncIterator[Done]:
    """Run one call as its caller; audit it whatever its outcome (OK, or the error's code). A tool needs its
    TOOL_PERMISSIONS entry; resources and prompts the `permission` given."""
    caller = caller_of(mcp_ctx.request_context.request)
    if caller is None:  # not through POST /mcp (which refuses a request without a valid API token)
        raise MCPError(code=INVALID_REQUEST, message="UNAUTHENTICATED: call Banxway over POST /mcp with an API token")
    ctx = Context(caller.state, caller.viewer)
    done = Done(ctx, target, audit_details(arguments or {}))
    fail = ERRORS[kind]
    outcome = "OK"
    try:
        needed = TOOL_PERMISSIONS[action] if kind == "tool" else permission
        if needed is not None:
            ctx.require(needed)
        yield done
    except DomainError as exc:
        outcome = exc.code
        raise fail(exc.code, describe(exc)) from exc
    except PermissionDenied as exc:
        outcome = "FORBIDDEN"
        raise fail("FORBIDDEN", f"FORBIDDEN: {exc}") from exc
    except Exception:
        outcome = "INTERNAL_ERROR"
        raise
    except BaseException:
        outcome = "CANCELLED"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await _record(done, action, outcome)


async def _record(done: Done, action: str, outcome: str) -> None:
    ctx = done.ctx
    try:
        await ctx.aclose()  # the use-case's session (rolled back if it failed): the audit row has its own
        await audit(ctx, channel=CHANNEL, action=action, target=done.target, outcome=outcome, details=done.details)
    except Exception as exc:  # the call itself is done (and committed): say so loudly, do not undo its answer
        log.error("MCP call not audited", action=action, target=done.target, outcome=outcome, error=str(exc))
    finally:
        await ctx.aclose()


def audit_details(arguments: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments for its audit row: long text (a note's or a message's body, instructions) only as its
    length, other strings cut to LONG_TEXT characters, values as JSON."""
    details: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        if isinstance(value, str) and (name in _TEXT_ARGUMENTS or len(value) > LONG_TEXT):
            details[name] = {"characters": len(value)}
        elif isinstance(value, str | int | float | bool):
            details[name] = value
        elif isinstance(value, list | tuple):
            details[name] = [_plain(item) for item in value]
        else:
            details[name] = _plain(value)
    return details


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value[:LONG_TEXT]
    if isinstance(value, int | float | bool) or value is None:
        return value
    enum_value = getattr(value, "value", None)  # an enum
    if isinstance(enum_value, str):
        return enum_value
    isoformat = getattr(value, "isoformat", None)  # a datetime
    return isoformat() if callable(isoformat) else str(value)[:LONG_TEXT]


# -- global ids: base64("Type:uuid"), as the GraphQL API gives and takes them ------------------------------------


def global_id(type_name: str, local: uuid.UUID | None) -> str | None:
    return base64.b64encode(f"{type_name}:{local}".encode()).decode() if local is not None else None


def local_id(value: object, type_name: str) -> uuid.UUID | None:
    """The uuid inside a global id of `type_name`, or None when `value` is anything else."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        kind, _, raw = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        return uuid.UUID(raw) if kind == type_name else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
