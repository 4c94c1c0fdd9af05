"""Personal API tokens (issue 18): named tokens for scripts and agents, shown once and stored hashed, whose scopes
bound what they may do within their user's role; revocable, at once, on HTTP and on open WebSockets."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, update

from banxway.auth import scope_matrix_markdown
from banxway.db.models import ApiToken
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, _foreign, _member, configure_channels
from tests.live_helpers import (
    INBOX_EVENTS,
    LEGACY_WS,
    TRANSPORT_WS,
    GraphQLSocket,
    ServerClosed,
    create_thread,
    local_uuid,
    send_message,
    uvicorn_server,
    wait_subscribed,
)

CREATE = """
mutation($input: ApiTokenCreateInput!) {
  apiTokenCreate(input: $input) {
    secret
    apiToken { id name prefix scopes createdAt expiresAt lastUsedAt revokedAt user { email } }
    userErrors { field code message }
  }
}
"""
REVOKE = """
mutation($id: ID!) {
  apiTokenRevoke(input: {id: $id}) { apiToken { id revokedAt } userErrors { field code message } }
}
"""
TOKENS = """
query($all: Boolean! = false) {
  apiTokens(all: $all) { totalCount edges { node { id name prefix scopes lastUsedAt revokedAt user { email } } } }
}
"""
ME = "{ me { email role } }"
THREADS = "{ threads(first: 5) { totalCount edges { node { id subject } } } }"
NOTE = """
mutation($t: ID!) { noteAdd(input: {threadId: $t, body: "from a script"}) { note { id } userErrors { code } } }
"""
SEND = """
mutation($input: MessageSendInput!) { messageSend(input: $input) { message { id status } userErrors { code message } } }
"""
USER_CREATE = """
mutation { userCreate(input: {email: "new@acme.test", name: "New", role: ADMIN, password: "a-long-password"}) {
  user { id } userErrors { code } } }
"""
USER_UPDATE = """
mutation($id: ID!, $active: Boolean, $password: String) {
  userUpdate(input: {id: $id, active: $active, password: $password}) { userErrors { code message } }
}
"""


async def _create(api: Api, token: str, name: str = "nightly sync", scopes: list[str] | None = None, **extra) -> dict:
    """The apiTokenCreate payload (which must have succeeded)."""
    result = await api.gql(CREATE, {"input": {"name": name, "scopes": scopes or ["READ"], **extra}}, token=token)
    assert "errors" not in result, result
    payload = result["data"]["apiTokenCreate"]
    assert payload["userErrors"] == [], payload
    return payload


def _code(result: dict) -> str:
    return result["errors"][0]["extensions"]["code"]


async def _row(state: AppState, token_id: str) -> ApiToken:
    async with system_session(state.sessionmaker) as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.id == local_uuid(token_id)))
        assert row is not None
        return row


async def _set(state: AppState, token_id: str, **values: object) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(ApiToken).where(ApiToken.id == local_uuid(token_id)).values(**values))


# -- create, show once, use --------------------------------------------------------------------------------------


async def test_a_token_is_shown_once_stored_hashed_and_works_as_a_bearer_token(
    api: Api, inbox: Inbox, state: AppState
) -> None:
    # when an admin creates a token
    before = datetime.now(UTC)
    payload = await _create(api, inbox.token, "tracking sync", ["READ", "WRITE"])
    secret, token = payload["secret"], payload["apiToken"]
    # then the secret is given, with its prefix and the token's details
    assert secret.startswith("bxp_") and len(secret) >= 40
    assert token["prefix"] == secret[:12] and token["name"] == "tracking sync"
    assert token["scopes"] == ["READ", "WRITE"] and token["user"]["email"] == inbox.org.admin_email
    assert token["revokedAt"] is None and token["lastUsedAt"] is None
    expires = datetime.fromisoformat(token["expiresAt"])
    assert before + timedelta(days=89) < expires < datetime.now(UTC) + timedelta(days=91)  # the default: 90 days
    # and only its hash is stored
    row = await _row(api.state, token["id"])
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in orjson.dumps([str(getattr(row, c.key)) for c in ApiToken.__table__.columns]).decode()
    # and it is never shown again
    listed = await api.gql(TOKENS, token=inbox.token)
    assert listed["data"]["apiTokens"]["totalCount"] == 1
    assert secret not in orjson.dumps(listed).decode()
    # and it works as `Authorization: Bearer` like an access token
    me = await api.gql(ME, token=secret)
    assert me == {"data": {"me": {"email": inbox.org.admin_email, "role": "ADMIN"}}}
    thread = await inbox.thread("Read by a script")
    threads = await api.gql(THREADS, token=secret)
    assert threads["data"]["threads"]["edges"][0]["node"]["id"] == thread["id"]


async def test_an_unknown_or_malformed_api_token_is_unauthenticated(api: Api, inbox: Inbox) -> None:
    await _create(api, inbox.token)
    for bad in ("bxp_" + "x" * 43, "bxp_", "bxp_not-a-token"):
        result = await api.gql(ME, token=bad)
        assert _code(result) == "UNAUTHENTICATED", result
    download = await api.http.get("/attachments/nothing", headers={"authorization": "Bearer bxp_nothing"})
    assert download.status_code == 401


async def test_create_validates_its_input(api: Api, inbox: Inbox) -> None:
    viewer = await _member(inbox, "viewer")
    now = datetime.now(UTC)
    cases = [
        (inbox.token, {"name": " ", "scopes": ["READ"]}, ("INVALID", ["name"])),
        (inbox.token, {"name": "n" * 101, "scopes": ["READ"]}, ("TOO_LONG", ["name"])),
        (inbox.token, {"name": "none", "scopes": []}, ("INVALID", ["scopes"])),
        (viewer.token, {"name": "viewer writes", "scopes": ["READ", "WRITE"]}, ("INVALID", ["scopes", "1"])),
        (inbox.token, {"name": "past", "scopes": ["READ"], "expiresAt": now.isoformat()}, ("INVALID", ["expiresAt"])),
        (
            inbox.token,
            {"name": "forever", "scopes": ["READ"], "expiresAt": (now + timedelta(days=400)).isoformat()},
            ("INVALID", ["expiresAt"]),
        ),
    ]
    for token, values, expected in cases:
        result = await api.gql(CREATE, {"input": values}, token=token)
        errors = result["data"]["apiTokenCreate"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [expected], (values, result)
        assert result["data"]["apiTokenCreate"]["secret"] is None
    # an expiry of one's own choosing within the year is kept
    chosen = (now + timedelta(days=7)).replace(microsecond=0)
    payload = await _create(api, inbox.token, "a week", ["READ"], expiresAt=chosen.isoformat())
    assert datetime.fromisoformat(payload["apiToken"]["expiresAt"]) == chosen
    # a scope asked for twice counts once
    payload = await _create(api, inbox.token, "twice", ["WRITE", "READ", "WRITE"])
    assert payload["apiToken"]["scopes"] == ["READ", "WRITE"]


async def test_an_api_token_cannot_create_or_revoke_tokens(api: Api, inbox: Inbox) -> None:
    secret = (await _create(api, inbox.token, "agent", ["READ", "WRITE", "SEND"]))["secret"]
    own = (await _create(api, inbox.token, "other"))["apiToken"]
    created = await api.gql(CREATE, {"input": {"name": "wider", "scopes": ["READ"]}}, token=secret)
    assert _code(created) == "FORBIDDEN"
    revoked = await api.gql(REVOKE, {"id": own["id"]}, token=secret)
    assert _code(revoked) == "FORBIDDEN"
    assert (await api.gql(TOKENS, token=inbox.token))["data"]["apiTokens"]["totalCount"] == 2


# -- who sees and revokes which --------------------------------------------------------------------------------


async def test_users_list_their_own_tokens_and_an_admin_every_one(api: Api, inbox: Inbox) -> None:
    # given tokens of an admin and of a support user
    support = await _member(inbox, "support")
    await _create(api, inbox.token, "admin's")
    await _create(api, support.token, "support's first")
    await _create(api, support.token, "support's second", ["READ", "WRITE"])
    # then each user lists their own, newest first
    mine = (await api.gql(TOKENS, token=support.token))["data"]["apiTokens"]
    assert [e["node"]["name"] for e in mine["edges"]] == ["support's second", "support's first"]
    assert (await api.gql(TOKENS, token=inbox.token))["data"]["apiTokens"]["totalCount"] == 1
    # and only an admin lists everyone's
    assert _code(await api.gql(TOKENS, {"all": True}, token=support.token)) == "FORBIDDEN"
    everyone = (await api.gql(TOKENS, {"all": True}, token=inbox.token))["data"]["apiTokens"]
    assert sorted((e["node"]["user"]["email"], e["node"]["name"]) for e in everyone["edges"]) == [
        ("admin@acme.test", "admin's"),
        ("support@acme.test", "support's first"),
        ("support@acme.test", "support's second"),
    ]


async def test_a_revoked_token_is_refused_at_once(api: Api, inbox: Inbox) -> None:
    # given a token in use
    payload = await _create(api, inbox.token, "to revoke")
    secret, token_id = payload["secret"], payload["apiToken"]["id"]
    assert (await api.gql(ME, token=secret))["data"]["me"]["email"] == inbox.org.admin_email
    # when its user revokes it
    revoked = await api.gql(REVOKE, {"id": token_id}, token=inbox.token)
    assert revoked["data"]["apiTokenRevoke"]["userErrors"] == []
    revoked_at = revoked["data"]["apiTokenRevoke"]["apiToken"]["revokedAt"]
    assert revoked_at is not None
    # then the very next request with it is UNAUTHENTICATED, and says why
    refused = await api.gql(ME, token=secret)
    assert _code(refused) == "UNAUTHENTICATED" and "revoked" in refused["errors"][0]["message"]
    assert refused["data"] is None
    # and revoking it again changes nothing
    again = await api.gql(REVOKE, {"id": token_id}, token=inbox.token)
    assert again["data"]["apiTokenRevoke"]["apiToken"]["revokedAt"] == revoked_at


async def test_only_its_user_or_an_admin_revokes_a_token(api: Api, inbox: Inbox) -> None:
    support = await _member(inbox, "support")
    manager = await _member(inbox, "manager")
    theirs = await _create(api, support.token, "support's")
    admins = await _create(api, inbox.token, "admin's")
    # another user (a manager, even) finds no such token
    for token_id in (theirs["apiToken"]["id"], admins["apiToken"]["id"]):
        denied = await api.gql(REVOKE, {"id": token_id}, token=manager.token)
        assert [(e["code"], e["field"]) for e in denied["data"]["apiTokenRevoke"]["userErrors"]] == [
            ("NOT_FOUND", ["id"])
        ]
    assert (await api.gql(ME, token=theirs["secret"]))["data"]["me"]["email"] == support.email
    # an admin revokes anyone's
    done = await api.gql(REVOKE, {"id": theirs["apiToken"]["id"]}, token=inbox.token)
    assert done["data"]["apiTokenRevoke"]["userErrors"] == []
    assert _code(await api.gql(ME, token=theirs["secret"])) == "UNAUTHENTICATED"


async def test_another_organizations_token_is_not_found(api: Api, inbox: Inbox) -> None:
    # given a token of another organization's admin
    globex = await _foreign(inbox)
    theirs = await _create(api, globex.token, "globex script")
    # when our admin tries to revoke it, or lists every token
    result = await api.gql(REVOKE, {"id": theirs["apiToken"]["id"]}, token=inbox.token)
    # then it is not found, and not listed, and it keeps working for them
    assert [(e["code"], e["field"]) for e in result["data"]["apiTokenRevoke"]["userErrors"]] == [("NOT_FOUND", ["id"])]
    assert result["data"]["apiTokenRevoke"]["apiToken"] is None
    assert (await api.gql(TOKENS, {"all": True}, token=inbox.token))["data"]["apiTokens"]["totalCount"] == 0
    assert (await api.gql(ME, token=theirs["secret"]))["data"]["me"]["email"] == globex.org.admin_email
    # and with their token, our objects are as absent as missing ones
    thread = await inbox.thread("Acme only")
    found = await api.gql("query($id: ID!) { thread(id: $id) { id } }", {"id": thread["id"]}, token=theirs["secret"])
    assert found == {"data": {"thread": None}}


async def test_an_expired_token_is_refused(api: Api, inbox: Inbox) -> None:
    payload = await _create(api, inbox.token, "short-lived")
    await _set(api.state, payload["apiToken"]["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    refused = await api.gql(ME, token=payload["secret"])
    assert _code(refused) == "UNAUTHENTICATED" and "expired" in refused["errors"][0]["message"]


async def test_deactivation_revokes_a_users_tokens_and_a_new_password_does_not(api: Api, inbox: Inbox) -> None:
    # given a support user's token
    support = await _member(inbox, "support")
    secret = (await _create(api, support.token, "script"))["secret"]
    # when an admin gives them a new password: the token keeps working (their access tokens do not)
    changed = await api.gql(USER_UPDATE, {"id": support.id, "password": "another-password-1"}, token=inbox.token)
    assert changed["data"]["userUpdate"]["userErrors"] == []
    assert _code(await api.gql(ME, token=support.token)) == "UNAUTHENTICATED"
    assert (await api.gql(ME, token=secret))["data"]["me"]["email"] == support.email
    # when the admin deactivates them: refused at once
    changed = await api.gql(USER_UPDATE, {"id": support.id, "active": False}, token=inbox.token)
    assert changed["data"]["userUpdate"]["userErrors"] == []
    assert _code(await api.gql(ME, token=secret)) == "UNAUTHENTICATED"
    # and revoked for good: reactivating the user does not bring the token back
    changed = await api.gql(USER_UPDATE, {"id": support.id, "active": True}, token=inbox.token)
    assert changed["data"]["userUpdate"]["userErrors"] == []
    assert _code(await api.gql(ME, token=secret)) == "UNAUTHENTICATED"
    everyone = (await api.gql(TOKENS, {"all": True}, token=inbox.token))["data"]["apiTokens"]["edges"]
    assert everyone[0]["node"]["revokedAt"] is not None


async def test_a_deactivated_users_token_is_refused_even_before_it_is_revoked(api: Api, inbox: Inbox) -> None:
    """The lookup reads the user too: a user deactivated by any path (not only userUpdate) is refused."""
    from banxway.db.models import User

    support = await _member(inbox, "support")
    secret = (await _create(api, support.token, "script"))["secret"]
    async with system_session(api.state.sessionmaker) as session, session.begin():
        await session.execute(update(User).where(User.id == local_uuid(support.id)).values(active=False))
    refused = await api.gql(ME, token=secret)
    assert _code(refused) == "UNAUTHENTICATED" and "deactivated" in refused["errors"][0]["message"]


# -- scopes: the role's permissions, within the token's scopes ------------------------------------------------


async def test_a_read_token_queries_but_cannot_write(api: Api, inbox: Inbox) -> None:
    thread = await inbox.thread("Read only")
    secret = (await _create(api, inbox.token, "reader", ["READ"]))["secret"]
    threads = await api.gql(THREADS, token=secret)
    assert threads["data"]["threads"]["totalCount"] == 1
    refused = await api.gql(NOTE, {"t": thread["id"]}, token=secret)
    assert _code(refused) == "FORBIDDEN" and "API token" in refused["errors"][0]["message"]
    created = await api.gql('mutation { threadCreate(input: {subject: "x"}) { thread { id } } }', token=secret)
    assert _code(created) == "FORBIDDEN"
    assert (await api.gql(THREADS, token=inbox.token))["data"]["threads"]["totalCount"] == 1


async def test_a_token_without_read_cannot_query_even_where_a_session_compiled_the_query(
    api: Api, inbox: Inbox
) -> None:
    """The compiled path keeps its plans per role and scopes: a plan compiled for a session is not a way round."""
    await inbox.thread("Compiled")
    writer = (await _create(api, inbox.token, "writer", ["WRITE"]))["secret"]
    for _ in range(2):  # compiled, then cached
        assert (await api.gql(THREADS, token=inbox.token))["data"]["threads"]["totalCount"] == 1
    refused = await api.gql(THREADS, token=writer)
    assert _code(refused) == "FORBIDDEN", refused
    # while what WRITE allows works
    thread = await inbox.thread("Noted")
    noted = await api.gql(NOTE, {"t": thread["id"]}, token=writer)
    assert noted["data"]["noteAdd"]["userErrors"] == [], noted


async def test_a_write_token_never_does_more_than_its_users_role(api: Api, inbox: Inbox) -> None:
    support = await _member(inbox, "support")
    secret = (await _create(api, support.token, "support writer", ["READ", "WRITE"]))["secret"]
    # what SUPPORT may do, the token may
    thread = await inbox.thread("Support works on it")
    noted = await api.gql(NOTE, {"t": thread["id"]}, token=secret)
    assert noted["data"]["noteAdd"]["userErrors"] == [], noted
    # what SUPPORT may not, the token may not either
    refused = await api.gql(USER_CREATE, token=secret)
    assert _code(refused) == "FORBIDDEN" and "Role SUPPORT" in refused["errors"][0]["message"]
    assert (await api.login("new@acme.test", "a-long-password"))["accessToken"] is None


async def test_sending_to_customers_needs_the_send_scope(api: Api, inbox: Inbox) -> None:
    # given a thread with a customer's email address, and email configured
    await configure_channels(inbox, "EMAIL")
    contact = await inbox.contact("Priya", identities=[{"channel": "EMAIL", "address": "priya@customer.example"}])
    thread = await inbox.thread("Quote", contactId=contact["id"])
    writer = (await _create(api, inbox.token, "writer", ["READ", "WRITE"]))["secret"]
    sender = (await _create(api, inbox.token, "sender", ["READ", "WRITE", "SEND"]))["secret"]
    email = {"threadId": thread["id"], "channel": "EMAIL", "body": "Your quote"}
    internal = {"threadId": thread["id"], "channel": "INTERNAL", "body": "Checked the rates"}
    # a WRITE token writes internal messages (notes to colleagues) but sends nothing to a customer
    written = await api.gql(SEND, {"input": internal}, token=writer)
    assert written["data"]["messageSend"]["userErrors"] == [], written
    refused = await api.gql(SEND, {"input": email}, token=writer)
    assert _code(refused) == "FORBIDDEN" and "send messages to customers" in refused["errors"][0]["message"]
    call = await api.gql(
        'mutation($t: ID!) { callStart(input: {threadId: $t, agentNumber: "+912250009999"}) { userErrors { code } } }',
        {"t": thread["id"]},
        token=writer,
    )
    assert _code(call) == "FORBIDDEN", call
    # with SEND it does
    sent = await api.gql(SEND, {"input": email}, token=sender)
    assert sent["data"]["messageSend"]["userErrors"] == [], sent
    assert sent["data"]["messageSend"]["message"]["status"] == "QUEUED"


def test_the_readme_scope_table_is_the_one_the_code_enforces() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- api-token-scopes:start -->") + len("<!-- api-token-scopes:start -->")
    assert readme[start : readme.index("<!-- api-token-scopes:end -->")].strip() == scope_matrix_markdown()


# -- last use -------------------------------------------------------------------------------------------------


async def test_last_used_at_is_set_and_written_at_most_once_a_minute(api: Api, inbox: Inbox) -> None:
    payload = await _create(api, inbox.token)
    secret, token_id = payload["secret"], payload["apiToken"]["id"]
    assert (await _row(api.state, token_id)).last_used_at is None
    # when the token is used, its last use is set
    await api.gql(ME, token=secret)
    first = (await _row(api.state, token_id)).last_used_at
    assert first is not None and datetime.now(UTC) - first < timedelta(seconds=30)
    listed = (await api.gql(TOKENS, token=inbox.token))["data"]["apiTokens"]["edges"][0]["node"]
    assert datetime.fromisoformat(listed["lastUsedAt"]) == first
    # and uses within the minute write nothing
    for _ in range(3):
        await api.gql(ME, token=secret)
    assert (await _row(api.state, token_id)).last_used_at == first
    # once it is older than a minute, the next use moves it on
    await _set(api.state, token_id, last_used_at=datetime.now(UTC) - timedelta(minutes=2))
    await api.gql(ME, token=secret)
    assert (await _row(api.state, token_id)).last_used_at > first - timedelta(seconds=1)
    assert datetime.now(UTC) - (await _row(api.state, token_id)).last_used_at < timedelta(seconds=30)


# -- rate limits ------------------------------------------------------------------------------------------------


async def test_a_tokens_requests_count_in_its_users_rate_limit(
    api: Api, org: Org, settings: Settings, state: AppState
) -> None:
    from tests.test_rate_limits import _assert_rate_limited, _limits, _post, serving

    admin = await api.token(org.admin_email)
    secret = (await _create(api, admin))["secret"]
    async for key in state.redis.scan_iter("banxway:ratelimit:*"):  # (the calls above counted, under no limit)
        await state.redis.delete(key)
    async with serving(_limits(settings, graphql_per_minute=3), state) as client:
        http = client()
        answers = [await _post(http, ME, admin), await _post(http, ME, secret), await _post(http, ME, admin)]
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        # the user's 4th request of the minute, with the API token, is over the user's limit
        _assert_rate_limited(await _post(http, ME, secret), "GraphQL requests for this user")
        # while another user is not limited
        await api.create_user(org, "other@acme.test", "viewer")
        other = await api.token("other@acme.test")
        assert (await _post(client("10.0.0.2"), ME, other)).status_code == 200


# -- WebSockets -------------------------------------------------------------------------------------------------


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org):
    async with uvicorn_server(settings, state) as url:
        yield url


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_subscription_with_a_token_ends_when_the_token_is_revoked(
    server: str, api: Api, org: Org, protocol: str
) -> None:
    # given a subscription opened with an API token, and another socket for operations
    admin = await api.token(org.admin_email)
    payload = await _create(api, admin, "live agent", ["READ", "WRITE"])
    secret = payload["secret"]
    thread = await create_thread(api, admin, "Live with a token")
    async with GraphQLSocket.open(server, protocol) as listening, GraphQLSocket.open(server, protocol) as working:
        await listening.init(secret)
        await working.init(secret)
        await listening.subscribe("events", INBOX_EVENTS)
        await wait_subscribed(api.state, org.id, 1)
        # it receives events like any subscriber
        await send_message(api, admin, thread["id"], "before the revocation")
        _, event = await listening.next()
        assert event["message"]["body"] == "before the revocation"
        # and the other socket runs operations with it
        await working.subscribe("1", ME)
        message = await working.receive()
        assert message["payload"]["data"]["me"]["email"] == org.admin_email
        assert (await working.receive())["type"] == "complete"
        # when the token is revoked over HTTP
        revoked = await api.gql(REVOKE, {"id": payload["apiToken"]["id"]}, token=admin)
        assert revoked["data"]["apiTokenRevoke"]["userErrors"] == []
        # then the subscription ends at the next event, with UNAUTHENTICATED
        await asyncio.sleep(1.1)  # the channel re-reads its subscribers' tokens at most once a second
        await send_message(api, admin, thread["id"], "after the revocation")
        ended = await listening.receive()
        while ended["type"] in ("next", "data") and "errors" not in ended["payload"]:
            assert ended["payload"]["data"]["inboxEvents"]["message"]["body"] != "after the revocation", ended
            ended = await listening.receive()
        errors = ended["payload"]["errors"] if "errors" in ended["payload"] else ended["payload"]
        errors = errors if isinstance(errors, list) else [errors]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED", ended
        # and the other socket's next operation ends its connection with 4403
        await working.subscribe("2", ME)
        with pytest.raises(ServerClosed) as closed:
            await working.receive()
    assert closed.value.code == 4403 and "revoked" in closed.value.reason


async def test_a_websocket_with_a_revoked_or_unknown_token_is_refused(server: str, api: Api, org: Org) -> None:
    admin = await api.token(org.admin_email)
    payload = await _create(api, admin)
    await api.gql(REVOKE, {"id": payload["apiToken"]["id"]}, token=admin)
    for token in (payload["secret"], "bxp_unknown"):
        async with GraphQLSocket.open(server) as socket:
            await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
            code, _ = await socket.close_code()
        assert code == 4403


async def test_a_read_token_subscribes_over_a_websocket_but_cannot_write_there(
    server: str, api: Api, inbox: Inbox
) -> None:
    thread = await inbox.thread("Socket reader")
    secret = (await _create(api, inbox.token, "socket reader", ["READ"]))["secret"]
    async with GraphQLSocket.open(server) as socket:
        await socket.init(secret)
        await socket.subscribe("1", NOTE, {"t": thread["id"]})
        answer = await socket.receive()
        assert answer["type"] == "next" and answer["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_downloads_take_a_token_too(api: Api, inbox: Inbox) -> None:
    uploaded = await api.http.post(
        "/attachments?filename=invoice.pdf",
        content=b"%PDF invoice",
        headers={"authorization": f"Bearer {inbox.token}", "content-type": "application/pdf"},
    )
    assert uploaded.status_code == 201, uploaded.text
    reader = (await _create(api, inbox.token, "reader", ["READ"]))["secret"]
    download = await api.http.get(
        f"/attachments/{uploaded.json()['id']}", headers={"authorization": f"Bearer {reader}"}
    )
    assert download.status_code == 200 and download.content == b"%PDF invoice"
    # an upload is a send: READ alone may not
    refused = await api.http.post(
        "/attachments?filename=more.pdf",
        content=b"%PDF more",
        headers={"authorization": f"Bearer {reader}", "content-type": "application/pdf"},
    )
    assert refused.status_code == 403, refused.text
