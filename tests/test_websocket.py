"""WebSocket /graphql: graphql-transport-ws and the legacy graphql-ws protocol, with token auth on init."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from banxway.app import create_app
from banxway.settings import Settings
from tests.conftest import LOGIN, PASSWORD, Api, Org

ME = "{ me { email } }"
ME_AND_ORGANIZATION = "{ me { email role } organization { slug } }"
TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


@pytest.fixture
def http(settings: Settings, api: Api, org: Org) -> Iterator[TestClient]:
    """A TestClient whose lifespan builds the app state in the client's own event loop."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _token(http: TestClient, email: str) -> str:
    response = http.post("/graphql", json={"query": LOGIN, "variables": {"email": email, "password": PASSWORD}})
    payload = response.json()["data"]["authLogin"]
    assert payload["userErrors"] == [], payload
    return payload["accessToken"]


def _receive(ws: Any) -> dict:
    """The next protocol message, text or binary frame, skipping the legacy protocol's keep-alives.

    Frames are decoded whichever their kind, so that these tests check the protocol;
    `test_messages_are_sent_as_text_frames` checks the frame kind itself.
    """
    while True:
        frame = ws.receive()
        if frame["type"] == "websocket.close":
            raise WebSocketDisconnect(frame.get("code", 1000), frame.get("reason"))
        raw = frame["text"] if frame.get("text") is not None else frame["bytes"].decode()
        message = json.loads(raw)
        if message.get("type") != "ka":
            return message


# -- graphql-transport-ws -----------------------------------------------------------


def test_transport_ws_init_with_a_token_is_acknowledged(http: TestClient, org: Org) -> None:
    # given
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        # then
        assert ws.accepted_subprotocol == TRANSPORT_WS
        ack = _receive(ws)
        assert ack["type"] == "connection_ack"
        assert ack.get("payload") is None


def test_transport_ws_runs_a_query_as_the_signed_in_user(http: TestClient, org: Org) -> None:
    # given
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        # when
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
        # then
        assert _receive(ws) == {"id": "1", "type": "next", "payload": {"data": {"me": {"email": org.admin_email}}}}
        assert _receive(ws) == {"id": "1", "type": "complete"}


def test_transport_ws_runs_several_operations_on_one_connection(http: TestClient, org: Org) -> None:
    # given
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        for operation_id in ("a", "b"):
            # when
            ws.send_json({"id": operation_id, "type": "subscribe", "payload": {"query": ME_AND_ORGANIZATION}})
            # then
            assert _receive(ws) == {
                "id": operation_id,
                "type": "next",
                "payload": {
                    "data": {"me": {"email": org.admin_email, "role": "ADMIN"}, "organization": {"slug": "acme"}}
                },
            }
            assert _receive(ws) == {"id": operation_id, "type": "complete"}


def test_transport_ws_ping_gets_pong(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        # when
        ws.send_json({"type": "ping"})
        # then
        assert _receive(ws) == {"type": "pong"}


def test_transport_ws_bad_token_closes_with_4403(http: TestClient, org: Org) -> None:
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        ws.send_json({"type": "connection_init", "payload": {"authorization": "Bearer not-a-token"}})
        # then
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 4403


def test_transport_ws_malformed_authorization_closes_with_4403(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Token {token}"}})
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 4403


def test_transport_ws_subscribe_before_init_closes_with_4401(http: TestClient, org: Org) -> None:
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
        # then
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 4401


def test_transport_ws_without_a_token_is_acknowledged_but_unauthenticated(http: TestClient, org: Org) -> None:
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # given an init with no token
        ws.send_json({"type": "connection_init", "payload": {}})
        assert _receive(ws)["type"] == "connection_ack"
        # when
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
        # then
        message = _receive(ws)
        assert message["type"] == "next"
        assert message["payload"]["data"] is None
        assert message["payload"]["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
        assert _receive(ws) == {"id": "1", "type": "complete"}


def test_transport_ws_token_of_a_deactivated_user_closes_with_4403(http: TestClient, org: Org) -> None:
    # given a token whose user is then deactivated
    token = _token(http, org.admin_email)
    second_admin = _token_of_new_user(http, token, "second@acme.test")
    response = http.post(
        "/graphql",
        json={"query": DEACTIVATE, "variables": {"id": second_admin[0]}},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.json()["data"]["userUpdate"]["userErrors"] == []
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {second_admin[1]}"}})
        # then
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 4403


CREATE_USER = """
mutation($email: String!, $password: String!) {
  userCreate(input: {email: $email, name: "Second", role: VIEWER, password: $password}) { user { id } userErrors { code } }
}
"""

DEACTIVATE = "mutation($id: ID!) { userUpdate(input: {id: $id, active: false}) { userErrors { code } } }"


def _token_of_new_user(http: TestClient, admin_token: str, email: str) -> tuple[str, str]:
    response = http.post(
        "/graphql",
        json={"query": CREATE_USER, "variables": {"email": email, "password": PASSWORD}},
        headers={"authorization": f"Bearer {admin_token}"},
    )
    user_id = response.json()["data"]["userCreate"]["user"]["id"]
    return user_id, _token(http, email)


def test_unknown_subprotocol_is_refused(http: TestClient, org: Org) -> None:
    with http.websocket_connect("/graphql", subprotocols=["not-graphql"]) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 4406


@pytest.mark.parametrize("subprotocol", [TRANSPORT_WS, LEGACY_WS])
def test_messages_are_sent_as_text_frames(http: TestClient, org: Org, subprotocol: str) -> None:
    # given
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[subprotocol]) as ws:
        # when
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        frame = ws.receive()
    # then: a text frame, as both protocols and browser clients (JSON.parse(event.data)) expect
    assert frame["type"] == "websocket.send"
    assert frame.get("bytes") is None
    assert json.loads(frame["text"])["type"] == "connection_ack"


# -- legacy graphql-ws --------------------------------------------------------------


def test_legacy_ws_init_with_a_token_is_acknowledged(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[LEGACY_WS]) as ws:
        # when
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        # then
        assert ws.accepted_subprotocol == LEGACY_WS
        assert _receive(ws) == {"type": "connection_ack"}


def test_legacy_ws_start_runs_a_query(http: TestClient, org: Org) -> None:
    # given
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[LEGACY_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws) == {"type": "connection_ack"}
        # when
        ws.send_json({"id": "1", "type": "start", "payload": {"query": ME}})
        # then
        assert _receive(ws) == {"id": "1", "type": "data", "payload": {"data": {"me": {"email": org.admin_email}}}}
        assert _receive(ws) == {"id": "1", "type": "complete"}
        ws.send_json({"type": "connection_terminate"})


def test_legacy_ws_bad_token_is_a_connection_error(http: TestClient, org: Org) -> None:
    with http.websocket_connect("/graphql", subprotocols=[LEGACY_WS]) as ws:
        # when
        ws.send_json({"type": "connection_init", "payload": {"authorization": "Bearer not-a-token"}})
        # then
        error = _receive(ws)
        assert error["type"] == "connection_error"
        assert error["payload"]["message"].startswith("Invalid access token")
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 1011


def test_legacy_ws_start_before_init_closes_with_4401(http: TestClient, org: Org) -> None:
    with http.websocket_connect("/graphql", subprotocols=[LEGACY_WS]) as ws:
        ws.send_json({"id": "1", "type": "start", "payload": {"query": ME}})
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
    assert closed.value.code == 4401


# -- graphql-transport-ws close codes ------------------------------------------------


def _close_code(ws: Any) -> int:
    """Read until the server closes the socket; its close code."""
    while True:
        try:
            _receive(ws)
        except WebSocketDisconnect as closed:
            return closed.code


def test_transport_ws_without_init_is_closed_with_4408(settings: Settings, api: Api, org: Org) -> None:
    # given a server that waits one second for connection_init
    app = create_app(settings.model_copy(update={"ws_init_timeout_seconds": 1.0}))
    with TestClient(app) as http, http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when the client sends nothing, then
        assert _close_code(ws) == 4408


def test_transport_ws_second_init_is_closed_with_4429(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _close_code(ws) == 4429


def test_transport_ws_duplicate_operation_id_is_closed_with_4409(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    subscription = "subscription { inboxEvents { cursor } }"
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": subscription}})
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": subscription}})
        assert _close_code(ws) == 4409
