"""The HTTP surface: GET, GraphiQL, document limits, error masking, health, metrics, request ids, CORS."""

from __future__ import annotations

import re

import httpx
import pytest

from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import PASSWORD, Api, Org, http_client

ME = "{ me { email } }"

LOGIN = """
mutation Login($email: String!, $password: String!) {
  authLogin(input: {email: $email, password: $password}) { accessToken userErrors { code } }
}
"""

DEEP = "{ me { organization { name } } }"  # depth 3: query > me > organization > name
DEEPER = "{ users { edges { node { organization { name } } } } }"  # depth 5

ELEVEN_TOKENS = "{ me { email name role active createdAt id } }"

TWO_ALIASES = "{ a: me { email } b: me { email } }"
THREE_ALIASES = "{ a: me { email } b: me { email } c: me { email } }"

UNKNOWN_FIELD = "{ me { nope } }"

USER_CREATE = """
mutation { userCreate(input: {email: "x@acme.test", name: "X", role: VIEWER, password: "long-enough-1"}) { user { id } } }
"""

CLOSED_REDIS = "redis://127.0.0.1:1/0"
CLOSED_POSTGRES = "postgresql://banxway:secret@127.0.0.1:1/banxway"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _post(http: httpx.AsyncClient, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=_bearer(token) if token else {},
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- GET ----------------------------------------------------------------------------


async def test_query_over_get_works_with_a_token(api: Api, org: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    # when
    response = await api.http.get("/graphql", params={"query": ME}, headers=_bearer(token))
    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"me": {"email": org.admin_email}}}


async def test_query_over_get_without_a_token_is_unauthenticated(api: Api, org: Org) -> None:
    response = await api.http.get("/graphql", params={"query": ME})
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_mutation_over_get_is_refused(api: Api, org: Org) -> None:
    # when
    response = await api.http.get(
        "/graphql",
        params={
            "query": LOGIN,
            "variables": f'{{"email": "{org.admin_email}", "password": "{PASSWORD}"}}',
        },
    )
    # then
    assert 400 <= response.status_code < 500
    assert "mutations are not allowed" in response.text.lower()
    # and no login happened: nothing was counted or issued
    from sqlalchemy import func, select

    from banxway.db.models import RefreshToken
    from banxway.db.session import system_session

    async with system_session(api.state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(RefreshToken)) == 0


# -- GraphiQL -----------------------------------------------------------------------


async def test_graphiql_is_served_in_development(client: httpx.AsyncClient) -> None:
    # when
    response = await client.get("/graphql", headers={"accept": "text/html"})
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_graphiql_is_not_served_in_production(settings: Settings, state: AppState) -> None:
    # given
    production = settings.model_copy(update={"env": "production"})
    async with http_client(production, state) as http:
        # when
        response = await http.get("/graphql", headers={"accept": "text/html"})
    # then
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


# -- document limits ----------------------------------------------------------------


async def test_depth_limit_rejects_a_deeper_query(api: Api, org: Org, settings: Settings, state: AppState) -> None:
    # given
    token = await api.token(org.admin_email)
    limited = settings.model_copy(update={"graphql_max_depth": 3})
    async with http_client(limited, state) as http:
        # when
        within = await _post(http, DEEP, token=token)
        beyond = await _post(http, DEEPER, token=token)
    # then
    assert within == {"data": {"me": {"organization": {"name": "Acme"}}}}
    assert beyond["data"] is None
    assert "exceeds maximum operation depth of 3" in beyond["errors"][0]["message"]


async def test_token_limit_rejects_a_longer_document(api: Api, org: Org, settings: Settings, state: AppState) -> None:
    # given
    token = await api.token(org.admin_email)
    limited = settings.model_copy(update={"graphql_max_tokens": 10})
    async with http_client(limited, state) as http:
        # when
        within = await _post(http, ME, token=token)  # 6 tokens
        beyond = await _post(http, ELEVEN_TOKENS, token=token)
    # then
    assert within == {"data": {"me": {"email": org.admin_email}}}
    assert beyond["data"] is None
    assert "Document contains more than 10 tokens" in beyond["errors"][0]["message"]


async def test_alias_limit_rejects_more_aliases(api: Api, org: Org, settings: Settings, state: AppState) -> None:
    # given
    token = await api.token(org.admin_email)
    limited = settings.model_copy(update={"graphql_max_aliases": 2})
    async with http_client(limited, state) as http:
        # when
        within = await _post(http, TWO_ALIASES, token=token)
        beyond = await _post(http, THREE_ALIASES, token=token)
    # then
    assert within == {"data": {"a": {"email": org.admin_email}, "b": {"email": org.admin_email}}}
    assert beyond["data"] is None
    assert beyond["errors"][0]["message"] == "3 aliases found. Allowed: 2"


async def test_default_limits_reject_an_abusive_document(api: Api, org: Org) -> None:
    # given: the default settings (depth 15, 30 aliases)
    token = await api.token(org.admin_email)
    thirty = "{ " + " ".join(f"a{i}: me {{ email }}" for i in range(30)) + " }"
    thirty_one = "{ " + " ".join(f"a{i}: me {{ email }}" for i in range(31)) + " }"
    # when
    fine = await api.gql(thirty, token=token)
    aliased = await api.gql(thirty_one, token=token)
    # then
    assert fine["data"]["a29"] == {"email": org.admin_email}
    assert aliased["data"] is None
    assert aliased["errors"][0]["message"] == "31 aliases found. Allowed: 30"


# -- error masking ------------------------------------------------------------------


async def test_production_masks_an_internal_error_but_not_unauthenticated(
    api: Api, org: Org, settings: Settings
) -> None:
    # given: production, with Redis gone (authLogin counts failed logins in Redis)
    broken = settings.model_copy(update={"env": "production", "redis_url": CLOSED_REDIS})
    async with http_client(broken) as http:
        # when
        login = await _post(http, LOGIN, {"email": org.admin_email, "password": PASSWORD})
        anonymous = await _post(http, ME)
        bad_token = await _post(http, ME, token="not-a-token")
    # then the fault is masked: no exception text, no address
    assert login["data"] is None
    assert [error["message"] for error in login["errors"]] == ["Internal server error."]
    assert "127.0.0.1" not in str(login) and "Connection" not in str(login)
    # and the authentication error keeps its message and code
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["message"] == "Authentication required"
    assert anonymous["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert bad_token["errors"][0]["message"] == "Invalid access token: invalid token"
    assert bad_token["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_development_shows_the_internal_error(api: Api, org: Org, settings: Settings) -> None:
    # given: the same fault in development
    broken = settings.model_copy(update={"redis_url": CLOSED_REDIS})
    async with http_client(broken) as http:
        # when
        login = await _post(http, LOGIN, {"email": org.admin_email, "password": PASSWORD})
    # then
    assert login["data"] is None
    assert "connecting to 127.0.0.1:1" in login["errors"][0]["message"]


async def test_production_keeps_forbidden_and_validation_errors(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given
    await api.create_user(org, "viewer@acme.test", "viewer")
    token = await api.token("viewer@acme.test")
    production = settings.model_copy(update={"env": "production"})
    async with http_client(production, state) as http:
        # when
        forbidden = await _post(http, USER_CREATE, token=token)
        invalid = await _post(http, UNKNOWN_FIELD, token=token)
    # then
    assert forbidden["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert forbidden["errors"][0]["message"] != "Internal server error."
    assert "nope" in invalid["errors"][0]["message"]


# -- health and metrics -------------------------------------------------------------


async def test_livez_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_when_postgres_and_redis_do(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_readyz_names_redis_when_it_is_down(settings: Settings) -> None:
    # given
    broken = settings.model_copy(update={"redis_url": CLOSED_REDIS})
    async with http_client(broken) as http:
        # when
        response = await http.get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis"]
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable: ")


async def test_readyz_names_postgres_when_it_is_down(settings: Settings) -> None:
    # given
    broken = settings.model_copy(update={"database_url": CLOSED_POSTGRES})
    async with http_client(broken) as http:
        # when
        response = await http.get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["postgres"]
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["postgres"].startswith("unavailable: ")
    assert "secret" not in response.text  # the password of the URL is not echoed


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    # given
    await client.get("/livez")
    await client.get("/livez")
    # when
    response = await client.get("/metrics")
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE banxway_http_requests_total counter" in response.text
    assert 'banxway_http_requests_total{method="GET",path="/livez",status="200"} 2.0' in response.text
    assert "banxway_http_request_seconds_bucket" in response.text


async def test_metrics_group_unknown_paths(client: httpx.AsyncClient) -> None:
    await client.get("/no-such-page-1")
    await client.get("/no-such-page-2")
    text = (await client.get("/metrics")).text
    assert 'banxway_http_requests_total{method="GET",path="other",status="404"} 2.0' in text
    assert "no-such-page" not in text


# -- request id ---------------------------------------------------------------------


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez", headers={"x-request-id": "req-12345"})
    assert response.headers["x-request-id"] == "req-12345"


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/livez")
    second = await client.get("/livez")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_request_id_is_on_graphql_responses(api: Api, org: Org) -> None:
    response = await api.http.post("/graphql", json={"query": ME}, headers={"x-request-id": "gql-1"})
    assert response.headers["x-request-id"] == "gql-1"


# -- CORS ---------------------------------------------------------------------------


def _preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


async def test_cors_preflight_allows_a_configured_origin(settings: Settings, state: AppState) -> None:
    # given
    configured = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    async with http_client(configured, state) as http:
        # when
        response = await http.options("/graphql", headers=_preflight("https://app.example"))
    # then
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_cors_preflight_refuses_another_origin(settings: Settings, state: AppState) -> None:
    # given
    configured = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    async with http_client(configured, state) as http:
        # when
        response = await http.options("/graphql", headers=_preflight("https://evil.example"))
        simple = await http.get("/livez", headers={"origin": "https://evil.example"})
    # then
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_headers_on_an_actual_request_from_the_configured_origin(
    settings: Settings, state: AppState
) -> None:
    configured = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    async with http_client(configured, state) as http:
        response = await http.post("/graphql", json={"query": ME}, headers={"origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_without_configured_origins_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.options("/graphql", headers=_preflight("https://app.example"))
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000", "http://localhost"])
async def test_in_development_a_local_dev_server_may_call_the_api(client: httpx.AsyncClient, origin: str) -> None:
    """Issue 18: a frontend's dev server on this machine works without configuring BANXWAY_CORS_ORIGINS."""
    response = await client.options("/graphql", headers=_preflight(origin))
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", ["http://localhost.evil.example", "https://localhost:5173", "http://10.0.0.2:80"])
async def test_only_local_http_origins_are_allowed_by_default(client: httpx.AsyncClient, origin: str) -> None:
    response = await client.options("/graphql", headers=_preflight(origin))
    assert "access-control-allow-origin" not in response.headers


async def test_in_production_no_origin_is_allowed_unless_configured(settings: Settings, state: AppState) -> None:
    production = settings.model_copy(update={"env": "production"})
    async with http_client(production, state) as http:
        response = await http.options("/graphql", headers=_preflight("http://localhost:5173"))
    assert "access-control-allow-origin" not in response.headers
