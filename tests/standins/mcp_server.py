"""A stand-in external MCP server (an agent platform), written with the official SDK and served over streamable
HTTP: a tool that answers, one that errors, one that hangs, one that returns a huge result. It records the headers
of every request, so that a test sees the auth header arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from tests.standins import serve_in_loop

HUGE_SIZE = 50_000


class AgentStandIn:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hang_seconds = 10.0
        server = MCPServer("agent-standin")

        @server.tool(description="Find where a container is.")
        async def track_container(
            reference: str = "", subject: str = "", shipment_reference: str = "", containers: list[str] | None = None
        ) -> str:
            arguments = {"reference": reference, "subject": subject, "shipment_reference": shipment_reference}
            self.calls.append(("track_container", {**arguments, "containers": containers}))
            return f"Container {', '.join(containers or ['?'])} of {shipment_reference}: discharged at Rotterdam."

        @server.tool(description="Echo the arguments it was given, as JSON (takes no thread context).")
        async def echo(text: str, count: int = 1) -> str:
            self.calls.append(("echo", {"text": text, "count": count}))
            return json.dumps({"text": text, "count": count}, sort_keys=True)

        @server.tool(description="Always fails.")
        async def broken() -> str:
            self.calls.append(("broken", {}))
            raise ValueError("the carrier's API refused the request")

        @server.tool(description="Never answers in time.")
        async def slow() -> str:
            self.calls.append(("slow", {}))
            await asyncio.sleep(self.hang_seconds)
            return "too late"

        @server.tool(description="A very long answer.")
        async def huge() -> str:
            self.calls.append(("huge", {}))
            return "x" * HUGE_SIZE

        self.server = server
        self.app = server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@asynccontextmanager
async def agent_standin() -> AsyncIterator[tuple[AgentStandIn, str]]:
    """The stand-in on a free port, its session manager running; yields it and its /mcp URL."""
    standin = AgentStandIn()
    manager = standin.server.session_manager
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with manager.run():
            started.set()
            await stop.wait()

    async with serve_in_loop(standin) as port:
        task = asyncio.create_task(run())
        await started.wait()
        try:
            yield standin, f"http://127.0.0.1:{port}/mcp"
        finally:  # stop the sessions first: a hanging tool's request ends with them
            stop.set()
            await task
