"""Banxway as an MCP client: list the tools of an external MCP server (an agent platform, a carrier-tracking
service) and call one, over the streamable HTTP transport with the official SDK's client.

Plain values in, our own dataclasses out; nothing of the database. Every call runs under an explicit timeout
(connecting included). Failures are `AgentError`s: `transient` (a timeout, a connection that failed, a 429 or 5xx)
is worth retrying; anything else (a 4xx, a protocol error, a tool that answered with an error) is permanent.

With `public_only` the HTTP client connects only to global addresses, the name resolved at connect time (the
same guard as `banxway.integrations.network`, on the SDK's HTTP stack, httpx2/httpcore2).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpcore2
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from banxway.integrations.network import guarded_backend

RESULT_LIMIT = 20_000  # characters of a tool's result kept (and posted on the thread)


class AgentError(Exception):
    def __init__(self, detail: str, *, transient: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient


@dataclass(frozen=True)
class AgentServer:
    """Where an MCP server is and how to authenticate to it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    public_only: bool = True


@dataclass(frozen=True)
class AgentTool:
    name: str
    description: str | None


@dataclass(frozen=True)
class ToolResult:
    text: str
    truncated: bool
    is_error: bool


_PublicAddressesOnly = guarded_backend(httpcore2)  # the guard of banxway.integrations.network, on httpcore2


def _http_client(server: AgentServer) -> httpx2.AsyncClient:
    transport = httpx2.AsyncHTTPTransport()
    if server.public_only:
        transport._pool._network_backend = _PublicAddressesOnly()  # type: ignore[attr-defined]
    return httpx2.AsyncClient(
        headers=server.headers, timeout=server.timeout, transport=transport, follow_redirects=False
    )


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _mapped(exc: BaseException, server: AgentServer) -> AgentError:
    """An exception of the SDK or the HTTP stack as an AgentError (a task group's group: its first cause)."""
    for leaf in _leaves(exc):
        if isinstance(leaf, AgentError):
            return leaf
        if isinstance(leaf, TimeoutError | httpx2.TimeoutException):
            return AgentError(f"{server.url} did not answer within {server.timeout:g} s", transient=True)
        if isinstance(leaf, httpx2.HTTPStatusError):
            status = leaf.response.status_code
            return AgentError(f"{server.url} answered HTTP {status}", transient=status == 429 or status >= 500)
        if isinstance(leaf, httpx2.TransportError):  # the address guard's refusal will not change: permanent
            refused = "private or reserved address" in str(leaf)
            return AgentError(f"{server.url} could not be reached: {leaf}", transient=not refused)
        if isinstance(leaf, MCPError):
            text = str(leaf)
            transient = any(f"{code}" in text for code in (" 429", " 502", " 503", " 504"))
            return AgentError(f"{server.url}: {text}", transient=transient)
    first = _leaves(exc)[0]
    return AgentError(f"{server.url}: {type(first).__name__}: {first}", transient=False)


async def _with_client(server: AgentServer, work: Any) -> Any:
    try:
        async with asyncio.timeout(server.timeout):
            async with (
                _http_client(server) as http,
                Client(
                    streamable_http_client(server.url, http_client=http), read_timeout_seconds=server.timeout
                ) as client,
            ):
                return await work(client)
    except Exception as exc:
        raise _mapped(exc, server) from exc


async def list_tools(server: AgentServer) -> list[AgentTool]:
    """The tools the server lists (every page)."""

    async def work(client: Client) -> list[AgentTool]:
        found: list[AgentTool] = []
        cursor: str | None = None
        for _ in range(50):
            page = await client.list_tools(cursor=cursor)
            found.extend(AgentTool(tool.name, tool.description) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return found

    return await _with_client(server, work)


def _text(result: Any) -> str:
    parts = [getattr(block, "text", None) for block in result.content]
    text = "\n\n".join(part for part in parts if part)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False, indent=2)
    return text


def truncate(text: str, limit: int = RESULT_LIMIT) -> tuple[str, bool]:
    return (text[:limit], True) if len(text) > limit else (text, False)


async def call_tool(
    server: AgentServer, name: str, arguments: dict[str, Any], context: dict[str, Any] | None = None
) -> ToolResult:
    """Call a tool; its text (the text blocks, or the structured result as JSON), cut at RESULT_LIMIT characters.
    `context` (e.g. the thread's reference) is added to the arguments for the keys the tool's input schema
    declares and the arguments do not give (a value we do not have, None, is left
    out): a tool that takes no such key is not sent one (a strict server would
    refuse it). A tool the server does not list, or one that answered with an error, raises a permanent
    AgentError."""

    async def work(client: Client) -> ToolResult:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        if name not in listed:
            raise AgentError(f"{server.url} has no tool named {name}", transient=False)
        declared = (listed[name].input_schema or {}).get("properties") or {}
        merged = {**{k: v for k, v in (context or {}).items() if k in declared and v is not None}, **arguments}
        result = await client.call_tool(name, merged, read_timeout_seconds=server.timeout)
        text, truncated = truncate(_text(result))
        if result.is_error:
            raise AgentError(f"The tool {name} answered with an error: {text or 'no detail'}", transient=False)
        return ToolResult(text=text, truncated=truncated, is_error=False)

    return await _with_client(server, work)
