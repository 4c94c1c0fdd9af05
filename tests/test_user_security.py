"""Two defects of a security review of userUpdate, each pinned by a test.

1. The "last active admin" check was a plain SELECT count: two admins demoting (or deactivating) each
   other concurrently both saw two admins and left the organization with none. The check now locks the
   organization's active admins in the same transaction before counting.
2. A password change left the user's old refresh tokens valid. Changing a password now revokes all of
   that user's refresh tokens (INVALID_TOKEN on authRefresh), as deactivation does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from banxway.db.models import User
from banxway.db.session import system_session
from banxway.enums import Role
from tests.conftest import PASSWORD, Api, Org

ME_ID = "{ me { id } }"

USER_UPDATE = """
mutation($id: ID!, $role: Role, $active: Boolean, $password: String) {
  userUpdate(input: {id: $id, role: $role, active: $active, password: $password}) {
    user { id role active } userErrors { field message code }
  }
}
"""

REFRESH = """
mutation Refresh($token: String!) {
  authRefresh(input: {refreshToken: $token}) { accessToken refreshToken userErrors { field code message } }
}
"""

NEW_PASSWORD = "a-brand-new-password"
ROUNDS = 5


async def _active_admins(api: Api, org: Org) -> int:
    async with system_session(api.state.sessionmaker) as session:
        return await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.organization_id == org.id, User.role == Role.ADMIN, User.active.is_(True))
        )


async def _me(api: Api, token: str) -> str:
    return (await api.gql(ME_ID, token=token))["data"]["me"]["id"]


# -- 1. the last active admin, under concurrency ---------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"role": "SUPPORT"}, {"active": False}],
    ids=["demote", "deactivate"],
)
async def test_two_admins_changing_each_other_concurrently_leave_one_admin(api: Api, change: dict[str, Any]) -> None:
    for round_ in range(ROUNDS):
        # given an organization with exactly two active admins, each signed in
        org = await api.create_org(f"race-{round_}")
        other_email = f"other@race-{round_}.test"
        await api.create_user(org, other_email, "admin")
        first_token = await api.token(org.admin_email)
        other_token = await api.token(other_email)
        first_id, other_id = await _me(api, first_token), await _me(api, other_token)
        # when each changes the other at the same time
        results = await asyncio.gather(
            api.gql(USER_UPDATE, {"id": other_id, **change}, token=first_token),
            api.gql(USER_UPDATE, {"id": first_id, **change}, token=other_token),
        )
        # then one of them won; the other got the last-admin error, or — when its request was authenticated after
        # the winner committed — was no longer an admin at all; and one admin remains
        won = [r for r in results if "errors" not in r and not r["data"]["userUpdate"]["userErrors"]]
        lost = [r for r in results if r not in won]
        payloads = results
        assert len(won) == 1 and len(lost) == 1, (round_, results)
        if "errors" in lost[0]:
            assert lost[0]["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED"), lost[0]
        else:
            errors = lost[0]["data"]["userUpdate"]["userErrors"]
            assert [error["code"] for error in errors] == ["INVALID"]
            assert "last active admin" in errors[0]["message"]
        assert await _active_admins(api, org) == 1, (round_, payloads)


# -- 2. a password change revokes refresh tokens ----------------------------------------------


async def test_an_admin_changing_a_users_password_revokes_that_users_refresh_tokens(api: Api, org: Org) -> None:
    # given a support user signed in twice, and the admin signed in
    await api.create_user(org, "support@acme.test", "support")
    laptop = await api.login("support@acme.test")
    phone = await api.login("support@acme.test")
    admin = await api.login(org.admin_email)
    support_id = await _me(api, laptop["accessToken"])
    # when the admin changes the support user's password
    result = await api.gql(USER_UPDATE, {"id": support_id, "password": NEW_PASSWORD}, token=admin["accessToken"])
    assert result["data"]["userUpdate"]["userErrors"] == []
    # then every old refresh token of the support user is revoked
    for login in (laptop, phone):
        refreshed = (await api.gql(REFRESH, {"token": login["refreshToken"]}))["data"]["authRefresh"]
        assert refreshed["accessToken"] is None
        assert [error["code"] for error in refreshed["userErrors"]] == ["INVALID_TOKEN"]
    # the admin's own login is untouched
    still = (await api.gql(REFRESH, {"token": admin["refreshToken"]}))["data"]["authRefresh"]
    assert still["userErrors"] == []
    # and the new password logs in, the old one no longer does
    assert (await api.login("support@acme.test", NEW_PASSWORD))["userErrors"] == []
    assert (await api.login("support@acme.test", PASSWORD))["userErrors"][0]["code"] == "INVALID_CREDENTIALS"


async def test_changing_ones_own_password_revokes_ones_refresh_tokens(api: Api, org: Org) -> None:
    # given the admin signed in
    login = await api.login(org.admin_email)
    me = await _me(api, login["accessToken"])
    # when they change their own password
    result = await api.gql(USER_UPDATE, {"id": me, "password": NEW_PASSWORD}, token=login["accessToken"])
    assert result["data"]["userUpdate"]["userErrors"] == []
    # then the old refresh token is revoked, and the new password logs in
    refreshed = (await api.gql(REFRESH, {"token": login["refreshToken"]}))["data"]["authRefresh"]
    assert [error["code"] for error in refreshed["userErrors"]] == ["INVALID_TOKEN"]
    fresh = await api.login(org.admin_email, NEW_PASSWORD)
    assert fresh["userErrors"] == []
    assert (await api.gql(REFRESH, {"token": fresh["refreshToken"]}))["data"]["authRefresh"]["userErrors"] == []


async def test_a_failed_password_change_revokes_nothing(api: Api, org: Org) -> None:
    # given the admin signed in
    login = await api.login(org.admin_email)
    me = await _me(api, login["accessToken"])
    # when the new password is too short
    result = await api.gql(USER_UPDATE, {"id": me, "password": "short"}, token=login["accessToken"])
    assert [error["code"] for error in result["data"]["userUpdate"]["userErrors"]] == ["INVALID"]
    # then the refresh token still works
    refreshed = (await api.gql(REFRESH, {"token": login["refreshToken"]}))["data"]["authRefresh"]
    assert refreshed["userErrors"] == []
