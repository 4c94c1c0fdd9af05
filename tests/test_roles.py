"""Each role's allowed and denied operations, and the errors of userCreate / userUpdate."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from banxway.db.models import User
from banxway.db.session import system_session
from banxway.enums import Role
from tests.conftest import Api, Org

ROLES = ["admin", "manager", "validator", "support", "viewer"]
NON_ADMIN_ROLES = [role for role in ROLES if role != "admin"]

ME = "{ me { email role } }"
ME_ID = "{ me { id } }"
USER_IDS = "{ users(first: 100) { edges { node { id email } } } }"
ORGANIZATION = "{ organization { slug name } }"
USERS = "{ users { totalCount edges { node { email role } } } }"

USER_CREATE = """
mutation($email: String!, $name: String!, $role: Role!, $password: String!) {
  userCreate(input: {email: $email, name: $name, role: $role, password: $password}) {
    user { id email name role active } userErrors { field message code }
  }
}
"""

USER_UPDATE = """
mutation($id: ID!, $name: String, $role: Role, $active: Boolean, $password: String) {
  userUpdate(input: {id: $id, name: $name, role: $role, active: $active, password: $password}) {
    user { id name role active } userErrors { field message code }
  }
}
"""

NEW_USER = {"email": "new@acme.test", "name": "New Person", "role": "SUPPORT", "password": "long-enough-password"}


def _email(role: str) -> str:
    return f"{role}@acme.test"


async def _token_for(api: Api, org: Org, role: str) -> str:
    """A token of a user with `role` in `org` (the org's own admin for "admin")."""
    if role == "admin":
        return await api.token(org.admin_email)
    await api.create_user(org, _email(role), role)
    return await api.token(_email(role))


async def _user_id(api: Api, token: str, email: str) -> str:
    result = await api.gql(USER_IDS, token=token)
    return next(edge["node"]["id"] for edge in result["data"]["users"]["edges"] if edge["node"]["email"] == email)


async def _count_users(api: Api, org: Org) -> int:
    async with system_session(api.state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(User).where(User.organization_id == org.id))


async def _stored_user(api: Api, org: Org, email: str) -> User:
    async with system_session(api.state.sessionmaker) as session:
        user = await session.scalar(select(User).where(User.organization_id == org.id, User.email == email))
    assert user is not None
    return user


# -- reading ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_me(api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    expected_email = org.admin_email if role == "admin" else _email(role)
    # when
    result = await api.gql(ME, token=token)
    # then
    assert result == {"data": {"me": {"email": expected_email, "role": role.upper()}}}


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_users(api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    # when
    result = await api.gql(USERS, token=token)
    # then
    assert "errors" not in result
    users = result["data"]["users"]
    emails = {edge["node"]["email"] for edge in users["edges"]}
    assert org.admin_email in emails
    assert users["totalCount"] == len(emails) == (1 if role == "admin" else 2)


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_the_organization(api: Api, org: Org, role: str) -> None:
    token = await _token_for(api, org, role)
    result = await api.gql(ORGANIZATION, token=token)
    assert result == {"data": {"organization": {"slug": "acme", "name": "Acme"}}}


@pytest.mark.parametrize("query", [ME, ORGANIZATION, USERS])
async def test_reading_needs_a_token(api: Api, org: Org, query: str) -> None:
    result = await api.gql(query)
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


# -- userCreate ---------------------------------------------------------------------


async def test_admin_creates_a_user(api: Api, org: Org) -> None:
    # given
    token = await _token_for(api, org, "admin")
    before = await _count_users(api, org)
    # when
    result = await api.gql(USER_CREATE, NEW_USER, token=token)
    # then
    payload = result["data"]["userCreate"]
    assert payload["userErrors"] == []
    assert payload["user"]["email"] == "new@acme.test"
    assert payload["user"]["role"] == "SUPPORT"
    assert payload["user"]["active"] is True
    assert await _count_users(api, org) == before + 1
    # and the new user can sign in
    assert await api.token("new@acme.test", "long-enough-password")


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
async def test_other_roles_may_not_create_users(api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    before = await _count_users(api, org)
    # when
    result = await api.gql(USER_CREATE, NEW_USER, token=token)
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert result["errors"][0]["path"] == ["userCreate"]
    assert await _count_users(api, org) == before


async def test_user_create_needs_a_token(api: Api, org: Org) -> None:
    before = await _count_users(api, org)
    result = await api.gql(USER_CREATE, NEW_USER)
    assert result["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert await _count_users(api, org) == before


# -- userUpdate ---------------------------------------------------------------------


async def test_admin_updates_a_user(api: Api, org: Org) -> None:
    # given
    token = await _token_for(api, org, "admin")
    await api.create_user(org, "target@acme.test", "viewer")
    target = await _user_id(api, token, "target@acme.test")
    # when
    result = await api.gql(USER_UPDATE, {"id": target, "name": "Renamed", "role": "MANAGER"}, token=token)
    # then
    assert result["data"]["userUpdate"] == {
        "user": {"id": target, "name": "Renamed", "role": "MANAGER", "active": True},
        "userErrors": [],
    }
    stored = await _stored_user(api, org, "target@acme.test")
    assert (stored.name, stored.role) == ("Renamed", Role.MANAGER)


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
async def test_other_roles_may_not_update_users(api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    await api.create_user(org, "target@acme.test", "viewer")
    target = await _user_id(api, token, "target@acme.test")
    # when: a promotion, a rename and a deactivation, each tried alone
    attempts = [{"role": "ADMIN"}, {"name": "Renamed"}, {"active": False}, {"password": "another-password"}]
    results = [await api.gql(USER_UPDATE, {"id": target, **change}, token=token) for change in attempts]
    # then
    for result in results:
        assert result["data"] is None
        assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    stored = await _stored_user(api, org, "target@acme.test")
    assert (stored.name, stored.role, stored.active) == ("target", Role.VIEWER, True)
    assert await api.token("target@acme.test")  # the password did not change


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
async def test_other_roles_may_not_promote_themselves(api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    me = (await api.gql(ME_ID, token=token))["data"]["me"]["id"]
    # when
    result = await api.gql(USER_UPDATE, {"id": me, "role": "ADMIN"}, token=token)
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _stored_user(api, org, _email(role))).role == Role(role)


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
async def test_other_roles_get_forbidden_for_an_unknown_well_formed_id(api: Api, org: Org, role: str) -> None:
    token = await _token_for(api, org, role)
    unknown = str(GlobalID("User", str(uuid.uuid4())))
    result = await api.gql(USER_UPDATE, {"id": unknown, "name": "X"}, token=token)
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_a_non_admin_gets_forbidden_even_for_a_malformed_id(api: Api, org: Org) -> None:
    token = await _token_for(api, org, "viewer")
    result = await api.gql(USER_UPDATE, {"id": "not-a-global-id", "name": "X"}, token=token)
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


# -- userUpdate errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "unknown_id",
    [
        str(GlobalID("User", str(uuid.uuid4()))),
        str(GlobalID("User", "not-a-uuid")),
        str(GlobalID("Organization", str(uuid.uuid4()))),
        "garbage",
    ],
    ids=["random-user-id", "user-id-not-a-uuid", "organization-id", "garbage"],
)
async def test_update_of_an_unknown_id_is_not_found(api: Api, org: Org, unknown_id: str) -> None:
    # given
    token = await _token_for(api, org, "admin")
    # when
    result = await api.gql(USER_UPDATE, {"id": unknown_id, "name": "Ghost"}, token=token)
    # then
    assert result["data"]["userUpdate"] == {
        "user": None,
        "userErrors": [{"field": ["id"], "message": "No such user.", "code": "NOT_FOUND"}],
    }


async def test_the_last_active_admin_cannot_demote_themselves(api: Api, org: Org) -> None:
    # given
    token = await _token_for(api, org, "admin")
    me = (await api.gql(ME_ID, token=token))["data"]["me"]["id"]
    # when
    result = await api.gql(USER_UPDATE, {"id": me, "role": "MANAGER"}, token=token)
    # then
    payload = result["data"]["userUpdate"]
    assert payload["user"] is None
    assert [error["code"] for error in payload["userErrors"]] == ["INVALID"]
    assert "last active admin" in payload["userErrors"][0]["message"]
    assert (await _stored_user(api, org, org.admin_email)).role == Role.ADMIN


async def test_the_last_active_admin_cannot_be_deactivated(api: Api, org: Org) -> None:
    # given
    token = await _token_for(api, org, "admin")
    me = (await api.gql(ME_ID, token=token))["data"]["me"]["id"]
    # when
    result = await api.gql(USER_UPDATE, {"id": me, "active": False}, token=token)
    # then
    payload = result["data"]["userUpdate"]
    assert payload["user"] is None
    assert [error["code"] for error in payload["userErrors"]] == ["INVALID"]
    assert (await _stored_user(api, org, org.admin_email)).active is True


async def test_an_inactive_admin_does_not_count_as_another_admin(api: Api, org: Org) -> None:
    # given a second admin, then deactivated
    token = await _token_for(api, org, "admin")
    await api.create_user(org, "second@acme.test", "admin")
    second = await _user_id(api, token, "second@acme.test")
    deactivated = await api.gql(USER_UPDATE, {"id": second, "active": False}, token=token)
    assert deactivated["data"]["userUpdate"]["userErrors"] == []
    me = (await api.gql(ME_ID, token=token))["data"]["me"]["id"]
    # when the remaining active admin demotes themselves
    result = await api.gql(USER_UPDATE, {"id": me, "role": "VIEWER"}, token=token)
    # then
    assert [error["code"] for error in result["data"]["userUpdate"]["userErrors"]] == ["INVALID"]
    assert (await _stored_user(api, org, org.admin_email)).role == Role.ADMIN


async def test_with_two_active_admins_one_may_be_demoted(api: Api, org: Org) -> None:
    # given
    token = await _token_for(api, org, "admin")
    await api.create_user(org, "second@acme.test", "admin")
    second = await _user_id(api, token, "second@acme.test")
    # when
    result = await api.gql(USER_UPDATE, {"id": second, "role": "SUPPORT"}, token=token)
    # then
    assert result["data"]["userUpdate"]["userErrors"] == []
    assert result["data"]["userUpdate"]["user"]["role"] == "SUPPORT"


async def test_an_admin_cannot_deactivate_themselves(api: Api, org: Org) -> None:
    # given another active admin, so the last-admin rule does not apply
    token = await _token_for(api, org, "admin")
    await api.create_user(org, "second@acme.test", "admin")
    me = (await api.gql(ME_ID, token=token))["data"]["me"]["id"]
    # when
    result = await api.gql(USER_UPDATE, {"id": me, "active": False}, token=token)
    # then
    assert result["data"]["userUpdate"]["userErrors"] == [
        {"field": ["active"], "message": "You cannot deactivate yourself.", "code": "INVALID"}
    ]
    assert (await _stored_user(api, org, org.admin_email)).active is True


async def test_update_with_a_short_password_is_invalid_and_writes_nothing(api: Api, org: Org) -> None:
    # given
    token = await _token_for(api, org, "admin")
    await api.create_user(org, "target@acme.test", "viewer")
    target = await _user_id(api, token, "target@acme.test")
    # when a rename and a too-short password together
    result = await api.gql(USER_UPDATE, {"id": target, "name": "Renamed", "password": "short"}, token=token)
    # then
    errors = result["data"]["userUpdate"]["userErrors"]
    assert [(error["field"], error["code"]) for error in errors] == [(["password"], "INVALID")]
    assert (await _stored_user(api, org, "target@acme.test")).name == "target"


# -- userCreate errors --------------------------------------------------------------


@pytest.mark.parametrize("email", ["new@acme.test", "admin@acme.test", "  ADMIN@Acme.test "])
async def test_create_with_a_taken_email_is_taken(api: Api, org: Org, email: str) -> None:
    # given
    token = await _token_for(api, org, "admin")
    await api.create_user(org, "new@acme.test", "viewer")
    before = await _count_users(api, org)
    # when
    result = await api.gql(USER_CREATE, {**NEW_USER, "email": email}, token=token)
    # then
    payload = result["data"]["userCreate"]
    assert payload["user"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(["email"], "TAKEN")]
    assert await _count_users(api, org) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@@acme.test"}, "email"),
        ({"email": "spaces in@acme.test"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "1234567"}, "password"),
        ({"name": "   "}, "name"),
    ],
    ids=["no-at", "two-ats", "space", "short-password", "seven-chars", "blank-name"],
)
async def test_create_with_invalid_input_is_invalid(api: Api, org: Org, change: dict, field: str) -> None:
    # given
    token = await _token_for(api, org, "admin")
    before = await _count_users(api, org)
    # when
    result = await api.gql(USER_CREATE, {**NEW_USER, **change}, token=token)
    # then
    payload = result["data"]["userCreate"]
    assert payload["user"] is None
    assert len(payload["userErrors"]) == 1
    assert payload["userErrors"][0]["field"] == [field]
    assert payload["userErrors"][0]["code"] == "INVALID"
    assert payload["userErrors"][0]["message"]
    assert await _count_users(api, org) == before


async def test_a_password_of_exactly_eight_characters_is_accepted(api: Api, org: Org) -> None:
    token = await _token_for(api, org, "admin")
    result = await api.gql(USER_CREATE, {**NEW_USER, "password": "12345678"}, token=token)
    assert result["data"]["userCreate"]["userErrors"] == []
