"""Persisted operations: Apollo's automatic persisted queries (APQ) and the allow-list of registered operations.

The wire format is Apollo Client's `createPersistedQueryLink`: `extensions.persistedQuery = {version: 1,
sha256Hash}`, `PersistedQueryNotFound` / PERSISTED_QUERY_NOT_FOUND for an unknown hash (HTTP 200), then the
query and its hash together."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from banxway.app import create_app
from banxway.cli import app as cli_app
from banxway.compiler import COMPILED_HEADER
from banxway.schema.persisted import KEY_PREFIX, load_manifest, persisted_operations
from banxway.settings import Settings, SettingsError, load_settings
from banxway.state import AppState
from tests.conftest import LOGIN, PASSWORD, Api, Org, _WithLifespanState

ROOT = Path(__file__).resolve().parent.parent
ME = "query Me { me { email } }"
THREADS = "query Threads($n: Int) { threads(first: $n) { totalCount edges { node { id subject } } } }"
UNREGISTERED = "query Unregistered { threads(first: 2) { totalCount } }"
NOT_FOUND = {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}

# Strawberry passes a WebSocket message's `extensions` on, and a GET without `query` is run rather than answered
# with GraphiQL, only with the wiring of banxway/app.py that these marks name.


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def apq(query_hash: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": query_hash}}


async def post(http: httpx.AsyncClient, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await http.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


@asynccontextmanager
async def serving(settings: Settings, state: AppState) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A client of a new app on the test's state (a process of its own: its own schema, plans and LRU), and the
    app's schema."""
    app = create_app(settings, state=state)
    schema = next(route.app for route in app.routes if getattr(route, "path", None) == "/graphql").schema
    async with app.router.lifespan_context(app) as lifespan_state:
        transport = httpx.ASGITransport(app=_WithLifespanState(app, lifespan_state))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, schema


# -- automatic persisted queries ----------------------------------------------------------------------------


async def test_an_unknown_hash_alone_is_persisted_query_not_found(api: Api, org: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    # when
    response = await post(api.http, {"extensions": apq(sha256(ME)), "operationName": "Me"}, token)
    # then: what Apollo Client's link retries on, with HTTP 200 as Apollo Server answers
    assert response.json() == {"data": None, "errors": [NOT_FOUND]}


async def test_a_query_sent_with_its_hash_is_kept_and_runs_by_the_hash_alone(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given
    token = await api.token(org.admin_email)
    digest = sha256(ME)
    # when: Apollo Client's second request, after PersistedQueryNotFound
    registered = await post(api.http, {"query": ME, "extensions": apq(digest)}, token)
    # then
    assert registered.json() == {"data": {"me": {"email": org.admin_email}}}
    assert (await state.redis.get(KEY_PREFIX + digest)).decode() == ME
    assert 7 * 24 * 3600 - 60 < await state.redis.ttl(KEY_PREFIX + digest) <= 7 * 24 * 3600
    # when: the hash alone, in this process (the LRU) and in another one (Redis)
    again = await post(api.http, {"extensions": apq(digest), "operationName": "Me"}, token)
    async with serving(settings, state) as (other, _):
        elsewhere = await post(other, {"extensions": apq(digest)}, token)
    # then
    assert again.json() == elsewhere.json() == {"data": {"me": {"email": org.admin_email}}}


async def test_a_hash_that_is_not_the_query_s_is_refused(api: Api, org: Org, state: AppState) -> None:
    # given
    token = await api.token(org.admin_email)
    wrong = sha256(ME + " ")
    # when
    response = await post(api.http, {"query": ME, "extensions": apq(wrong)}, token)
    # then
    body = response.json()
    assert body["data"] is None
    assert [error["message"] for error in body["errors"]] == ["provided sha does not match query"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["reason"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert await state.redis.get(KEY_PREFIX + wrong) is None
    assert (await post(api.http, {"extensions": apq(wrong)}, token)).json()["errors"] == [NOT_FOUND]


async def test_a_query_that_does_not_validate_or_an_anonymous_one_is_not_kept(
    api: Api, org: Org, state: AppState
) -> None:
    # given
    token = await api.token(org.admin_email)
    invalid, anonymous = "{ me { noSuchField } }", "{ __typename }"
    # when
    refused = await post(api.http, {"query": invalid, "extensions": apq(sha256(invalid))}, token)
    answered = await post(api.http, {"query": anonymous, "extensions": apq(sha256(anonymous))})
    # then: both answered as usual, neither kept
    assert "noSuchField" in refused.json()["errors"][0]["message"]
    assert answered.json() == {"data": {"__typename": "Query"}}
    for query in (invalid, anonymous):
        assert await state.redis.get(KEY_PREFIX + sha256(query)) is None
        assert (await post(api.http, {"extensions": apq(sha256(query))}, token)).json()["errors"] == [NOT_FOUND]


async def test_a_persisted_query_runs_over_get(api: Api, org: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    hashed = {"extensions": json.dumps(apq(sha256(ME))), "operationName": "Me"}
    # when: Apollo Client's useGETForHashedQueries
    unknown = await api.http.get("/graphql", params=hashed, headers=headers)
    registered = await api.http.get("/graphql", params={**hashed, "query": ME}, headers=headers)
    by_hash = await api.http.get("/graphql", params=hashed, headers=headers)
    # then
    assert unknown.status_code == registered.status_code == by_hash.status_code == 200
    assert unknown.json() == {"data": None, "errors": [NOT_FOUND]}
    assert registered.json() == by_hash.json() == {"data": {"me": {"email": org.admin_email}}}


async def test_a_hash_alone_over_get_is_run_whatever_the_client_accepts(api: Api, org: Org) -> None:
    # given: Apollo Client 3 sends `accept: */*`, which without a `query` parameter asked for GraphiQL
    token = await api.token(org.admin_email)
    await post(api.http, {"query": ME, "extensions": apq(sha256(ME))}, token)
    # when
    response = await api.http.get(
        "/graphql",
        params={"extensions": json.dumps(apq(sha256(ME)))},
        headers={"authorization": f"Bearer {token}", "accept": "*/*"},
    )
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"email": org.admin_email}}}


async def test_a_persisted_query_takes_the_compiled_fast_path(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given: the production mode, where a query compiled before is answered without Strawberry's way
    token = await api.token(org.admin_email)
    digest = sha256(THREADS)
    async with serving(settings.model_copy(update={"graphql_compiled": "on"}), state) as (http, _):
        # when
        variables = {"operationName": "Threads", "variables": {"n": 3}}  # as Apollo Client sends them
        first = await post(http, {"query": THREADS, **variables, "extensions": apq(digest)}, token)
        second = await post(http, {**variables, "extensions": apq(digest)}, token)
        mismatched = await post(http, {"query": THREADS, **variables, "extensions": apq(sha256(ME))}, token)
    # then: the hash stands for the compiled text; a hash that is not the text's is refused even so
    assert first.json() == second.json() == {"data": {"threads": {"totalCount": 0, "edges": []}}}
    assert second.headers.get(COMPILED_HEADER) == "cached"
    assert mismatched.json()["errors"][0]["message"] == "provided sha does not match query"
    assert mismatched.headers.get(COMPILED_HEADER) is None


# -- the allow-list ---------------------------------------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Apollo's persisted-query manifest of ME, THREADS and the login."""
    path = tmp_path / "operations.json"
    operations = [
        {"id": sha256(body), "name": name, "type": kind, "body": body}
        for name, kind, body in (("Me", "query", ME), ("Threads", "query", THREADS), ("Login", "mutation", LOGIN))
    ]
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}))
    return path


@pytest.fixture
def persisted_only(settings: Settings, manifest: Path) -> Settings:
    return settings.model_copy(
        update={"graphql_persisted_only": True, "graphql_operations_file": manifest, "graphql_compiled": "on"}
    )


async def test_persisted_only_runs_the_registered_operations_by_hash_and_by_text(
    persisted_only: Settings, state: AppState, org: Org
) -> None:
    async with serving(persisted_only, state) as (http, _):
        # given: the login, registered, by its text
        login = await post(http, {"query": LOGIN, "variables": {"email": org.admin_email, "password": PASSWORD}})
        token = login.json()["data"]["authLogin"]["accessToken"]
        # when
        by_hash = await post(http, {"extensions": apq(sha256(ME))}, token)
        by_text = await post(http, {"query": ME}, token)
        threads_by_text = await post(http, {"query": THREADS, "variables": {"n": 1}}, token)
        threads_by_hash = await post(http, {"variables": {"n": 1}, "extensions": apq(sha256(THREADS))}, token)
    # then
    assert by_hash.json() == by_text.json() == {"data": {"me": {"email": org.admin_email}}}
    assert threads_by_text.json() == threads_by_hash.json() == {"data": {"threads": {"totalCount": 0, "edges": []}}}
    assert threads_by_hash.headers.get(COMPILED_HEADER) == "cached"


async def test_persisted_only_refuses_any_other_operation_and_registers_none(
    persisted_only: Settings, state: AppState, api: Api, org: Org
) -> None:
    # given
    token = await api.token(org.admin_email)
    async with serving(persisted_only, state) as (http, _):
        # when: an unregistered text, twice; the same with its own hash (APQ registration); an unknown hash
        texts = [await post(http, {"query": UNREGISTERED}, token) for _ in range(2)]
        registration = await post(http, {"query": UNREGISTERED, "extensions": apq(sha256(UNREGISTERED))}, token)
        hashed = await post(http, {"extensions": apq(sha256(UNREGISTERED))}, token)
    # then
    for response in (*texts, registration, hashed):
        body = response.json()
        assert body["data"] is None, body
        assert [error["extensions"]["code"] for error in body["errors"]] == ["PERSISTED_QUERY_NOT_ALLOWED"]
        assert "BANXWAY_GRAPHQL_PERSISTED_ONLY" in body["errors"][0]["message"]
    assert await state.redis.get(KEY_PREFIX + sha256(UNREGISTERED)) is None


async def test_persisted_only_refuses_an_operation_compiled_before(
    persisted_only: Settings, state: AppState, api: Api, org: Org
) -> None:
    # given: an unregistered query compiled by this process (its plan cached for the fast path, which runs no
    # extension) before the allow-list applied to it
    token = await api.token(org.admin_email)
    async with serving(persisted_only, state) as (http, schema):
        operations = persisted_operations(schema)
        operations.persisted_only = False
        request = {"query": UNREGISTERED, "operationName": "Unregistered"}
        compiled = [await post(http, request, token) for _ in range(2)]
        assert compiled[1].headers.get(COMPILED_HEADER) == "cached"
        operations.persisted_only = True
        # when
        refused = await post(http, request, token)
    # then
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
    assert refused.headers.get(COMPILED_HEADER) is None


# -- WebSocket --------------------------------------------------------------------------------------------------


@pytest.fixture
def ws_http(persisted_only: Settings, api: Api, org: Org) -> Iterator[TestClient]:
    with TestClient(create_app(persisted_only)) as test_client:
        yield test_client


def _receive(ws: Any) -> dict:
    while True:
        message = json.loads(ws.receive_text())
        if message.get("type") not in ("ka", "ping"):
            return message


def _ws_token(http: TestClient, email: str) -> str:
    response = http.post("/graphql", json={"query": LOGIN, "variables": {"email": email, "password": PASSWORD}})
    return response.json()["data"]["authLogin"]["accessToken"]


def test_persisted_only_holds_over_graphql_transport_ws(ws_http: TestClient, org: Org) -> None:
    # given
    token = _ws_token(ws_http, org.admin_email)
    with ws_http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        # when
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": UNREGISTERED}})
        refused = _receive(ws)
        ws.send_json({"id": "2", "type": "subscribe", "payload": {"query": ME}})
        answered = _receive(ws)
    # then
    assert refused["type"] == "error" and refused["id"] == "1"
    assert [error["extensions"]["code"] for error in refused["payload"]] == ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert answered == {"id": "2", "type": "next", "payload": {"data": {"me": {"email": org.admin_email}}}}


def test_persisted_only_holds_over_legacy_graphql_ws(ws_http: TestClient, org: Org) -> None:
    # given
    token = _ws_token(ws_http, org.admin_email)
    with ws_http.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        # when
        ws.send_json({"id": "1", "type": "start", "payload": {"query": UNREGISTERED}})
        refused = _receive(ws)
        ws.send_json({"id": "2", "type": "start", "payload": {"query": ME}})
        answered = _receive(ws)
    # then
    assert refused["type"] == "error" and refused["id"] == "1"
    assert refused["payload"]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
    assert answered == {"type": "data", "id": "2", "payload": {"data": {"me": {"email": org.admin_email}}}}


@pytest.fixture
def apq_ws_http(settings: Settings, api: Api, org: Org) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(("protocol", "start"), [("graphql-transport-ws", "subscribe"), ("graphql-ws", "start")])
def test_automatic_persisted_queries_over_websocket(
    apq_ws_http: TestClient, org: Org, protocol: str, start: str
) -> None:
    # given
    token = _ws_token(apq_ws_http, org.admin_email)
    digest = sha256(ME)
    with apq_ws_http.websocket_connect("/graphql", subprotocols=[protocol]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert _receive(ws)["type"] == "connection_ack"
        # when: the hash alone, then with the query, then alone again, then a hash that is not the query's
        ws.send_json({"id": "1", "type": start, "payload": {"extensions": apq(digest)}})
        unknown = _receive(ws)
        ws.send_json({"id": "2", "type": start, "payload": {"query": ME, "extensions": apq(digest)}})
        registered = _receive(ws)
        _receive(ws)  # complete
        ws.send_json({"id": "3", "type": start, "payload": {"extensions": apq(digest)}})
        by_hash = _receive(ws)
        _receive(ws)
        ws.send_json({"id": "4", "type": start, "payload": {"query": ME, "extensions": apq(sha256(LOGIN))}})
        mismatched = _receive(ws)
    # then
    errors = unknown["payload"] if isinstance(unknown["payload"], list) else [unknown["payload"]]
    assert unknown["type"] == "error" and errors == [NOT_FOUND]
    assert registered["payload"] == by_hash["payload"] == {"data": {"me": {"email": org.admin_email}}}
    assert mismatched["type"] == "error" and "provided sha does not match query" in json.dumps(mismatched)


# -- the manifest and the settings ------------------------------------------------------------------------------


def test_both_manifest_formats_load_and_a_bad_one_stops_start_up(tmp_path: Path, manifest: Path) -> None:
    # given
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({sha256(ME): ME}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}')
    # when / then
    assert load_manifest(plain) == {sha256(ME): ME}
    assert load_manifest(manifest)[sha256(THREADS)] == THREADS
    with pytest.raises(SettingsError, match=r"BANXWAY_GRAPHQL_OPERATIONS_FILE=.*broken.json.*version 2"):
        load_manifest(broken)
    with pytest.raises(SettingsError, match="BANXWAY_GRAPHQL_PERSISTED_ONLY=true needs BANXWAY_GRAPHQL_OPERATIONS"):
        load_settings(BANXWAY_GRAPHQL_PERSISTED_ONLY="true")
    with pytest.raises(SettingsError, match=r"BANXWAY_GRAPHQL_OPERATIONS_FILE=.*missing.json.* is not a file"):
        load_settings(BANXWAY_GRAPHQL_OPERATIONS_FILE=str(tmp_path / "missing.json"))


async def test_the_cli_manifest_of_the_operations_files_runs_in_persisted_only_mode(
    settings: Settings, state: AppState, tmp_path: Path, org: Org
) -> None:
    # given: `banxway operations hash operations/*.graphql > operations.json`
    files = sorted((ROOT / "operations").glob("*.graphql"))
    result = CliRunner().invoke(cli_app, ["operations", "hash", *map(str, files)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "operations.json"
    path.write_text(result.output)
    manifest = json.loads(result.output)
    assert {operation["id"] for operation in manifest["operations"]} == {sha256(f.read_text()) for f in files}
    auth = (ROOT / "operations" / "auth.graphql").read_text()
    strict = settings.model_copy(update={"graphql_persisted_only": True, "graphql_operations_file": path})
    async with serving(strict, state) as (http, _):
        # when: the documents as the frontend sends them, whole, with the operation's name
        variables = {"email": org.admin_email, "password": PASSWORD}
        login = await post(http, {"query": auth, "operationName": "Login", "variables": variables})
        token = login.json()["data"]["authLogin"]["accessToken"]
        me = await post(http, {"extensions": apq(sha256(auth)), "operationName": "Me"}, token)
        other = await post(http, {"query": ME}, token)
    # then
    assert me.json()["data"]["me"]["email"] == org.admin_email
    assert other.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
