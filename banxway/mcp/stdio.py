"""`banxway mcp --stdio`: MCP over standard input and output for a desktop agent, bridged to a running server's
`POST /mcp`.

The SDK has no ready stdio-to-HTTP proxy, so the bridge is two SDK halves: a low-level `Server` on stdio whose every
handler (tools, resources, resource templates, prompts) forwards the request through an SDK `Client` connected to
`/mcp` with the API token, and hands back the answer as it came (tool errors included; a protocol error is raised
again as it was). Each side negotiates its own protocol version, so a desktop agent speaking an older revision
works with the server's newer one. The bridge holds no database connection: it works with the embedded default,
whose database only the `serve` process can reach, and every call is authorised and audited by that server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

DEFAULT_URL = "http://127.0.0.1:8000/mcp"
# the SDK's own client defaults: 30 s to connect and write, and long reads (a draft can take a while)
TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class BridgeError(Exception):
    """The bridge could not connect to the server (down, wrong URL, or the token refused): says which."""


@asynccontextmanager
async def upstream(url: str, token: str) -> AsyncIterator[Client]:
    """An SDK client of the server's `/mcp`, authenticated with the API token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as http:
        await _check(http, url)
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def _check(http: httpx2.AsyncClient, url: str) -> None:
    """Refuse to start with a clear reason rather than an SDK traceback: the server must answer, and take the
    token (a POST without an MCP message answers 401 for a bad token, 4xx otherwise)."""
    try:
        response = await http.post(url, content=b"{}", headers={"content-type": "application/json"})
    except httpx2.HTTPError as exc:
        raise BridgeError(f"Cannot reach Banxway at {url}: {exc}. Is `banxway serve` running there?") from exc
    if response.status_code == 401:
        try:
            reason = response.json().get("error")
        except ValueError:
            reason = response.text
        raise BridgeError(f"Banxway at {url} refused the token: {reason}")
    if response.status_code == 404:
        raise BridgeError(f"No MCP endpoint at {url} (404): give the server's /mcp URL with --url")


def bridge_server(client: Client) -> Server[Any]:
    """A stdio server forwarding each request to `client`."""

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return await client.list_tools(cursor=params.cursor if params else None, cache_mode="refresh")

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        return await client.call_tool(params.name, params.arguments or {})

    async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return await client.list_resources(cursor=params.cursor if params else None, cache_mode="refresh")

    async def list_resource_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> Any:
        return await client.list_resource_templates(cursor=params.cursor if params else None, cache_mode="refresh")

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> Any:
        return await client.read_resource(str(params.uri), cache_mode="refresh")

    async def list_prompts(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return await client.list_prompts(cursor=params.cursor if params else None, cache_mode="refresh")

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> Any:
        return await client.get_prompt(params.name, params.arguments)

    info = client.server_info
    return Server(
        "banxway",
        version=info.version if info is not None else "",
        title="Banxway",
        instructions=client.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


async def run_stdio_bridge(url: str, token: str) -> None:
    """Serve MCP on stdin/stdout until the agent closes it, every request forwarded to `url` with `token`."""
    logging.getLogger("mcp").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    async with upstream(url, token) as client:
        server = bridge_server(client)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def describe_failure(exc: BaseException) -> str:
    """One line for an exception out of the bridge (the SDK's task groups wrap them in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__
