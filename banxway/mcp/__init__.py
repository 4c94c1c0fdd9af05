"""Banxway as a Model Context Protocol server for AI agents: `POST /mcp` (`McpEndpoint`, mounted by
`banxway.app`) and `banxway mcp --stdio` (`run_stdio_bridge`, a bridge from a desktop agent to a running server).
The tools, resources and prompts are in `banxway.mcp.server`; what every call does around its use-case (the
caller, errors, the audit log) in `banxway.mcp.calls`."""

from banxway.mcp.http import McpEndpoint
from banxway.mcp.stdio import DEFAULT_URL, BridgeError, describe_failure, run_stdio_bridge

__all__ = ["DEFAULT_URL", "BridgeError", "McpEndpoint", "describe_failure", "run_stdio_bridge"]
