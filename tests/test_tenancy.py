"""Isolation between organizations: lists, node(s) lookups, updates, counts, and the session scope."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, func, select, update
from strawberry.relay import GlobalID

from banxway.db.models import RefreshToken, User
from banxway.db.session import UnscopedQueryError, system_session, tenant_session
from banxway.enums import Role
from tests.conftest import PASSWORD, Api, Org

USERS = "{ users(first: 100) { totalCount edges { node { id email } } } }"
USERS_PAGE = """
query($after: String) { users(first: 1, after: $after) { edges { node { email } } pageInfo { endCursor hasNextPage } } }
"""
FIRST_USER = "{ users(first: 1) { totalCount pageInfo { hasNextPage } } }"
USERS_WITH_ORGANIZATION = "{ users { edges { node { email organization { slug } } } } }"
ME_IDS = "{ me { id email organization { id slug } } }"

NODE = """
query($id: ID!) {
  node(id: $id) { __typename id ... on User { email } ... on Organization { slug } }
}
"""

NODES = """
query($ids: [ID!]!) {
  nodes(ids: $ids) { __typename id ... on User { email } ... on Organization { slug } }
}
"""

USER_UPDATE = """
mutation($id: ID!, $name: String, $role: Role, $active: Boolean, $password: String) {
  userUpdate(input: {id: $id, name: $name, role: $role, active: $active, password: $password}) {
    user { id name role active } userErrors { field message code }
  }
}
"""

LOGIN_TO_GLOBEX = """
mutation($email: String!, $password: String!) {
  authLogin(input: {email: $email, password: $password, organization: "globex"}) { accessToken }
}
"""

USER_CREATE = """
mutation($email: String!) {
  userCreate(input: {email: $email, name: "Someone", role: VIEWER, password: "long-enough-password"}) {
    user { email } userErrors { field code }
  }
}
"""


@pytest.fixture
async def globex(api: Api, org: Org) -> Org:
    """A second organization, with two users of its own besides its admin."""
    other = await api.create_org("globex")
    await api.create_user(other, "hank@globex.test", "support")
    await api.create_user(other, "frank@globex.test", "admin")
    return other


async def _ids(api: Api, token: str) -> dict[str, str]:
    """email → global id of every user the token's viewer sees."""
    result = await api.gql(USERS, token=token)
    return {edge["node"]["email"]: edge["node"]["id"] for edge in result["data"]["users"]["edges"]}


async def _stored(api: Api, email: str, org: Org) -> User:
    async with system_session(api.state.sessionmaker) as session:
        user = await session.scalar(select(User).where(User.email == email, User.organization_id == org.id))
    assert user is not None
    return user


# -- lists and counts ---------------------------------------------------------------


async def test_users_lists_only_own_users(api: Api, org: Org, globex: Org) -> None:
    # given
    await api.create_user(org, "ann@acme.test", "viewer")
    acme = await api.token(org.admin_email)
    other = await api.token(globex.admin_email)
    # when
    acme_users = await api.gql(USERS, token=acme)
    globex_users = await api.gql(USERS, token=other)
    # then
    assert {e["node"]["email"] for e in acme_users["data"]["users"]["edges"]} == {org.admin_email, "ann@acme.test"}
    assert {e["node"]["email"] for e in globex_users["data"]["users"]["edges"]} == {
        globex.admin_email,
        "hank@globex.test",
        "frank@globex.test",
    }


async def test_total_count_counts_only_own_users(api: Api, org: Org, globex: Org) -> None:
    # given: acme has 2 users, globex 3
    await api.create_user(org, "ann@acme.test", "viewer")
    acme = await api.token(org.admin_email)
    other = await api.token(globex.admin_email)
    # when
    acme_users = (await api.gql(USERS, token=acme))["data"]["users"]
    globex_users = (await api.gql(USERS, token=other))["data"]["users"]
    first_page = (await api.gql(FIRST_USER, token=acme))["data"]
    # then
    assert acme_users["totalCount"] == 2
    assert globex_users["totalCount"] == 3
    assert first_page == {"users": {"totalCount": 2, "pageInfo": {"hasNextPage": True}}}


async def test_pages_stay_inside_the_organization(api: Api, org: Org, globex: Org) -> None:
    # given
    await api.create_user(org, "ann@acme.test", "viewer")
    acme = await api.token(org.admin_email)
    # when walking every page
    seen, after = [], None
    while True:
        users = (await api.gql(USERS_PAGE, {"after": after}, token=acme))["data"]["users"]
        seen += [edge["node"]["email"] for edge in users["edges"]]
        if not users["pageInfo"]["hasNextPage"]:
            break
        after = users["pageInfo"]["endCursor"]
    # then
    assert sorted(seen) == sorted([org.admin_email, "ann@acme.test"])


# -- node and nodes -----------------------------------------------------------------


async def test_node_resolves_own_user_and_organization(api: Api, org: Org, globex: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    me = (await api.gql(ME_IDS, token=token))["data"]["me"]
    # when
    user = await api.gql(NODE, {"id": me["id"]}, token=token)
    organization = await api.gql(NODE, {"id": me["organization"]["id"]}, token=token)
    # then
    assert user == {"data": {"node": {"__typename": "User", "id": me["id"], "email": org.admin_email}}}
    assert organization == {
        "data": {"node": {"__typename": "Organization", "id": me["organization"]["id"], "slug": "acme"}}
    }
    assert GlobalID.from_id(me["id"]) == GlobalID("User", str((await _stored(api, org.admin_email, org)).id))


async def test_node_of_a_foreign_user_is_null_like_a_missing_one(api: Api, org: Org, globex: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    foreign = (await _ids(api, await api.token(globex.admin_email)))["hank@globex.test"]
    missing = str(GlobalID("User", str(uuid.uuid4())))
    # when
    answers = [await api.gql(NODE, {"id": node_id}, token=token) for node_id in (foreign, missing, "garbage")]
    # then: the same answer for each, with no error
    assert answers == [{"data": {"node": None}}] * 3


async def test_node_of_a_foreign_organization_is_null(api: Api, org: Org, globex: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    foreign = (await api.gql(ME_IDS, token=await api.token(globex.admin_email)))["data"]["me"]["organization"]["id"]
    # when
    result = await api.gql(NODE, {"id": foreign}, token=token)
    # then
    assert result == {"data": {"node": None}}


async def test_nodes_returns_null_in_foreign_and_unknown_positions(api: Api, org: Org, globex: Org) -> None:
    # given
    await api.create_user(org, "ann@acme.test", "viewer")
    token = await api.token(org.admin_email)
    own = await _ids(api, token)
    foreign = await _ids(api, await api.token(globex.admin_email))
    ids = [
        own["ann@acme.test"],
        foreign["hank@globex.test"],
        str(GlobalID("User", str(uuid.uuid4()))),
        own[org.admin_email],
        "garbage",
        foreign[globex.admin_email],
    ]
    # when
    result = await api.gql(NODES, {"ids": ids}, token=token)
    # then
    assert result == {
        "data": {
            "nodes": [
                {"__typename": "User", "id": own["ann@acme.test"], "email": "ann@acme.test"},
                None,
                None,
                {"__typename": "User", "id": own[org.admin_email], "email": org.admin_email},
                None,
                None,
            ]
        }
    }


async def test_node_needs_a_token(api: Api, org: Org) -> None:
    token = await api.token(org.admin_email)
    me = (await api.gql(ME_IDS, token=token))["data"]["me"]
    result = await api.gql(NODE, {"id": me["id"]})
    assert result["data"] == {"node": None}
    assert result["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_a_users_organization_is_their_own(api: Api, org: Org, globex: Org) -> None:
    token = await api.token(globex.admin_email)
    result = await api.gql(USERS_WITH_ORGANIZATION, token=token)
    assert {edge["node"]["organization"]["slug"] for edge in result["data"]["users"]["edges"]} == {"globex"}


# -- writes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"name": "Hijacked"}, {"role": "VIEWER"}, {"active": False}, {"password": "hijacked-password"}],
    ids=["name", "role", "active", "password"],
)
async def test_update_of_a_foreign_user_is_not_found_and_changes_nothing(
    api: Api, org: Org, globex: Org, change: dict
) -> None:
    # given
    token = await api.token(org.admin_email)
    foreign = (await _ids(api, await api.token(globex.admin_email)))["frank@globex.test"]
    before = await _stored(api, "frank@globex.test", globex)
    # when
    result = await api.gql(USER_UPDATE, {"id": foreign, **change}, token=token)
    # then: the same answer as for an id that does not exist
    assert result["data"]["userUpdate"] == {
        "user": None,
        "userErrors": [{"field": ["id"], "message": "No such user.", "code": "NOT_FOUND"}],
    }
    after = await _stored(api, "frank@globex.test", globex)
    assert (after.name, after.role, after.active, after.password_hash) == (
        before.name,
        before.role,
        before.active,
        before.password_hash,
    )
    assert await api.token("frank@globex.test")  # still signs in with the old password


async def test_deactivating_a_foreign_user_does_not_revoke_their_tokens(api: Api, org: Org, globex: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    frank = await api.login("frank@globex.test")
    foreign = (await _ids(api, await api.token(globex.admin_email)))["frank@globex.test"]
    # when
    await api.gql(USER_UPDATE, {"id": foreign, "active": False}, token=token)
    # then
    async with system_session(api.state.sessionmaker) as session:
        revoked = await session.scalar(
            select(func.count()).select_from(RefreshToken).where(RefreshToken.revoked_at.is_not(None))
        )
    assert revoked == 0
    assert (await api.gql(ME_IDS, token=frank["accessToken"]))["data"]["me"]["email"] == "frank@globex.test"


async def test_the_last_admin_rule_counts_only_own_admins(api: Api, org: Org, globex: Org) -> None:
    # given: acme has one admin; globex has two
    token = await api.token(org.admin_email)
    me = (await api.gql(ME_IDS, token=token))["data"]["me"]["id"]
    # when acme's only admin demotes themselves
    result = await api.gql(USER_UPDATE, {"id": me, "role": "MANAGER"}, token=token)
    # then globex's admins do not count
    assert [error["code"] for error in result["data"]["userUpdate"]["userErrors"]] == ["INVALID"]
    assert (await _stored(api, org.admin_email, org)).role == Role.ADMIN


async def test_an_email_of_another_organization_is_not_taken(api: Api, org: Org, globex: Org) -> None:
    # given
    token = await api.token(org.admin_email)
    # when acme creates a user with an email that exists only in globex
    result = await api.gql(USER_CREATE, {"email": "hank@globex.test"}, token=token)
    # then
    assert result["data"]["userCreate"] == {"user": {"email": "hank@globex.test"}, "userErrors": []}
    assert (await _stored(api, "hank@globex.test", org)).role == Role.VIEWER
    assert (await _stored(api, "hank@globex.test", globex)).role == Role.SUPPORT


async def test_a_token_is_bound_to_its_organization(api: Api, org: Org, globex: Org) -> None:
    # given the same email in both organizations
    await api.create_user(globex, org.admin_email, "viewer")
    login = await api.gql(LOGIN_TO_GLOBEX, {"email": org.admin_email, "password": PASSWORD})
    token = login["data"]["authLogin"]["accessToken"]
    # when
    me = await api.gql(ME_IDS, token=token)
    users = await _ids(api, token)
    # then
    assert me["data"]["me"]["organization"]["slug"] == "globex"
    assert set(users) == {globex.admin_email, "hank@globex.test", "frank@globex.test", org.admin_email}
    assert len(users) == 4


# -- the session scope --------------------------------------------------------------


PLAIN_SESSION_STATEMENTS = {
    "select-entity": lambda: select(User),
    "select-column": lambda: select(User.email).where(User.active.is_(True)),
    "count-of-a-column": lambda: select(func.count(User.id)),
    "update": lambda: update(User).values(name="Everyone"),
    "delete": lambda: delete(User).where(User.name == "nobody"),
}


@pytest.mark.parametrize("statement", list(PLAIN_SESSION_STATEMENTS.values()), ids=list(PLAIN_SESSION_STATEMENTS))
async def test_a_plain_session_refuses_a_tenant_query(api: Api, org: Org, statement) -> None:
    # given a session from the sessionmaker, neither tenant_session nor system_session
    async with api.state.sessionmaker() as session:
        # when / then
        with pytest.raises(UnscopedQueryError):
            await session.execute(statement())


async def test_a_plain_session_refuses_a_get_by_id(api: Api, org: Org) -> None:
    admin = await _stored(api, org.admin_email, org)
    async with api.state.sessionmaker() as session:
        with pytest.raises(UnscopedQueryError):
            await session.get(User, admin.id)


UNGUARDED_COUNTS = {
    "count-select-from": lambda: select(func.count()).select_from(User),
    "count-of-a-subquery": lambda: select(func.count()).select_from(select(User).subquery()),
}


@pytest.mark.parametrize("statement", list(UNGUARDED_COUNTS.values()), ids=list(UNGUARDED_COUNTS))
async def test_a_plain_session_refuses_a_count_over_a_tenant_table(api: Api, org: Org, statement) -> None:
    async with api.state.sessionmaker() as session:
        with pytest.raises(UnscopedQueryError):
            await session.execute(statement())


@pytest.mark.parametrize("statement", list(UNGUARDED_COUNTS.values()), ids=list(UNGUARDED_COUNTS))
async def test_a_tenant_session_counts_only_its_organization(api: Api, org: Org, globex: Org, statement) -> None:
    async with tenant_session(api.state.sessionmaker, globex.id) as session:
        assert await session.scalar(statement()) == 3
    async with tenant_session(api.state.sessionmaker, org.id) as session:
        assert await session.scalar(statement()) == 1


async def test_a_plain_session_may_opt_out_explicitly(api: Api, org: Org, globex: Org) -> None:
    async with api.state.sessionmaker() as session:
        emails = set(await session.scalars(select(User.email).execution_options(unscoped=True)))
    assert {org.admin_email, globex.admin_email} <= emails


async def test_a_tenant_session_sees_only_its_organization(api: Api, org: Org, globex: Org) -> None:
    # given
    frank = await _stored(api, "frank@globex.test", globex)
    async with tenant_session(api.state.sessionmaker, org.id) as session:
        # when
        emails = set(await session.scalars(select(User.email)))
        by_id = await session.scalar(select(User).where(User.id == frank.id))
        # then
    assert emails == {org.admin_email}
    assert by_id is None


async def test_a_system_session_sees_every_organization(api: Api, org: Org, globex: Org) -> None:
    async with system_session(api.state.sessionmaker) as session:
        emails = set(await session.scalars(select(User.email)))
    assert emails == {org.admin_email, globex.admin_email, "hank@globex.test", "frank@globex.test"}
