"""Revocation reaches open WebSockets (issue 16, item 1).

The viewer used to be fixed at `connection_init` and reused for every later operation of the socket: a deactivated
user kept writing, an ADMIN demoted to VIEWER still created an ADMIN, and a token past its expiry kept answering.
Now every operation of a socket checks its token and user again (as each HTTP request does), the connection ends
with 4403 when its token expires unless the client renewed it in-band, and a password change signs the user out
everywhere (their access tokens carry the session version they were issued under).
Both protocols; the app is served by uvicorn in the test's loop (`tests/live_helpers.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from banxway.auth import decode_access_token, issue_access_token
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import PASSWORD, SECRET, Api, Org
from tests.live_helpers import (
    INBOX_EVENTS,
    LEGACY_WS,
    TRANSPORT_WS,
    GraphQLSocket,
    ServerClosed,
    create_thread,
    send_message,
    uvicorn_server,
    wait_subscribed,
)

ME = "{ me { email role } }"
NOTE = "mutation($t: ID!) { noteAdd(input: {threadId: $t, body: $b}) { note { id } userErrors { code } } }"
USER_CREATE = """
mutation($email: String!, $password: String!) {
  userCreate(input: {email: $email, name: "New admin", role: ADMIN, password: $password}) {
    user { id } userErrors { code }
  }
}
"""
USER_UPDATE = """
mutation($id: ID!, $role: Role, $active: Boolean, $password: String) {
  userUpdate(input: {id: $id, role: $role, active: $active, password: $password}) { userErrors { code message } }
}
"""
PROTOCOLS = pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org) -> AsyncIterator[str]:
    async with uvicorn_server(settings, state) as url:
        yield url


@pytest.fixture
async def admin(api: Api, org: Org) -> str:
    return await api.token(org.admin_email)


async def _user(api: Api, org: Org, email: str, role: str) -> tuple[str, str]:
    """(global id, access token) of a new user."""
    await api.create_user(org, email, role)
    token = await api.token(email)
    return (await api.gql("{ me { id } }", token=token))["data"]["me"]["id"], token


async def _ask(socket: GraphQLSocket, operation_id: str, query: str, variables: dict | None = None) -> dict:
    """The result of one query or mutation over the socket."""
    await socket.subscribe(operation_id, query, variables)
    message = await socket.receive()
    assert message["type"] in ("next", "data"), message
    assert await socket.receive() == {"type": "complete", "id": operation_id}
    return message["payload"]


def _short_token(token: str, seconds: int) -> str:
    claims = decode_access_token(SECRET, token)
    return issue_access_token(
        SECRET,
        user_id=claims.user_id,
        organization_id=claims.organization_id,
        role=claims.role,
        session_version=claims.session_version,
        ttl_seconds=seconds,
    )


@PROTOCOLS
async def test_a_user_deactivated_while_connected_is_closed_out_at_their_next_operation(
    server: str, api: Api, org: Org, admin: str, protocol: str
) -> None:
    # given a support user connected, who has run an operation
    user_id, token = await _user(api, org, "sam@acme.test", "support")
    async with GraphQLSocket.open(server, protocol) as socket:
        await socket.init(token)
        assert (await _ask(socket, "1", ME))["data"]["me"]["role"] == "SUPPORT"
        # when an admin deactivates them over HTTP
        result = await api.gql(USER_UPDATE, {"id": user_id, "active": False}, token=admin)
        assert result["data"]["userUpdate"]["userErrors"] == []
        # then their next operation (a note) is not run: the connection ends with 4403 and says why
        thread = await create_thread(api, admin, "Deactivated while connected")
        await socket.subscribe("2", NOTE.replace("$b", '"still here"'), {"t": thread["id"]})
        with pytest.raises(ServerClosed) as closed:
            await socket.receive()
    assert closed.value.code == 4403
    assert "deactivated" in closed.value.reason
    notes = await api.gql(
        "query($id: ID!) { thread(id: $id) { notes { totalCount } } }", {"id": thread["id"]}, token=admin
    )
    assert notes["data"]["thread"]["notes"]["totalCount"] == 0


@PROTOCOLS
async def test_an_admin_demoted_while_connected_acts_with_the_new_role(
    server: str, api: Api, org: Org, admin: str, protocol: str
) -> None:
    # given a second admin connected
    user_id, token = await _user(api, org, "ada@acme.test", "admin")
    async with GraphQLSocket.open(server, protocol) as socket:
        await socket.init(token)
        assert (await _ask(socket, "1", ME))["data"]["me"]["role"] == "ADMIN"
        # when they are demoted to VIEWER
        result = await api.gql(USER_UPDATE, {"id": user_id, "role": "VIEWER"}, token=admin)
        assert result["data"]["userUpdate"]["userErrors"] == []
        # then creating an admin over the same socket is refused, and the socket reads as a VIEWER
        created = await _ask(socket, "2", USER_CREATE, {"email": "mallory@acme.test", "password": PASSWORD})
        assert created["data"] is None or created["data"]["userCreate"] is None, created
        assert created["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert (await _ask(socket, "3", ME))["data"]["me"]["role"] == "VIEWER"
    login = await api.login("mallory@acme.test")
    assert login["accessToken"] is None


@PROTOCOLS
async def test_a_connection_ends_when_its_token_expires(server: str, api: Api, org: Org, protocol: str) -> None:
    # given a connection opened with a token that expires in 2 seconds
    token = _short_token(await api.token(org.admin_email), 2)
    async with GraphQLSocket.open(server, protocol) as socket:
        await socket.init(token)
        assert (await _ask(socket, "1", ME))["data"]["me"]["email"] == org.admin_email
        # when it expires, with no operation running: the server closes it
        code, _ = await socket.close_code(within=6)
    assert code == 4403


async def test_a_ping_with_a_new_token_renews_the_connection(server: str, api: Api, org: Org) -> None:
    # given a graphql-transport-ws connection whose token expires in 2 seconds
    token = await api.token(org.admin_email)
    async with GraphQLSocket.open(server, TRANSPORT_WS) as socket:
        await socket.init(_short_token(token, 2))
        # when the client renews it in-band with a fresh token of the same user
        await socket.send({"type": "ping", "payload": {"authorization": f"Bearer {token}"}})
        pong = await socket.receive()
        # then the pong says so, and the connection outlives the first token
        assert pong["type"] == "pong" and pong["payload"]["renewed"] is True, pong
        assert pong["payload"]["expiresAt"] == decode_access_token(SECRET, token).expires_at.isoformat()
        await asyncio.sleep(2.5)
        assert (await _ask(socket, "1", ME))["data"]["me"]["email"] == org.admin_email
        # and a plain ping still gets a plain pong
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}


async def test_a_renewal_with_another_users_token_is_refused(server: str, api: Api, org: Org) -> None:
    # given an admin's connection, and another user's token
    _, other = await _user(api, org, "vic@acme.test", "viewer")
    async with GraphQLSocket.open(server, TRANSPORT_WS) as socket:
        await socket.init(await api.token(org.admin_email))
        # when the connection is "renewed" with the other user's token
        await socket.send({"type": "ping", "payload": {"authorization": f"Bearer {other}"}})
        pong = await socket.receive()
        # then it is refused, and the connection goes on as the admin
        assert pong["payload"]["renewed"] is False
        assert "same user" not in pong["payload"]["error"] or "user it was opened for" in pong["payload"]["error"]
        assert (await _ask(socket, "1", ME))["data"]["me"]["email"] == org.admin_email
        # and a bad token is refused with the reason
        await socket.send({"type": "ping", "payload": {"authorization": "Bearer nonsense"}})
        assert (await socket.receive())["payload"] == {"renewed": False, "error": "Invalid access token: invalid token"}


async def test_a_second_connection_init_renews_a_legacy_connection(server: str, api: Api, org: Org) -> None:
    # given a legacy graphql-ws connection whose token expires in 2 seconds
    token = await api.token(org.admin_email)
    async with GraphQLSocket.open(server, LEGACY_WS) as socket:
        await socket.init(_short_token(token, 2))
        # when the client sends connection_init again with a fresh token
        await socket.init(token)
        # then the connection outlives the first token
        await asyncio.sleep(2.5)
        assert (await _ask(socket, "1", ME))["data"]["me"]["email"] == org.admin_email
        # and a renewal with a bad token answers connection_error, keeping the connection
        await socket.send({"type": "connection_init", "payload": {"authorization": "Bearer nonsense"}})
        assert (await socket.receive())["type"] == "connection_error"
        assert (await _ask(socket, "2", ME))["data"]["me"]["email"] == org.admin_email


async def test_a_password_change_signs_the_user_out_everywhere(server: str, api: Api, org: Org, admin: str) -> None:
    # given a support user with an open subscription on one socket and another socket for operations
    user_id, token = await _user(api, org, "pat@acme.test", "support")
    thread = await create_thread(api, admin, "Password change")
    async with GraphQLSocket.open(server) as listening, GraphQLSocket.open(server) as working:
        await listening.init(token)
        await working.init(token)
        await listening.subscribe("events", INBOX_EVENTS)
        await wait_subscribed(api.state, org.id, 1)
        # when an admin gives them a new password
        result = await api.gql(USER_UPDATE, {"id": user_id, "password": "a-brand-new-password"}, token=admin)
        assert result["data"]["userUpdate"]["userErrors"] == []
        # then the old access token no longer works over HTTP
        over_http = await api.gql(ME, token=token)
        assert over_http["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        # the open subscription ends at the next event, with UNAUTHENTICATED
        await asyncio.sleep(1.1)  # the channel re-reads its users at most once a second
        await send_message(api, admin, thread["id"], "after the change")
        ended = await listening.receive()
        while ended["type"] == "next" and "errors" not in ended["payload"]:
            ended = await listening.receive()  # USER_UPDATED, and events that came first
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", ended
        # and the other socket's next operation ends its connection
        await working.subscribe("1", ME)
        with pytest.raises(ServerClosed) as closed:
            await working.receive()
    assert closed.value.code == 4403
    # while a new login with the new password works
    assert (await api.login("pat@acme.test", "a-brand-new-password"))["userErrors"] == []
