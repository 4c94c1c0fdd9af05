"""Security headers on every answer (a CSP fitted to GraphiQL's page, HSTS in production), /metrics behind
BANXWAY_METRICS_TOKEN, and introspection and "Did you mean" suggestions that production turns off (issue 16,
hardening)."""

from __future__ import annotations

import re

import httpx
import pytest

from banxway.schema import build_schema
from banxway.settings import Settings, SettingsError, load_settings
from banxway.state import AppState
from tests.conftest import Api, Org, http_client

METRICS_TOKEN = "metrics-token-0123456789"
INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE_INTROSPECTION = '{ __type(name: "Thread") { name } }'
MISSPELT = "{ mee { email } }"
MISSPELT_ENUM = "query($s: [ThreadStatus!]) { threads(filter: {status: $s}) { totalCount } }"


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in policy.split(";"))}


# -- headers -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/livez"), ("POST", "/graphql"), ("GET", "/no-such-page"), ("GET", "/metrics")]
)
async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient, method: str, path: str) -> None:
    # when
    response = await client.request(method, path, json={"query": "{ __typename }"} if method == "POST" else None)
    # then
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert "strict-transport-security" not in response.headers  # development: plain HTTP on a laptop


async def test_a_header_a_route_sets_itself_is_not_repeated(api: Api, org: Org) -> None:
    # given an attachment (its download sets X-Content-Type-Options itself)
    auth = {"authorization": f"Bearer {await api.token(org.admin_email)}"}
    uploaded = await api.http.post(
        "/attachments?filename=a.txt", content=b"hello", headers={**auth, "content-type": "text/plain"}
    )
    assert uploaded.status_code == 201, uploaded.text
    # when it is downloaded
    response = await api.http.get(uploaded.json()["url"], headers=auth)
    # then each security header is there once
    assert response.status_code == 200 and response.content == b"hello"
    names = [name.lower() for name, _ in response.headers.multi_items()]
    assert names.count("x-content-type-options") == 1
    assert names.count("content-security-policy") == 1
    assert names.count("x-frame-options") == 1


async def test_production_adds_strict_transport_security(settings: Settings, state: AppState) -> None:
    async with http_client(settings.model_copy(update={"env": "production"}), state) as http:
        response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_graphiqls_policy_allows_only_this_server(client: httpx.AsyncClient) -> None:
    # when the GraphiQL page is fetched (development)
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()
    policy = _directives(response.headers["content-security-policy"])
    page = response.text
    # then its script and stylesheet are this server's files, and nothing is inline
    sources = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', page)
    assert {source.split("?")[0] for source in sources} == {"/graphiql/app.js", "/graphiql/app.css", "data:,"}
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", page) and "<style" not in page
    # and the policy allows this server only: scripts, styles, fonts and requests (HTTP and its WebSocket)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["font-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "ws:", "wss:"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["default-src"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert "https:" not in response.headers["content-security-policy"]


# -- /metrics --------------------------------------------------------------------------------------------------------


async def test_metrics_needs_the_token_when_one_is_set(settings: Settings, state: AppState) -> None:
    # given a metrics token
    async with http_client(settings.model_copy(update={"metrics_token": METRICS_TOKEN}), state) as http:
        # when /metrics is asked without it, with another, and with it
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"authorization": "Bearer metrics-token-0123456788"})
        basic = await http.get("/metrics", headers={"authorization": f"Basic {METRICS_TOKEN}"})
        right = await http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    # then only the token gets the metrics
    assert (missing.status_code, wrong.status_code, basic.status_code) == (401, 401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "banxway_http_requests_total" not in missing.text
    assert right.status_code == 200
    assert "# TYPE banxway_http_requests_total counter" in right.text


async def test_metrics_are_not_served_in_production_without_a_token(settings: Settings, state: AppState) -> None:
    async with http_client(settings.model_copy(update={"env": "production"}), state) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert "banxway_http" not in response.text


async def test_metrics_are_served_in_production_with_the_token(settings: Settings, state: AppState) -> None:
    production = settings.model_copy(update={"env": "production", "metrics_token": METRICS_TOKEN})
    async with http_client(production, state) as http:
        refused = await http.get("/metrics")
        response = await http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert refused.status_code == 401
    assert response.status_code == 200 and "banxway_http_requests_total" in response.text


def test_a_short_metrics_token_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANXWAY_METRICS_TOKEN", "short-secret")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "BANXWAY_METRICS_TOKEN must be at least 16 characters" in str(raised.value)
    assert "short-secret" not in str(raised.value)


# -- introspection and suggestions ---------------------------------------------------------------------------------


async def _graphql(settings: Settings, state: AppState, query: str, variables: dict | None = None) -> dict:
    async with http_client(settings, state) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("query", [INTROSPECTION, TYPE_INTROSPECTION])
async def test_production_refuses_introspection(settings: Settings, state: AppState, query: str) -> None:
    # when
    result = await _graphql(settings.model_copy(update={"env": "production"}), state, query)
    # then
    assert result.get("data") is None
    [error] = result["errors"]
    assert error["message"].startswith("Introspection is disabled on this server: '__")
    assert error["extensions"]["code"] == "INTROSPECTION_DISABLED"


async def test_typename_is_no_introspection(settings: Settings, state: AppState) -> None:
    result = await _graphql(settings.model_copy(update={"env": "production"}), state, "{ __typename }")
    assert result == {"data": {"__typename": "Query"}}


async def test_introspection_is_answered_in_development(settings: Settings, state: AppState) -> None:
    result = await _graphql(settings, state, INTROSPECTION)
    assert result == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_introspection_can_be_turned_on_in_production_and_off_in_development(
    settings: Settings, state: AppState
) -> None:
    on = settings.model_copy(update={"env": "production", "graphql_introspection": True})
    off = settings.model_copy(update={"graphql_introspection": False})
    assert (await _graphql(on, state, INTROSPECTION))["data"]["__schema"]["queryType"]["name"] == "Query"
    assert (await _graphql(off, state, INTROSPECTION))["errors"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"


def test_the_schema_is_exported_with_introspection_off() -> None:
    production = Settings(
        env="production", secret_key="x" * 40, password_hashing="standard", graphql_introspection=False
    )
    assert "type Query {" in build_schema(production).as_str()


async def test_suggestions_are_stripped_in_production(settings: Settings, state: AppState) -> None:
    # when a field is misspelt
    result = await _graphql(settings.model_copy(update={"env": "production"}), state, MISSPELT)
    # then the error says what is wrong, not what the schema holds
    assert [error["message"] for error in result["errors"]] == ["Cannot query field 'mee' on type 'Query'."]


async def test_suggestions_are_given_in_development(settings: Settings, state: AppState) -> None:
    result = await _graphql(settings, state, MISSPELT)
    assert result["errors"][0]["message"] == "Cannot query field 'mee' on type 'Query'. Did you mean 'me'?"


async def test_suggestions_in_variable_errors_are_stripped_too(settings: Settings, state: AppState) -> None:
    # given suggestions off (in development, which shows such errors unmasked)
    quiet = settings.model_copy(update={"graphql_suggestions": False})
    # when a variable holds a misspelt enum value
    result = await _graphql(quiet, state, MISSPELT_ENUM, {"s": ["OPN"]})
    # then
    [error] = result["errors"]
    assert "Value 'OPN' does not exist in 'ThreadStatus' enum." in error["message"]
    assert "Did you mean" not in error["message"]


async def test_a_bad_variable_is_explained_in_production(settings: Settings, state: AppState) -> None:
    """Masking hides what went wrong inside the server, not what the client sent: a variable that does not coerce
    (its error wraps the scalar's exception) was masked as "Internal server error." in production."""
    production = settings.model_copy(update={"env": "production", "graphql_suggestions": False})
    result = await _graphql(production, state, MISSPELT_ENUM, {"s": ["OPN"]})
    [error] = result["errors"]
    assert "Value 'OPN' does not exist in 'ThreadStatus' enum." in error["message"], error
