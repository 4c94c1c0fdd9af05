"""Rate limits (issue 16, hardening): sliding-minute windows in Redis per user and per client address on GraphQL
over HTTP, a stricter one on mutations, and per webhook URL and per address on provider callbacks; 429 with
Retry-After and a RATE_LIMITED error. `banxway.ratelimit` holds the windows (the failed-login limits use it too)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from banxway import ratelimit
from banxway.app import create_app
from banxway.redis_client import redis_client
from banxway.settings import Settings, SettingsError, load_settings
from banxway.state import AppState
from tests.conftest import Api, Org

ME = "{ me { email } }"
TYPENAME = "{ __typename }"
MARK_ALL_READ = "mutation { notificationMarkAllRead { userErrors { code } } }"
NO_LIMITS = {
    "rate_limit_graphql_per_minute": 0,
    "rate_limit_graphql_per_ip_per_minute": 0,
    "rate_limit_mutations_per_minute": 0,
    "rate_limit_mutations_per_ip_per_minute": 0,
    "rate_limit_webhooks_per_minute": 0,
    "rate_limit_webhooks_per_ip_per_minute": 0,
}

UNKNOWN_WEBHOOK = (403, 404)  # how the webhook itself answers a token of no integration
Clients = Callable[..., httpx.AsyncClient]


def _limits(settings: Settings, **limits: int) -> Settings:
    """`settings` with only the named limits (every other one off)."""
    return settings.model_copy(update={**NO_LIMITS, **{f"rate_limit_{name}": value for name, value in limits.items()}})


@asynccontextmanager
async def serving(settings: Settings, state: AppState) -> AsyncIterator[Clients]:
    """The app on its lifespan; `client(address)` is an HTTP client calling from that address."""
    app = create_app(settings, state=state)
    async with app.router.lifespan_context(app) as lifespan_state:

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(lifespan_state)}, receive, send)

        clients: list[httpx.AsyncClient] = []

        def client(address: str = "127.0.0.1") -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=asgi, client=(address, 50000))
            clients.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
            return clients[-1]

        try:
            yield client
        finally:
            for opened in clients:
                await opened.aclose()


async def _post(http: httpx.AsyncClient, query: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query}, headers=headers)


def _assert_rate_limited(response: httpx.Response, *words: str) -> int:
    """The 429's Retry-After, checked against its GraphQL error."""
    assert response.status_code == 429, response.text
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry}
    for word in words:
        assert word in error["message"], error["message"]
    return retry


# -- GraphQL -----------------------------------------------------------------------------------------------------


async def test_the_request_past_a_users_limit_gets_429_with_retry_after(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given a limit of 3 GraphQL requests a minute per user
    token = await api.token(org.admin_email)
    async with serving(_limits(settings, graphql_per_minute=3), state) as client:
        http = client()
        # when the user makes 4
        answers = [await _post(http, ME, token) for _ in range(4)]
    # then 3 are answered and the 4th is refused, saying when to come back
    assert [answer.status_code for answer in answers[:3]] == [200, 200, 200]
    assert answers[0].json()["data"]["me"]["email"] == org.admin_email
    _assert_rate_limited(answers[3], "GraphQL requests for this user", "at most 3 a minute")


async def test_queries_over_get_count_too(api: Api, org: Org, settings: Settings, state: AppState) -> None:
    # given a limit of 2 per user
    token = await api.token(org.admin_email)
    async with serving(_limits(settings, graphql_per_minute=2), state) as client:
        http = client()
        # when the user asks 3 times over GET
        answers = [
            await http.get("/graphql", params={"query": ME}, headers={"authorization": f"Bearer {token}"})
            for _ in range(3)
        ]
    # then
    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    _assert_rate_limited(answers[2])


async def test_mutations_have_a_stricter_limit_than_queries(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given 10 requests a minute per user, of which 2 mutations
    token = await api.token(org.admin_email)
    async with serving(_limits(settings, graphql_per_minute=10, mutations_per_minute=2), state) as client:
        http = client()
        # when the user makes 3 mutations, then a query
        mutations = [await _post(http, MARK_ALL_READ, token) for _ in range(3)]
        query = await _post(http, ME, token)
    # then the third mutation is refused, and queries still go through
    assert [answer.status_code for answer in mutations[:2]] == [200, 200]
    assert mutations[0].json()["data"]["notificationMarkAllRead"]["userErrors"] == []
    _assert_rate_limited(mutations[2], "GraphQL mutations for this user", "at most 2 a minute")
    assert query.status_code == 200
    assert query.json()["data"]["me"]["email"] == org.admin_email


async def test_the_operation_named_is_the_one_counted(api: Api, org: Org, settings: Settings, state: AppState) -> None:
    # given a document holding a query and a mutation, and 1 mutation a minute per user
    token = await api.token(org.admin_email)
    document = f"query Me {ME} mutation Read {MARK_ALL_READ.removeprefix('mutation ')}"
    async with serving(_limits(settings, mutations_per_minute=1), state) as client:
        http = client()

        async def run(name: str) -> httpx.Response:
            body = {"query": document, "operationName": name}
            return await http.post("/graphql", json=body, headers={"authorization": f"Bearer {token}"})

        # when the query is run twice, then the mutation twice
        answers = [await run("Me"), await run("Me"), await run("Read"), await run("Read")]
    # then only the second mutation is refused
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]


async def test_two_users_from_one_address_have_their_own_limits(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given two users and a limit of 2 a minute per user (none per address)
    await api.create_user(org, "viewer@acme.test", "viewer")
    admin, viewer = await api.token(org.admin_email), await api.token("viewer@acme.test")
    async with serving(_limits(settings, graphql_per_minute=2), state) as client:
        http = client()
        # when the admin uses up their limit, from the same address as the viewer
        admins = [await _post(http, ME, admin) for _ in range(3)]
        viewers = [await _post(http, ME, viewer) for _ in range(2)]
    # then the admin is refused and the viewer is not
    assert [answer.status_code for answer in admins] == [200, 200, 429]
    assert [answer.status_code for answer in viewers] == [200, 200]


async def test_unauthenticated_requests_are_limited_by_their_address(settings: Settings, state: AppState) -> None:
    # given a limit of 3 a minute per address (none per user)
    async with serving(_limits(settings, graphql_per_ip_per_minute=3), state) as client:
        first, second = client("10.0.0.1"), client("10.0.0.2")
        # when one address sends 4 requests without a token, and another address one
        answers = [await _post(first, TYPENAME) for _ in range(4)]
        other = await _post(second, TYPENAME)
    # then the 4th of the first address is refused, the other address is not
    assert [answer.status_code for answer in answers[:3]] == [200, 200, 200]
    _assert_rate_limited(answers[3], "GraphQL requests from this address")
    assert other.status_code == 200


async def test_the_address_limit_holds_for_signed_in_users_and_forged_tokens(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given a limit of 2 a minute per address
    token = await api.token(org.admin_email)
    async with serving(_limits(settings, graphql_per_ip_per_minute=2), state) as client:
        http = client("10.0.0.3")
        # when a signed-in request, a request with a token that does not verify, and another signed-in one come
        answers = [
            await _post(http, ME, token),
            await _post(http, ME, "forged.token.value"),
            await _post(http, ME, token),
        ]
    # then the address's limit counted them all
    assert [answer.status_code for answer in answers] == [200, 200, 429]


async def test_logins_count_as_mutations_of_their_address(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    # given 2 mutations a minute per address
    login = "mutation($e: String!, $p: String!) { authLogin(input: {email: $e, password: $p}) { accessToken } }"
    async with serving(_limits(settings, mutations_per_ip_per_minute=2), state) as client:
        http = client("10.0.0.4")
        # when three logins come from it
        answers = [
            await http.post("/graphql", json={"query": login, "variables": {"e": org.admin_email, "p": "wrong-one"}})
            for _ in range(3)
        ]
    # then the third is refused before its password is checked
    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    _assert_rate_limited(answers[2], "GraphQL mutations from this address")


async def test_requests_go_through_when_redis_fails(settings: Settings, state: AppState) -> None:
    # given limits, and a Redis that cannot be reached
    broken = dataclasses.replace(state, redis=redis_client("redis://127.0.0.1:1/0"))
    try:
        async with serving(_limits(settings, graphql_per_ip_per_minute=1), broken) as client:
            http = client()
            # when requests come
            answers = [await _post(http, TYPENAME) for _ in range(3)]
    finally:
        await broken.redis.aclose()
    # then they are answered: the limits protect the service, they do not take it down
    assert [answer.status_code for answer in answers] == [200, 200, 200]


# -- webhooks ----------------------------------------------------------------------------------------------------


async def test_a_webhook_url_past_its_limit_gets_429(settings: Settings, state: AppState) -> None:
    # given 2 callbacks a minute per webhook URL
    async with serving(_limits(settings, webhooks_per_minute=2), state) as client:
        http = client()
        # when one URL gets 3 callbacks and another URL one
        answers = [await http.post("/webhooks/exotel/token-one/sms", data={"x": "1"}) for _ in range(3)]
        other = await http.post("/webhooks/exotel/token-two/sms", data={"x": "1"})
    # then the third is refused with Retry-After, before the webhook looked at it; the other URL is not
    assert all(answer.status_code in UNKNOWN_WEBHOOK for answer in answers[:2])
    assert answers[2].status_code == 429
    retry = int(answers[2].headers["retry-after"])
    assert answers[2].json() == {
        "error": f"Too many callbacks to this webhook URL: at most 2 a minute. Try again in {retry} s.",
        "retryAfter": retry,
    }
    assert other.status_code in UNKNOWN_WEBHOOK


async def test_webhooks_are_limited_per_address(settings: Settings, state: AppState) -> None:
    # given 2 callbacks a minute per address
    async with serving(_limits(settings, webhooks_per_ip_per_minute=2), state) as client:
        first, second = client("10.0.0.5"), client("10.0.0.6")
        # when one address calls three webhook URLs, and another address one
        answers = [await first.post(f"/webhooks/twilio/token-{n}/sms", data={"x": "1"}) for n in range(3)]
        other = await second.post("/webhooks/twilio/token-0/sms", data={"x": "1"})
    # then
    assert all(answer.status_code in UNKNOWN_WEBHOOK for answer in answers[:2])
    assert answers[2].status_code == 429
    assert "from this address" in answers[2].json()["error"]
    assert other.status_code in UNKNOWN_WEBHOOK


# -- the windows ---------------------------------------------------------------------------------------------------


async def test_a_window_has_room_again_once_its_oldest_hit_is_older_than_the_window(state: AppState) -> None:
    # given a window of 1 s holding 2 hits
    key = "banxway:ratelimit:test:slide"
    assert await ratelimit.hit(state.redis, key, 2, 1.0) is None
    await asyncio.sleep(0.3)
    assert await ratelimit.hit(state.redis, key, 2, 1.0) is None
    # when a third comes at once, it waits for the oldest to leave the window (~0.7 s)
    wait = await ratelimit.hit(state.redis, key, 2, 1.0)
    assert wait is not None
    assert 0.3 < wait <= 0.7
    # then once that time has passed there is room for one, not two
    await asyncio.sleep(wait + 0.05)
    assert await ratelimit.hit(state.redis, key, 2, 1.0) is None
    assert await ratelimit.hit(state.redis, key, 2, 1.0) is not None


async def test_a_refused_hit_is_counted_in_no_window(state: AppState) -> None:
    # given a full window and an empty one
    full, roomy = "banxway:ratelimit:test:full", "banxway:ratelimit:test:roomy"
    assert await ratelimit.hit_many(state.redis, {full: 1}, 60) is None
    # when a hit needs both
    limited = await ratelimit.hit_many(state.redis, {full: 1, roomy: 5}, 60)
    # then it is refused, names the full window, and took no room in the other
    assert limited is not None and limited.key == full
    assert 59 < limited.retry_after <= 60
    assert await state.redis.zcard(full) == 1
    assert await state.redis.zcard(roomy) == 0


async def test_concurrent_hits_never_pass_the_limit(state: AppState) -> None:
    # when 50 hits race for a window of 10
    results = await asyncio.gather(
        *(ratelimit.hit(state.redis, "banxway:ratelimit:test:race", 10, 60) for _ in range(50))
    )
    # then exactly 10 were counted
    assert sum(result is None for result in results) == 10
    assert await state.redis.zcard("banxway:ratelimit:test:race") == 10


async def test_take_and_give_back_an_attempt(state: AppState) -> None:
    # given one attempt taken of a limit of 1
    key = "banxway:ratelimit:test:attempts"
    attempt = await ratelimit.take(state.redis, key, 1, 60)
    assert attempt is not None
    assert await ratelimit.take(state.redis, key, 1, 60) is None
    # when it is given back, then there is room again
    await ratelimit.give_back(state.redis, key, attempt)
    assert await ratelimit.take(state.redis, key, 1, 60) is not None


@pytest.mark.parametrize("window", [0, -1])
async def test_a_window_must_be_positive(state: AppState, window: float) -> None:
    with pytest.raises(ValueError, match="window_seconds must be positive"):
        await ratelimit.hit(state.redis, "banxway:ratelimit:test:bad", 1, window)


# -- settings ------------------------------------------------------------------------------------------------------


def test_a_negative_limit_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANXWAY_RATE_LIMIT_MUTATIONS_PER_MINUTE", "-5")
    with pytest.raises(SettingsError, match="BANXWAY_RATE_LIMIT_MUTATIONS_PER_MINUTE"):
        load_settings()


def test_the_default_limits_are_on_and_mutations_are_stricter(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the suite's conftest raises them; a deployment gets these)
    for name in NO_LIMITS:
        monkeypatch.delenv(Settings.model_fields[name].alias or "", raising=False)
    defaults = load_settings()
    assert (defaults.rate_limit_graphql_per_minute, defaults.rate_limit_graphql_per_ip_per_minute) == (600, 1200)
    assert 0 < defaults.rate_limit_mutations_per_minute < defaults.rate_limit_graphql_per_minute
    assert 0 < defaults.rate_limit_mutations_per_ip_per_minute < defaults.rate_limit_graphql_per_ip_per_minute
    assert defaults.rate_limit_webhooks_per_minute > 0 and defaults.rate_limit_webhooks_per_ip_per_minute > 0


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_operations_count_in_the_users_windows(
    settings: Settings, state: AppState, api: Api, org: Org, protocol: str
) -> None:
    """An operation sent over a WebSocket counts in the same windows as the user's HTTP requests: the socket
    is no way around the limits. Over one, that operation gets an `error` with RATE_LIMITED; the socket stays."""
    from tests.live_helpers import GraphQLSocket, uvicorn_server

    limited = _limits(settings, graphql_per_minute=3, mutations_per_minute=1)
    limited_state = dataclasses.replace(state, settings=limited)
    token = await api.token(org.admin_email)
    async with uvicorn_server(limited, limited_state) as url:
        async with httpx.AsyncClient(base_url=url.replace("ws://", "http://").removesuffix("/graphql")) as http:
            assert (await _post(http, ME, token)).status_code == 200  # 1 of 3, over HTTP
        async with GraphQLSocket.open(url, protocol) as socket:
            await socket.init(token)
            await socket.subscribe("1", ME)  # 2 of 3
            assert (await socket.next())[1] == {"email": org.admin_email}
            assert (await socket.receive())["type"] == "complete"
            await socket.subscribe("2", MARK_ALL_READ)  # 3 of 3, and the one mutation
            assert (await socket.next())[1] == {"userErrors": []}
            assert (await socket.receive())["type"] == "complete"
            await socket.subscribe("3", ME)  # 4: refused
            refused = await socket.receive()
            assert refused["type"] == "error" and refused["id"] == "3", refused
            error = refused["payload"][0] if isinstance(refused["payload"], list) else refused["payload"]
            assert error["extensions"]["code"] == "RATE_LIMITED" and 1 <= error["extensions"]["retryAfter"] <= 60
            assert "at most 3 a minute" in error["message"]


async def test_a_mutation_sent_as_a_persisted_hash_counts_as_a_mutation(
    settings: Settings, state: AppState, api: Api, org: Org
) -> None:
    """Apollo's automatic persisted queries send a known operation as its hash alone: the limiter looks the text up
    (the APQ store) to count a mutation as one, else a hash would be a way around the mutations' limit."""
    import hashlib

    token = await api.token(org.admin_email)
    digest = hashlib.sha256(MARK_ALL_READ.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    async with serving(_limits(settings, mutations_per_minute=1), state) as client:
        http = client()
        headers = {"authorization": f"Bearer {token}"}
        first = await http.post("/graphql", json={"query": MARK_ALL_READ, "extensions": extensions}, headers=headers)
        assert first.status_code == 200 and "errors" not in first.json(), first.text  # registered, and counted
        by_hash = await http.post("/graphql", json={"extensions": extensions}, headers=headers)
        _assert_rate_limited(by_hash, "mutations", "for this user")
