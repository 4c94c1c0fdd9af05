"""Banxway as an MCP server (issue 20): `POST /mcp` and `banxway mcp --stdio`, tested with the official SDK's own
client against the running server, with personal API tokens whose role and scopes bound every tool as they bound
GraphQL, and every call in the audit log."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from sqlalchemy import select

from banxway.db.models import AuditEntry
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.ai_helpers import BL, CONTAINER, QUESTION, freight_thread
from tests.conftest import Api
from tests.inbox_helpers import Inbox, _foreign, _member
from tests.live_helpers import uvicorn_server

TOKEN_CREATE = """
mutation($input: ApiTokenCreateInput!) {
  apiTokenCreate(input: $input) { secret apiToken { id } userErrors { field code message } }
}
"""
USER_UPDATE = """
mutation($id: ID!, $role: Role) { userUpdate(input: {id: $id, role: $role}) { userErrors { field code message } } }
"""
THREAD_NOTES = """
query($id: ID!) { thread(id: $id) { reference notes { edges { node { body author { email } } } } } }
"""

AUDIT_LOG = """
query($filter: AuditLogFilter) {
  auditLog(first: 10, filter: $filter) {
    edges { node { channel action target outcome tokenName details createdAt actor { email } } }
  }
}
"""
READ_TOOLS = {"search_threads", "get_thread", "find_shipment"}
WRITE_TOOLS = {"add_note", "create_action", "assign_thread", "link_shipment", "draft_reply"}
SEND_TOOLS = {"send_message"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"compose_word_delay": 0.0})


async def api_token(api: Api, login_token: str, name: str, scopes: list[str]) -> str:
    result = await api.gql(TOKEN_CREATE, {"input": {"name": name, "scopes": scopes}}, token=login_token)
    payload = result["data"]["apiTokenCreate"]
    assert payload["userErrors"] == [], payload
    return payload["secret"]


@asynccontextmanager
async def served(settings: Settings, state: AppState) -> AsyncIterator[str]:
    """The app on a real socket; yields its /mcp URL."""
    async with uvicorn_server(settings, state) as ws_url:
        yield ws_url.replace("ws://", "http://").removesuffix("/graphql") + "/mcp"


@asynccontextmanager
async def agent(url: str, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's own client over streamable HTTP, with the API token: by default on the protocol revision it
    negotiates (2026-07-28), with `mode="legacy"` on the initialize handshake of earlier revisions."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


async def tool(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result (the call must have succeeded)."""
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def tool_error(client: Client, name: str, **arguments: Any) -> str:
    """The text of a tool error (the call must have failed)."""
    result = await client.call_tool(name, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text  # type: ignore[union-attr]


async def audit_rows(state: AppState) -> list[AuditEntry]:
    """The agents' calls (the log also holds administrative changes made over GraphQL: a role change here)."""
    async with system_session(state.sessionmaker) as session:
        return list(
            await session.scalars(select(AuditEntry).where(AuditEntry.channel == "MCP").order_by(AuditEntry.id))
        )


async def names(client: Client) -> set[str]:
    return {listed.name for listed in (await client.list_tools()).tools}


# -- what a token sees ---------------------------------------------------------------------------------------------


async def test_tools_are_listed_per_scope_and_a_write_tool_called_anyway_is_forbidden(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given an admin's tokens with growing scopes
    thread = await inbox.thread("Rates for 2x40HC")
    reader = await api_token(api, inbox.token, "reader", ["READ"])
    writer = await api_token(api, inbox.token, "writer", ["READ", "WRITE"])
    sender = await api_token(api, inbox.token, "sender", ["READ", "WRITE", "SEND"])
    async with served(settings, state) as url:
        # then each sees the tools its scopes allow: WRITE adds the writes and drafting (never sending), SEND sending
        async with agent(url, reader, mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            assert await names(client) == READ_TOOLS
            # and a write tool called anyway is refused, as its mutation would be, and writes nothing
            refused = await tool_error(client, "add_note", thread=thread["reference"], body="from a reader")
            assert "FORBIDDEN" in refused and "scopes: READ" in refused
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            assert templates == {"banxway://threads/{reference}", "banxway://shipments/{reference}"}
            assert {p.name for p in (await client.list_prompts()).prompts} == {"summarise_thread", "draft_delay_notice"}
        async with agent(url, writer) as client:
            assert client.protocol_version == "2026-07-28"
            assert await names(client) == READ_TOOLS | WRITE_TOOLS
            refused = await tool_error(client, "send_message", thread=thread["reference"], body="Hello")
            assert "FORBIDDEN" in refused
        async with agent(url, sender) as client:
            assert await names(client) == READ_TOOLS | WRITE_TOOLS | SEND_TOOLS
    notes = await inbox.gql(THREAD_NOTES, {"id": thread["id"]})
    assert notes["data"]["thread"]["notes"]["edges"] == []


async def test_no_token_a_bad_one_or_a_login_token_is_401(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"accept": "application/json, text/event-stream"}
    async with served(settings, state) as url, httpx.AsyncClient(timeout=10) as http:
        for authorization, reason in (
            (None, "API token"),
            ("Bearer bxp_not-a-token-of-ours", "unknown API token"),
            ("Basic abc", "Bearer"),
            (f"Bearer {inbox.token}", "access token of a login is not accepted"),
        ):
            sent = {**headers, "authorization": authorization} if authorization else headers
            response = await http.post(url, json=ping, headers=sent)
            assert response.status_code == 401, (authorization, response.text)
            assert reason in response.json()["error"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        # and the SDK's client cannot connect without a valid token (it reports the 401 from its task group)
        with pytest.raises(ExceptionGroup) as refused:
            async with agent(url, "bxp_wrong"):
                pass
        assert refused.group_contains(MCPError, depth=None)


# -- the agent loop ------------------------------------------------------------------------------------------------


async def test_an_agent_finds_the_thread_by_container_reads_it_drafts_a_reply_and_leaves_a_note(
    api: Api, inbox: Inbox, settings: Settings, state: AppState, worker: Any
) -> None:
    # given the thread of a customer asking about her container, and an agent's token that may draft (not send)
    freight = await freight_thread(inbox)
    secret = await api_token(api, inbox.token, "claude desktop", ["READ", "WRITE"])
    async with served(settings, state) as url, agent(url, secret) as client:
        # when it searches the inbox by the container number
        found = await tool(client, "search_threads", search=CONTAINER)
        assert found["total_count"] == 1
        row = found["threads"][0]
        assert row["id"] == freight.thread_id and row["reference"].startswith("BX-")
        assert row["customer"]["name"] == "Acme Imports" and row["shipment"]["reference"] == "SHP-7"
        assert row["last_message_at"] is not None
        # and reads the thread: the customer's question, the shipment with its container and BL
        thread = await tool(client, "get_thread", thread=row["reference"])
        assert thread["messages"][-1]["body"]["text"] == QUESTION
        assert thread["messages"][-1]["direction"] == "INBOUND" and thread["messages"][-1]["author"] == "Priya Shah"
        assert thread["contact"]["name"] == "Priya Shah"
        assert thread["shipment"]["container_numbers"] == [CONTAINER] and thread["shipment"]["bl_number"] == BL
        assert thread["shipment"]["eta"].startswith("2026-12-14")
        # and drafts a reply with the compose pipeline: grounded in the shipment, and nothing sent
        drafted = await tool(client, "draft_reply", thread=row["reference"], instructions="Offer the BL copy.")
        assert drafted["sent"] is False and len(drafted["drafts"]) == 1
        assert "Priya" in drafted["drafts"][0] and "14 Dec" in drafted["drafts"][0]
        # and leaves a note
        noted = await tool(client, "add_note", thread=row["reference"], body="Drafted a tracking reply for Priya.")
        assert noted["thread_id"] == freight.thread_id
    # then the note is the token's user's, visible through GraphQL
    notes = await inbox.gql(THREAD_NOTES, {"id": freight.thread_id})
    edges = notes["data"]["thread"]["notes"]["edges"]
    assert [edge["node"]["body"] for edge in edges] == ["Drafted a tracking reply for Priya."]
    assert edges[0]["node"]["author"]["email"] == inbox.org.admin_email
    # and no message went to the customer
    thread_messages = await inbox.gql(
        "query($id: ID!) { thread(id: $id) { messages { totalCount } } }", {"id": freight.thread_id}
    )
    assert thread_messages["data"]["thread"]["messages"]["totalCount"] == 1
    # and every call is in the audit log with the token's name, its target and its outcome
    rows = await audit_rows(state)
    assert [(r.action, r.outcome, r.token_name, r.channel) for r in rows] == [
        ("search_threads", "OK", "claude desktop", "MCP"),
        ("get_thread", "OK", "claude desktop", "MCP"),
        ("draft_reply", "OK", "claude desktop", "MCP"),
        ("add_note", "OK", "claude desktop", "MCP"),
    ]
    assert rows[1].target == row["reference"] and rows[3].target == row["reference"]
    assert rows[0].details["search"] == CONTAINER
    assert rows[3].details["body"] == {"characters": len("Drafted a tracking reply for Priya.")}  # not the text
    assert rows[2].details["instructions"] == {"characters": len("Offer the BL copy.")}
    # and an admin reads the log through GraphQL, newest first; nobody else may, and another organization sees none
    audit = await inbox.gql(AUDIT_LOG, {"filter": {"channel": "mcp"}})
    entries = [edge["node"] for edge in audit["data"]["auditLog"]["edges"]]
    assert [(e["action"], e["outcome"], e["tokenName"]) for e in entries] == [
        ("add_note", "OK", "claude desktop"),
        ("draft_reply", "OK", "claude desktop"),
        ("get_thread", "OK", "claude desktop"),
        ("search_threads", "OK", "claude desktop"),
    ]
    assert entries[0]["actor"]["email"] == inbox.org.admin_email and entries[3]["details"]["search"] == CONTAINER
    await api.create_user(inbox.org, "manager@acme.test", "manager")
    refused = await inbox.gql(AUDIT_LOG, {}, await api.token("manager@acme.test"))
    assert refused["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    other = await api.create_org("globex")
    theirs = await inbox.gql(AUDIT_LOG, {}, await api.token(other.admin_email))
    assert theirs["data"]["auditLog"]["edges"] == []


async def test_the_other_tools_act_through_the_mutations_use_cases(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    freight = await freight_thread(inbox, shipment=False)
    await inbox.shipment("SHP-9", containerNumbers=["TGHU1234567"], awbNumber="176-12345675", bookingNumber="BK-9")
    secret = await api_token(api, inbox.token, "ops agent", ["READ", "WRITE"])
    async with served(settings, state) as url, agent(url, secret) as client:
        reference = (await tool(client, "get_thread", thread=freight.thread_id))["reference"]
        # find_shipment by each kind of number
        for arguments in (
            {"reference": "shp-9"},
            {"container_number": "TGHU 1234567"},
            {"booking_number": "bk-9"},
            {"number": "SHP-9"},
        ):
            shipments = (await tool(client, "find_shipment", **arguments))["shipments"]
            assert [s["reference"] for s in shipments] == ["SHP-9"], arguments
        assert (await tool(client, "find_shipment", number="NOPE-1"))["shipments"] == []
        # link_shipment: the thread update's write path (the shipment is now found by its AWB, through the thread)
        linked = await tool(client, "link_shipment", thread=reference, shipment="SHP-9")
        assert linked["thread"]["shipment_id"] is not None
        shipments = (await tool(client, "find_shipment", awb_number="17612345675"))["shipments"]
        assert [s["reference"] for s in shipments] == ["SHP-9"]
        # create_action and assign_thread
        action = await tool(client, "create_action", thread=reference, title="Send the BL copy", assignee="me")
        assert action["action"]["status"] == "OPEN" and action["action"]["assignee_id"] is not None
        assigned = await tool(client, "assign_thread", thread=reference)
        assert assigned["thread"]["assignee_id"] == action["action"]["assignee_id"]
        # a domain error keeps its code and field
        missing = await tool_error(client, "add_note", thread=reference, body="   ")
        assert "INVALID (body)" in missing or "REQUIRED (body)" in missing, missing
    thread = await inbox.gql(
        "query($id: ID!) { thread(id: $id) { shipment { reference } assignee { email } actions { totalCount } } }",
        {"id": freight.thread_id},
    )
    assert thread["data"]["thread"] == {
        "shipment": {"reference": "SHP-9"},
        "assignee": {"email": inbox.org.admin_email},
        "actions": {"totalCount": 1},
    }


# -- bounds: tenancy, roles ----------------------------------------------------------------------------------------


async def test_another_organizations_thread_is_not_found(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given a thread in acme, and two in globex (so globex has a reference acme has not)
    await inbox.thread("Ours")
    globex = await _foreign(inbox)
    await globex.thread("Theirs 1")
    theirs = await globex.thread("Theirs 2")
    secret = await api_token(api, inbox.token, "acme agent", ["READ", "WRITE"])
    async with served(settings, state) as url, agent(url, secret) as client:
        # then neither their reference nor their id is found, for reading or writing
        by_reference = await tool_error(client, "get_thread", thread=theirs["reference"])
        assert by_reference.endswith(f"NOT_FOUND (thread): No such thread: {theirs['reference']!r}.")
        by_id = await tool_error(client, "get_thread", thread=theirs["id"])
        assert "NOT_FOUND (thread)" in by_id
        note = await tool_error(client, "add_note", thread=theirs["id"], body="hello from acme")
        assert note.endswith("NOT_FOUND (threadId): No such thread.")
        assert (await tool(client, "search_threads", search="Theirs"))["total_count"] == 0
        with pytest.raises(MCPError, match="NOT_FOUND"):
            await client.read_resource(f"banxway://threads/{theirs['reference']}")
    notes = await globex.gql(THREAD_NOTES, {"id": theirs["id"]})
    assert notes["data"]["thread"]["notes"]["edges"] == []
    # and the refusals are audited as such
    outcomes = [(r.action, r.outcome) for r in await audit_rows(state)]
    assert outcomes == [
        ("get_thread", "NOT_FOUND"),
        ("get_thread", "NOT_FOUND"),
        ("add_note", "NOT_FOUND"),
        ("search_threads", "OK"),
        ("read_resource", "NOT_FOUND"),
    ]


async def test_a_viewers_token_cannot_write_even_with_the_write_scope(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given a support user's READ+WRITE token, and the user then made a VIEWER (a role change applies at once)
    thread = await inbox.thread("Customs hold")
    member = await _member(inbox, "support")
    secret = await api_token(api, member.token, "support agent", ["READ", "WRITE"])
    changed = await inbox.gql(USER_UPDATE, {"id": member.id, "role": "VIEWER"})
    assert changed["data"]["userUpdate"]["userErrors"] == [], changed
    async with served(settings, state) as url, agent(url, secret) as client:
        # then only the read tools are listed, and the writes are FORBIDDEN by the role
        assert await names(client) == READ_TOOLS
        for name, arguments in (
            ("add_note", {"body": "viewer note"}),
            ("create_action", {"title": "viewer task"}),
            ("assign_thread", {}),
            ("link_shipment", {"shipment": None}),
        ):
            refused = await tool_error(client, name, thread=thread["reference"], **arguments)
            assert "FORBIDDEN: Role VIEWER may not" in refused, (name, refused)
        # while reading works
        assert (await tool(client, "get_thread", thread=thread["reference"]))["subject"] == "Customs hold"
    notes = await inbox.gql(THREAD_NOTES, {"id": thread["id"]})
    assert notes["data"]["thread"]["notes"]["edges"] == []
    rows = await audit_rows(state)
    assert [(r.action, r.outcome, r.token_name) for r in rows][:4] == [
        ("add_note", "FORBIDDEN", "support agent"),
        ("create_action", "FORBIDDEN", "support agent"),
        ("assign_thread", "FORBIDDEN", "support agent"),
        ("link_shipment", "FORBIDDEN", "support agent"),
    ]
    assert rows[-1].action == "get_thread" and rows[-1].outcome == "OK"


# -- resources and prompts -----------------------------------------------------------------------------------------


async def test_a_thread_and_a_shipment_read_as_markdown_and_the_prompts_embed_the_thread(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    freight = await freight_thread(inbox)
    secret = await api_token(api, inbox.token, "reader", ["READ"])
    async with served(settings, state) as url, agent(url, secret) as client:
        reference = (await tool(client, "get_thread", thread=freight.thread_id))["reference"]
        # the thread resource
        read = await client.read_resource(f"banxway://threads/{reference}")
        thread_md = read.contents[0]
        assert thread_md.mime_type == "text/markdown"
        text = thread_md.text  # type: ignore[union-attr]
        assert text.startswith(f"# {reference}: Where is my container?")
        assert "Customer: Acme Imports" in text and "Contact: Priya Shah" in text
        assert QUESTION in text and CONTAINER in text and "## Internal notes" in text
        # the shipment resource, with its milestones
        shipment_md = (await client.read_resource("banxway://shipments/SHP-7")).contents[0].text  # type: ignore[union-attr]
        assert shipment_md.startswith("# Shipment SHP-7") and f"BL: {BL}" in shipment_md
        assert "## Milestones" in shipment_md
        # the prompts
        summary = await client.get_prompt("summarise_thread", {"reference": reference})
        assert summary.messages[0].content.resource.text == text  # type: ignore[union-attr]
        assert "Summarise thread" in summary.messages[1].content.text  # type: ignore[union-attr]
        notice = await client.get_prompt("draft_delay_notice", {"reference": reference, "new_eta": "2026-12-21"})
        assert "2026-12-21" in notice.messages[1].content.text  # type: ignore[union-attr]
    rows = await audit_rows(state)
    assert [(r.action, r.target, r.outcome) for r in rows][1:] == [
        ("read_resource", f"banxway://threads/{reference}", "OK"),
        ("read_resource", "banxway://shipments/SHP-7", "OK"),
        ("summarise_thread", reference, "OK"),
        ("draft_delay_notice", reference, "OK"),
    ]


# -- stdio ---------------------------------------------------------------------------------------------------------


async def test_banxway_mcp_stdio_bridges_a_desktop_agent_to_the_server(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    freight = await freight_thread(inbox)
    secret = await api_token(api, inbox.token, "desktop", ["READ"])
    async with served(settings, state) as url:
        command = StdioServerParameters(
            command=sys.executable,
            args=["-m", "banxway.cli", "mcp", "--stdio", "--url", url],
            env={"BANXWAY_API_TOKEN": secret},
        )
        async with Client(command, mode="legacy") as client:  # as desktop agents connect today
            assert client.protocol_version == "2025-11-25"
            assert await names(client) == READ_TOOLS
            found = await tool(client, "search_threads", search=CONTAINER)
            assert [row["id"] for row in found["threads"]] == [freight.thread_id]
            refused = await tool_error(client, "draft_reply", thread=found["threads"][0]["reference"])
            assert "FORBIDDEN" in refused
    rows = await audit_rows(state)
    assert [(r.action, r.outcome, r.token_name) for r in rows] == [
        ("search_threads", "OK", "desktop"),
        ("draft_reply", "FORBIDDEN", "desktop"),
    ]


async def test_banxway_mcp_stdio_says_why_it_cannot_start(
    api: Api, inbox: Inbox, settings: Settings, state: AppState
) -> None:
    import asyncio

    async with served(settings, state) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "banxway.cli",
            "mcp",
            "--stdio",
            "--url",
            url,
            "--token",
            "bxp_wrong",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert stdout == b""  # stdout is the protocol's
    assert b"refused the token: Invalid access token: unknown API token" in stderr
