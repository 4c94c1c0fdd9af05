"""Administration (banxway.resolvers.administration): the organization's settings, one's own profile and
notification preferences, invitations by email (to the SMTP stand-in) accepted once, deactivating and
reactivating users, notification emails, and the audit log of every such change (before → after)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from banxway.db.models import AuditEntry, Event, Invitation, Notification, Organization, User
from banxway.db.session import system_session
from banxway.resolvers.administration import invitation_email_send
from banxway.resolvers.notification_emails import notification_email_send, quiet_until
from banxway.state import AppState
from tests.conftest import PASSWORD
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.standins.mailservers import ReceivedMail, SmtpServer
from tests.test_email_delivery import create_account

ORGANIZATION = """
{ organization { id name slug timezone signature logo { id filename }
  businessHours { timezone week { weekday shifts { start end } } } } }
"""
ORGANIZATION_UPDATE = """
mutation($input: OrganizationUpdateInput!) {
  organizationUpdate(input: $input) {
    organization { id name timezone signature logo { id } businessHours { timezone } }
    userErrors { field code message }
  }
}
"""
ME = """
{ me { id name email role notificationPreferences { type inApp email } quietHours { start end timezone } } }
"""
ME_UPDATE = """
mutation($input: MeUpdateInput!) {
  meUpdate(input: $input) {
    user { id name notificationPreferences { type inApp email } quietHours { start end timezone } }
    accessToken refreshToken
    userErrors { field code message }
  }
}
"""
USERS = (
    "{ users(first: 50) { edges { node { id email name notificationPreferences { type } quietHours { start } } } } }"
)
USER_INVITE = """
mutation($input: UserInviteInput!) {
  userInvite(input: $input) {
    invitation { id email name role status expiresAt invitedBy { id } }
    token
    userErrors { field code message }
  }
}
"""
INVITATIONS = """
query($status: InvitationStatus) {
  invitations(status: $status) { id email status emailedAt acceptedAt user { id email } }
}
"""
INVITATION_REVOKE = """
mutation($id: ID!) {
  invitationRevoke(input: {id: $id}) { invitation { id status } userErrors { field code message } }
}
"""
INVITATION_ACCEPT = """
mutation($input: InvitationAcceptInput!) {
  invitationAccept(input: $input) {
    accessToken refreshToken user { id email name role organization { slug } }
    userErrors { field code message }
  }
}
"""
USER_DEACTIVATE = """
mutation($id: ID!) { userDeactivate(input: {id: $id}) { user { id active } userErrors { field code message } } }
"""
USER_REACTIVATE = """
mutation($id: ID!) { userReactivate(input: {id: $id}) { user { id active } userErrors { field code message } } }
"""
USER_UPDATE = """
mutation($input: UserUpdateInput!) { userUpdate(input: $input) { user { id role } userErrors { field code } } }
"""
TEAM_CREATE = """
mutation($input: TeamCreateInput!) { teamCreate(input: $input) { team { id } userErrors { field code message } } }
"""
TEAM_UPDATE = """
mutation($input: TeamUpdateInput!) { teamUpdate(input: $input) { team { id } userErrors { field code message } } }
"""
TEAM_DELETE = """
mutation($id: ID!) { teamDelete(id: $id) { deletedId userErrors { field code message } } }
"""
AUDIT_LOG = """
query($filter: AuditLogFilter) {
  auditLog(first: 50, filter: $filter) {
    edges { node { channel action target outcome details actor { id } } }
  }
}
"""
THREAD_ASSIGN = """
mutation($input: ThreadAssignInput!) {
  threadAssign(input: $input) { thread { id } userErrors { field code message } }
}
"""
ATTACHMENT_UPLOAD = """
mutation($input: AttachmentUploadInput!) {
  attachmentUpload(input: $input) { attachment { id } userErrors { field code message } }
}
"""
WEEK = [{"weekday": "MONDAY", "shifts": [{"start": "09:00", "end": "18:00"}]}]


# -- helpers ------------------------------------------------------------------------------------------------------


async def _me(inbox: Inbox, token: str | None = None) -> dict[str, Any]:
    result = await inbox.gql(ME, token=token)
    assert "errors" not in result, result
    return result["data"]["me"]


async def _member(inbox: Inbox, email: str, role: str) -> tuple[str, str]:
    """(global id, access token) of a new member of the organization."""
    await inbox.api.create_user(inbox.org, email, role)
    token = await inbox.api.token(email)
    return (await _me(inbox, token))["id"], token


async def _audit(inbox: Inbox, action: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    result = await inbox.gql(AUDIT_LOG, {"filter": {"action": action} if action else None}, token)
    assert "errors" not in result, result
    return [edge["node"] for edge in result["data"]["auditLog"]["edges"]]


async def _count(state: AppState, model: Any, *where: Any) -> int:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def _upload(inbox: Inbox, filename: str, data: bytes, content_type: str) -> str:
    operations = {"query": ATTACHMENT_UPLOAD, "variables": {"input": {"file": None}}}
    response = await inbox.api.http.post(
        "/graphql",
        headers={"authorization": f"Bearer {inbox.token}"},
        data={"operations": orjson.dumps(operations).decode(), "map": '{"0": ["variables.input.file"]}'},
        files={"0": (filename, data, content_type)},
    )
    payload = response.json()["data"]["attachmentUpload"]
    assert payload["userErrors"] == [], response.text
    return payload["attachment"]["id"]


def _parsed(received: ReceivedMail) -> EmailMessage:
    return BytesParser(policy=default_policy).parsebytes(received.raw)  # type: ignore[return-value]


def _token_in(mail: EmailMessage) -> str:
    body = mail.get_content()
    found = re.search(r"invitation token \(invitationAccept\):\s+(\S+)", body)
    assert found, body
    return found.group(1)


async def _queued(state: AppState, queue: str) -> list[str]:
    """The first argument of each job waiting in a Dramatiq queue of the test's Redis."""
    jobs = await state.redis.hvals(f"banxway:{queue}.msgs")
    return [orjson.loads(job)["args"][0] for job in jobs]


# -- the organization ------------------------------------------------------------------------------------------


async def test_an_admin_updates_the_organization_and_reads_it_back(inbox: Inbox) -> None:
    # given an uploaded image
    logo = await _upload(inbox, "logo.png", b"\x89PNG\r\n\x1a\nlogo", "image/png")
    # when the admin changes every setting
    changes = {
        "name": "Acme Logistics",
        "timezone": "Asia/Kolkata",
        "businessHours": {"timezone": "Asia/Kolkata", "week": WEEK},
        "signature": "Acme Logistics\n+91 22 5000 1000",
        "logoAttachmentId": logo,
    }
    payload = await inbox.ok(ORGANIZATION_UPDATE, {"input": changes}, "organizationUpdate")
    # then a fresh read shows them
    organization = (await inbox.gql(ORGANIZATION))["data"]["organization"]
    assert payload["organization"]["id"] == organization["id"]
    assert organization["name"] == "Acme Logistics"
    assert organization["timezone"] == "Asia/Kolkata"
    assert organization["signature"] == "Acme Logistics\n+91 22 5000 1000"
    assert organization["logo"] == {"id": logo, "filename": "logo.png"}
    assert organization["businessHours"]["timezone"] == "Asia/Kolkata"
    monday = next(day for day in organization["businessHours"]["week"] if day["weekday"] == "MONDAY")
    assert monday["shifts"] == [{"start": "09:00", "end": "18:00"}]
    # and the SLA calendar is the same one (businessHours)
    hours = (await inbox.gql("{ businessHours { timezone } }"))["data"]["businessHours"]
    assert hours == {"timezone": "Asia/Kolkata"}
    # and null clears the signature, logo and business hours
    cleared = {"signature": None, "logoAttachmentId": None, "businessHours": None}
    payload = await inbox.ok(ORGANIZATION_UPDATE, {"input": cleared}, "organizationUpdate")
    assert payload["organization"] == {
        "id": organization["id"],
        "name": "Acme Logistics",
        "timezone": "Asia/Kolkata",
        "signature": None,
        "logo": None,
        "businessHours": None,
    }


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, ["timezone"], "INVALID"),
        ({"name": "  "}, ["name"], "INVALID"),
        ({"name": "Renamed", "signature": "x" * 10_001}, ["signature"], "TOO_LONG"),
        (
            {
                "businessHours": {
                    "timezone": "UTC",
                    "week": [{"weekday": "MONDAY", "shifts": [{"start": "25:00", "end": "18:00"}]}],
                }
            },
            ["businessHours", "hours", "monday", "0", "start"],
            "INVALID",
        ),
        (
            {"logoAttachmentId": "QXR0YWNobWVudDowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDE="},
            ["logoAttachmentId"],
            "NOT_FOUND",
        ),
    ],
    ids=["bad-timezone", "blank-name", "long-signature", "bad-business-hours", "unknown-logo"],
)
async def test_bad_organization_settings_are_user_errors_and_write_nothing(
    inbox: Inbox, changes: dict[str, Any], field: list[str], code: str
) -> None:
    # when
    result = await inbox.gql(ORGANIZATION_UPDATE, {"input": changes})
    # then
    payload = result["data"]["organizationUpdate"]
    assert payload["organization"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    organization = (await inbox.gql(ORGANIZATION))["data"]["organization"]
    assert (organization["name"], organization["timezone"], organization["signature"]) == ("Acme", "UTC", None)
    assert await _count(inbox.api.state, AuditEntry, AuditEntry.organization_id == inbox.org.id) == 0


async def test_a_pdf_is_no_logo(inbox: Inbox) -> None:
    pdf = await _upload(inbox, "quote.pdf", b"%PDF quote", "application/pdf")
    result = await inbox.gql(ORGANIZATION_UPDATE, {"input": {"logoAttachmentId": pdf}})
    assert result["data"]["organizationUpdate"]["userErrors"][0]["field"] == ["logoAttachmentId"]


@pytest.mark.parametrize("role", ["support", "manager"])
async def test_only_admins_update_the_organization_and_invite(inbox: Inbox, role: str) -> None:
    # given a colleague without ORG_MANAGE / USER_MANAGE
    _, token = await _member(inbox, f"{role}@acme.test", role)
    # when they try
    update_result = await inbox.gql(ORGANIZATION_UPDATE, {"input": {"name": "Hijacked"}}, token)
    invite = {"input": {"email": "friend@acme.test", "name": "Friend", "role": "ADMIN"}}
    invite_result = await inbox.gql(USER_INVITE, invite, token)
    listing = await inbox.gql(INVITATIONS, {}, token)
    # then each is refused, and nothing changed
    for result in (update_result, invite_result, listing):
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result
    assert (await inbox.gql(ORGANIZATION))["data"]["organization"]["name"] == "Acme"
    assert await _count(inbox.api.state, Invitation) == 0


# -- one's own profile -------------------------------------------------------------------------------------------


async def test_a_user_updates_their_profile_and_only_they_see_their_preferences(inbox: Inbox) -> None:
    # given a support agent
    support_id, token = await _member(inbox, "support@acme.test", "support")
    # when they change their name, ask for mentions by email (not in app) and set quiet hours
    changes = {
        "name": "Sam Support",
        "notificationPreferences": [{"type": "MENTION", "inApp": False, "email": True}],
        "quietHours": {"start": "22:00", "end": "07:00", "timezone": "Asia/Kolkata"},
    }
    payload = await inbox.ok(ME_UPDATE, {"input": changes}, "meUpdate", token)
    # then they read it back
    me = await _me(inbox, token)
    assert me["name"] == "Sam Support"
    preferences = {p["type"]: (p["inApp"], p["email"]) for p in me["notificationPreferences"]}
    assert preferences["MENTION"] == (False, True)
    assert preferences["ASSIGNMENT"] == (True, False)  # the default
    assert me["quietHours"] == {"start": "22:00", "end": "07:00", "timezone": "Asia/Kolkata"}
    assert payload["accessToken"] is None  # no password change: the session goes on
    # and a later change of another type keeps the first
    await inbox.ok(
        ME_UPDATE,
        {"input": {"notificationPreferences": [{"type": "ASSIGNMENT", "email": True}], "quietHours": None}},
        "meUpdate",
        token,
    )
    me = await _me(inbox, token)
    preferences = {p["type"]: (p["inApp"], p["email"]) for p in me["notificationPreferences"]}
    assert (preferences["MENTION"], preferences["ASSIGNMENT"]) == ((False, True), (True, True))
    assert me["quietHours"] is None
    # and the admin sees the new name but not the preferences
    users = {edge["node"]["id"]: edge["node"] for edge in (await inbox.gql(USERS))["data"]["users"]["edges"]}
    assert users[support_id]["name"] == "Sam Support"
    assert users[support_id]["notificationPreferences"] is None
    assert users[support_id]["quietHours"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currentPassword": "not-my-password", "newPassword": "a-new-password"}, ["currentPassword"]),
        ({"newPassword": "a-new-password"}, ["currentPassword"]),
        ({"currentPassword": PASSWORD, "newPassword": "short"}, ["newPassword"]),
        ({"quietHours": {"start": "22:00", "end": "7pm", "timezone": "UTC"}}, ["quietHours", "end"]),
        ({"quietHours": {"start": "22:00", "end": "07:00", "timezone": "Nowhere/City"}}, ["quietHours", "timezone"]),
        (
            {"notificationPreferences": [{"type": "MENTION"}, {"type": "MENTION"}]},
            ["notificationPreferences", "1", "type"],
        ),
    ],
    ids=["wrong-current", "no-current", "short-new", "bad-quiet-hours", "bad-quiet-timezone", "twice"],
)
async def test_bad_profile_changes_are_user_errors_and_change_nothing(
    inbox: Inbox, changes: dict[str, Any], field: list[str]
) -> None:
    # when the admin sends a bad change, with a new name beside it
    result = await inbox.gql(ME_UPDATE, {"input": {"name": "Renamed", **changes}})
    # then it names the field and nothing changed: the name, the password, the session
    payload = result["data"]["meUpdate"]
    assert [e["field"] for e in payload["userErrors"]] == [field], payload
    assert payload["accessToken"] is None
    me = await _me(inbox)
    assert me["name"] != "Renamed"
    assert (await inbox.api.login(inbox.org.admin_email))["userErrors"] == []


async def test_a_password_change_needs_the_current_one_and_keeps_only_this_session(inbox: Inbox) -> None:
    # given the admin signed in twice (another device)
    other_device = await inbox.api.token(inbox.org.admin_email)
    assert "errors" not in await inbox.gql(ME, token=other_device)
    # when they change their password with the current one
    changes = {"currentPassword": PASSWORD, "newPassword": "a-much-better-one"}
    payload = await inbox.ok(ME_UPDATE, {"input": changes}, "meUpdate")
    # then this client gets new tokens that work, the old tokens (both devices) are refused
    assert payload["accessToken"] and payload["refreshToken"]
    assert payload["user"]["id"] == (await _me(inbox, payload["accessToken"]))["id"]
    for old in (inbox.token, other_device):
        refused = await inbox.gql(ME, token=old)
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # and only the new password signs in
    assert (await inbox.api.login(inbox.org.admin_email))["userErrors"] != []
    assert (await inbox.api.login(inbox.org.admin_email, "a-much-better-one"))["userErrors"] == []
    # and the audit log records that it changed, never the value
    [entry] = await _audit(inbox, "meUpdate", payload["accessToken"])
    assert entry["details"] == {"before": {}, "after": {"password": "changed"}}
    assert "a-much-better-one" not in orjson.dumps(entry).decode()


# -- invitations -------------------------------------------------------------------------------------------------


async def test_an_invitation_is_emailed_and_its_token_accepted_once(inbox: Inbox, smtp_server: SmtpServer) -> None:
    state = inbox.api.state
    # given an email account to send from
    await create_account(inbox, smtp_server)
    # when the admin invites a new validator
    variables = {"input": {"email": "Vera@Acme.test", "name": "Vera", "role": "VALIDATOR"}}
    payload = await inbox.ok(USER_INVITE, variables, "userInvite")
    invitation = payload["invitation"]
    assert (invitation["email"], invitation["role"], invitation["status"]) == ("vera@acme.test", "VALIDATOR", "PENDING")
    expires = datetime.fromisoformat(invitation["expiresAt"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    # then its email job is queued from INVITATION_CREATED (and the token is stored hashed only, once mailed)
    assert str(local_uuid(invitation["id"])) in await _queued(state, "email")
    # when the job runs
    assert await invitation_email_send(system_context(state), local_uuid(invitation["id"])) is True
    assert await invitation_email_send(system_context(state), local_uuid(invitation["id"])) is False  # once
    # then the mail reached the SMTP server, from the account, with the token
    [received] = smtp_server.messages
    mail = _parsed(received)
    assert received.rcpt_tos == ["vera@acme.test"]
    assert mail["From"].addresses[0].addr_spec == "ops@acme.test"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert "Acme" in mail["Subject"]
    token = _token_in(mail)
    assert token == payload["token"]
    async with system_session(state.sessionmaker) as session:
        row = await session.get(Invitation, local_uuid(invitation["id"]))
        assert row is not None and row.token_secret is None and token not in row.token_hash
    # when Vera accepts it
    accepted = await inbox.api.gql(INVITATION_ACCEPT, {"input": {"token": token, "password": "vera-secret-1"}})
    result = accepted["data"]["invitationAccept"]
    # then she is a validator of the organization, signed in
    assert result["userErrors"] == []
    assert result["user"]["email"] == "vera@acme.test"
    assert result["user"]["role"] == "VALIDATOR"
    assert result["user"]["organization"] == {"slug": "acme"}
    assert (await _me(inbox, result["accessToken"]))["email"] == "vera@acme.test"
    assert (await inbox.api.login("vera@acme.test", "vera-secret-1"))["userErrors"] == []
    # and the invitation is used up: a second accept is refused
    again = await inbox.api.gql(INVITATION_ACCEPT, {"input": {"token": token, "password": "another-pass"}})
    errors = again["data"]["invitationAccept"]["userErrors"]
    assert [(e["field"], e["code"], e["message"]) for e in errors] == [
        (["token"], "INVALID_TOKEN", "This invitation was already used.")
    ]
    # and the admin's list shows it accepted by her
    [listed] = (await inbox.gql(INVITATIONS))["data"]["invitations"]
    assert listed["status"] == "ACCEPTED"
    assert listed["user"] == {"id": result["user"]["id"], "email": "vera@acme.test"}
    assert listed["emailedAt"] is not None
    # and the events: USER_CREATED and INVITATION_UPDATED, by Vera
    async with system_session(state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).where(Event.type.like("%INVITATION%")).order_by(Event.id)))
        created = await session.scalar(select(Event).where(Event.type == "USER_CREATED"))
    assert [(r.type, r.payload.get("changed")) for r in rows] == [
        ("INVITATION_CREATED", None),
        ("INVITATION_UPDATED", ["status"]),
    ]
    assert created is not None and str(created.actor_id) == str(local_uuid(result["user"]["id"]))
    # and the audit log has the acceptance, by her
    [accept] = await _audit(inbox, "invitationAccept")
    assert accept["target"] == invitation["id"] and accept["actor"] == {"id": result["user"]["id"]}
    assert accept["details"]["after"]["status"] == "ACCEPTED"


async def test_an_expired_or_revoked_or_unknown_token_is_refused(inbox: Inbox) -> None:
    state = inbox.api.state
    # given two invitations
    first = await inbox.ok(USER_INVITE, {"input": {"email": "a@x.test", "name": "A", "role": "SUPPORT"}}, "userInvite")
    second = await inbox.ok(USER_INVITE, {"input": {"email": "b@x.test", "name": "B", "role": "SUPPORT"}}, "userInvite")
    # when the first expires and the second is revoked
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Invitation)
            .where(Invitation.id == local_uuid(first["invitation"]["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    revoked = await inbox.ok(INVITATION_REVOKE, {"id": second["invitation"]["id"]}, "invitationRevoke")
    assert revoked["invitation"]["status"] == "REVOKED"
    # then neither token, nor an unknown one, creates a user
    for token, message in (
        (first["token"], "This invitation has expired; ask for a new one."),
        (second["token"], "This invitation was revoked."),
        ("no-such-token", "Unknown invitation token."),
    ):
        result = await inbox.api.gql(INVITATION_ACCEPT, {"input": {"token": token, "password": "long-enough"}})
        payload = result["data"]["invitationAccept"]
        assert [(e["code"], e["message"]) for e in payload["userErrors"]] == [("INVALID_TOKEN", message)]
        assert payload["accessToken"] is None
    assert await _count(state, User, User.email.in_(["a@x.test", "b@x.test"])) == 0
    # and the list filters by status
    expired = (await inbox.gql(INVITATIONS, {"status": "EXPIRED"}))["data"]["invitations"]
    assert [i["email"] for i in expired] == ["a@x.test"]
    assert (await inbox.gql(INVITATIONS, {"status": "PENDING"}))["data"]["invitations"] == []
    # and a revoked invitation cannot be revoked again
    again = await inbox.gql(INVITATION_REVOKE, {"id": second["invitation"]["id"]})
    assert again["data"]["invitationRevoke"]["userErrors"][0]["code"] == "INVALID"
    # and an expired invitation's address can be invited again
    renewed = {"input": {"email": "a@x.test", "name": "A", "role": "SUPPORT"}}
    assert (await inbox.ok(USER_INVITE, renewed, "userInvite"))["invitation"]["status"] == "PENDING"


@pytest.mark.parametrize(
    ("email", "field", "code"),
    [
        ("admin@acme.test", ["email"], "TAKEN"),  # a user of the organization
        ("pending@acme.test", ["email"], "TAKEN"),  # already invited
        ("not-an-email", ["email"], "INVALID"),
    ],
    ids=["existing-user", "pending-invitation", "bad-email"],
)
async def test_bad_invitations_are_user_errors_and_write_nothing(
    inbox: Inbox, email: str, field: list[str], code: str
) -> None:
    await inbox.ok(USER_INVITE, {"input": {"email": "pending@acme.test", "name": "P", "role": "VIEWER"}}, "userInvite")
    before = await _count(inbox.api.state, Invitation)
    events = await _count(inbox.api.state, Event)
    # when
    result = await inbox.gql(USER_INVITE, {"input": {"email": email, "name": "X", "role": "SUPPORT"}})
    # then
    payload = result["data"]["userInvite"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert payload["token"] is None
    assert await _count(inbox.api.state, Invitation) == before
    assert await _count(inbox.api.state, Event) == events


async def test_an_accept_with_a_short_password_is_refused_and_the_token_still_works(inbox: Inbox) -> None:
    invite = await inbox.ok(USER_INVITE, {"input": {"email": "c@x.test", "name": "C", "role": "VIEWER"}}, "userInvite")
    short = await inbox.api.gql(INVITATION_ACCEPT, {"input": {"token": invite["token"], "password": "short"}})
    assert short["data"]["invitationAccept"]["userErrors"][0]["field"] == ["password"]
    ok = await inbox.api.gql(
        INVITATION_ACCEPT, {"input": {"token": invite["token"], "password": "long-enough", "name": "Chris"}}
    )
    assert ok["data"]["invitationAccept"]["user"]["name"] == "Chris"


# -- users -------------------------------------------------------------------------------------------------------


async def test_an_admin_deactivates_and_reactivates_a_user(inbox: Inbox) -> None:
    # given a support agent, signed in
    support_id, token = await _member(inbox, "support@acme.test", "support")
    # when the admin deactivates them
    payload = await inbox.ok(USER_DEACTIVATE, {"id": support_id}, "userDeactivate")
    # then they are inactive and signed out
    assert payload["user"] == {"id": support_id, "active": False}
    assert (await inbox.gql(ME, token=token))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await inbox.api.login("support@acme.test"))["userErrors"] != []
    # when reactivated, they sign in again
    payload = await inbox.ok(USER_REACTIVATE, {"id": support_id}, "userReactivate")
    assert payload["user"] == {"id": support_id, "active": True}
    assert (await inbox.api.login("support@acme.test"))["userErrors"] == []
    # and both changes are audited
    actions = [(e["action"], e["details"]) for e in await _audit(inbox) if e["target"] == support_id]
    assert actions == [
        ("userReactivate", {"before": {"active": False}, "after": {"active": True}}),
        ("userDeactivate", {"before": {"active": True}, "after": {"active": False}}),
    ]


async def test_an_admin_cannot_deactivate_themselves_nor_another_organizations_user(inbox: Inbox) -> None:
    me = (await _me(inbox))["id"]
    mine = await inbox.gql(USER_DEACTIVATE, {"id": me})
    assert mine["data"]["userDeactivate"]["userErrors"][0]["code"] == "INVALID"
    # given another organization's admin
    globex = await inbox.api.create_org("globex")
    stranger = (await _me(inbox, await inbox.api.token(globex.admin_email)))["id"]
    # then their id is not found, for every user mutation
    for query, name in ((USER_DEACTIVATE, "userDeactivate"), (USER_REACTIVATE, "userReactivate")):
        result = await inbox.gql(query, {"id": stranger})
        assert [(e["field"], e["code"]) for e in result["data"][name]["userErrors"]] == [(["id"], "NOT_FOUND")]
    assert (await inbox.api.login(globex.admin_email))["userErrors"] == []  # untouched
    # and a support agent may not deactivate anyone
    _, token = await _member(inbox, "support@acme.test", "support")
    refused = await inbox.gql(USER_DEACTIVATE, {"id": me}, token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# -- notifications by email --------------------------------------------------------------------------------------


async def _assign(inbox: Inbox, assignee: str) -> uuid.UUID:
    """Assign a new thread to `assignee`; the id of the ASSIGNMENT notification it made."""
    thread = await inbox.thread("Quote 2x40HC Nhava Sheva to Hamburg")
    await inbox.ok(THREAD_ASSIGN, {"input": {"threadId": thread["id"], "assigneeId": assignee}}, "threadAssign")
    async with system_session(inbox.api.state.sessionmaker) as session:
        notification = await session.scalar(
            select(Notification)
            .where(Notification.user_id == local_uuid(assignee))
            .order_by(Notification.created_at.desc())
        )
    assert notification is not None
    return notification.id


async def test_a_notification_is_emailed_to_a_user_who_asked_for_it(inbox: Inbox, smtp_server: SmtpServer) -> None:
    state = inbox.api.state
    await create_account(inbox, smtp_server)
    # given one agent who wants assignments by email, and one who does not
    emailed_id, emailed_token = await _member(inbox, "priya@acme.test", "support")
    quiet_id, _ = await _member(inbox, "ravi@acme.test", "support")
    prefs = {"notificationPreferences": [{"type": "ASSIGNMENT", "inApp": True, "email": True}]}
    await inbox.ok(ME_UPDATE, {"input": prefs}, "meUpdate", emailed_token)
    # when a thread is assigned to each
    wanted = await _assign(inbox, emailed_id)
    unwanted = await _assign(inbox, quiet_id)
    # then only the first notification's email job is queued
    queued = await _queued(state, "email")
    assert str(wanted) in queued
    assert str(unwanted) not in queued
    # when the jobs run
    assert await notification_email_send(system_context(state), wanted) is None
    assert await notification_email_send(system_context(state), wanted) is None  # at most once
    await notification_email_send(system_context(state), unwanted)
    # then Priya got one mail with the notification's summary and the thread's reference, Ravi none
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["priya@acme.test"]
    mail = _parsed(received)
    assert mail["Subject"].startswith("[Banxway] ")
    assert "BX-" in mail.get_content()
    async with system_session(state.sessionmaker) as session:
        assert (await session.get(Notification, wanted)).emailed_at is not None  # type: ignore[union-attr]
        assert (await session.get(Notification, unwanted)).emailed_at is None  # type: ignore[union-attr]


async def test_email_only_notifications_are_kept_read_and_none_at_all_are_not_made(inbox: Inbox) -> None:
    # given two agents: one wants assignments by email only, one neither in app nor by email
    email_only, email_token = await _member(inbox, "priya@acme.test", "support")
    nothing, nothing_token = await _member(inbox, "ravi@acme.test", "support")
    await inbox.ok(
        ME_UPDATE,
        {"input": {"notificationPreferences": [{"type": "ASSIGNMENT", "inApp": False, "email": True}]}},
        "meUpdate",
        email_token,
    )
    await inbox.ok(
        ME_UPDATE,
        {"input": {"notificationPreferences": [{"type": "ASSIGNMENT", "inApp": False, "email": False}]}},
        "meUpdate",
        nothing_token,
    )
    # when each is assigned a thread
    await _assign(inbox, email_only)
    thread = await inbox.thread("Another")
    await inbox.ok(THREAD_ASSIGN, {"input": {"threadId": thread["id"], "assigneeId": nothing}}, "threadAssign")
    # then the first has it, already read (no badge); the second has none
    assert (await inbox.gql("{ notificationUnreadCount }", token=email_token))["data"]["notificationUnreadCount"] == 0
    assert await _count(inbox.api.state, Notification, Notification.user_id == local_uuid(email_only)) == 1
    assert await _count(inbox.api.state, Notification, Notification.user_id == local_uuid(nothing)) == 0


async def test_quiet_hours_hold_a_notification_email_until_they_end(inbox: Inbox, smtp_server: SmtpServer) -> None:
    state = inbox.api.state
    await create_account(inbox, smtp_server)
    # given an agent whose quiet hours are now
    agent, token = await _member(inbox, "priya@acme.test", "support")
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2)).strftime("%H:%M")
    changes = {
        "notificationPreferences": [{"type": "ASSIGNMENT", "email": True}],
        "quietHours": {"start": start, "end": end, "timezone": "UTC"},
    }
    await inbox.ok(ME_UPDATE, {"input": changes}, "meUpdate", token)
    # when a notification for them is to be emailed
    notification = await _assign(inbox, agent)
    later = await notification_email_send(system_context(state), notification)
    # then nothing is sent now, and the job comes back at the end of the quiet hours
    assert smtp_server.messages == []
    assert later is not None and timedelta(hours=1, minutes=58) < later - now <= timedelta(hours=2)


def test_quiet_hours_span_midnight() -> None:
    hours = {"start": "22:00", "end": "07:00", "timezone": "Asia/Kolkata"}  # UTC+05:30
    # 23:30 in Kolkata: quiet until 07:00 the next morning
    assert quiet_until(hours, datetime(2026, 3, 1, 18, 0, tzinfo=UTC)) == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    # 06:00 in Kolkata: quiet until 07:00 the same morning
    assert quiet_until(hours, datetime(2026, 3, 1, 0, 30, tzinfo=UTC)) == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    # 12:00 in Kolkata: not quiet
    assert quiet_until(hours, datetime(2026, 3, 1, 6, 30, tzinfo=UTC)) is None


# -- the audit log -----------------------------------------------------------------------------------------------


async def test_the_audit_log_shows_administrative_changes_before_and_after_in_the_organization(inbox: Inbox) -> None:
    # given a colleague
    support_id, _ = await _member(inbox, "support@acme.test", "support")
    me = (await _me(inbox))["id"]
    organization = (await inbox.gql(ORGANIZATION))["data"]["organization"]["id"]
    # when the admin changes the organization, a role, and a team
    await inbox.ok(
        ORGANIZATION_UPDATE, {"input": {"name": "Acme Logistics", "timezone": "Europe/Berlin"}}, "organizationUpdate"
    )
    await inbox.ok(USER_UPDATE, {"input": {"id": support_id, "role": "MANAGER"}}, "userUpdate")
    team = (await inbox.ok(TEAM_CREATE, {"input": {"name": "Exports", "memberIds": [me]}}, "teamCreate"))["team"]["id"]
    await inbox.ok(
        TEAM_UPDATE, {"input": {"id": team, "name": "Sea exports", "memberIds": [me, support_id]}}, "teamUpdate"
    )
    await inbox.ok(TEAM_DELETE, {"id": team}, "teamDelete")
    invite = {"input": {"email": "new@acme.test", "name": "New", "role": "VIEWER"}}
    invitation = (await inbox.ok(USER_INVITE, invite, "userInvite"))["invitation"]["id"]
    # then the audit log has each, newest first, by the admin, with what changed before and after
    entries = await _audit(inbox)
    got = [(e["action"], e["target"], e["details"]) for e in entries]
    assert got == [
        (
            "userInvite",
            invitation,
            {"before": {}, "after": {"email": "new@acme.test", "name": "New", "role": "VIEWER", "status": "PENDING"}},
        ),
        ("teamDelete", team, {"before": {"name": "Sea exports", "members": sorted([me, support_id])}, "after": {}}),
        (
            "teamUpdate",
            team,
            {
                "before": {"name": "Exports", "members": [me]},
                "after": {"name": "Sea exports", "members": sorted([me, support_id])},
            },
        ),
        ("teamCreate", team, {"before": {}, "after": {"name": "Exports", "members": [me]}}),
        ("userUpdate", support_id, {"before": {"role": "SUPPORT"}, "after": {"role": "MANAGER"}}),
        (
            "organizationUpdate",
            organization,
            {
                "before": {"name": "Acme", "timezone": "UTC"},
                "after": {"name": "Acme Logistics", "timezone": "Europe/Berlin"},
            },
        ),
    ]
    assert {(e["channel"], e["outcome"], e["actor"]["id"]) for e in entries} == {("GRAPHQL", "OK", me)}
    # and another organization's admin sees none of it
    globex = await inbox.api.create_org("globex")
    assert await _audit(inbox, token=await inbox.api.token(globex.admin_email)) == []
    # and a support agent may not read it
    _, support_token = await _member(inbox, "viewer@acme.test", "viewer")
    refused = await inbox.gql(AUDIT_LOG, {}, support_token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_unchanged_organization_update_is_not_audited(inbox: Inbox) -> None:
    await inbox.ok(ORGANIZATION_UPDATE, {"input": {"name": "Acme", "timezone": "UTC"}}, "organizationUpdate")
    assert await _audit(inbox) == []
    async with system_session(inbox.api.state.sessionmaker) as session:
        organization = await session.get(Organization, inbox.org.id)
    assert organization is not None and organization.name == "Acme"


SLA_POLICY_CREATE = """
mutation($input: SlaPolicyCreateInput!) { slaPolicyCreate(input: $input) { slaPolicy { id } userErrors { field } } }
"""
SLA_POLICY_UPDATE = """
mutation($input: SlaPolicyUpdateInput!) { slaPolicyUpdate(input: $input) { slaPolicy { id } userErrors { field } } }
"""
BUSINESS_HOURS_SET = """
mutation($input: BusinessHoursInput) { businessHoursSet(input: $input) { businessHours { timezone } userErrors { field } } }
"""


async def test_sla_policies_business_hours_and_email_accounts_are_audited_without_secrets(inbox: Inbox) -> None:
    from tests.test_events_outbox import EMAIL_ACCOUNT_CREATE, EMAIL_ACCOUNT_UPDATE, email_account_input

    # given an SLA policy and an email account
    policy = await inbox.ok(
        SLA_POLICY_CREATE, {"input": {"name": "Urgent", "firstResponseMinutes": 30}}, "slaPolicyCreate"
    )
    policy_id = policy["slaPolicy"]["id"]
    account = await inbox.ok(EMAIL_ACCOUNT_CREATE, {"input": email_account_input()}, "emailAccountCreate")
    account_id = account["emailAccount"]["id"]
    # when they change, and the business hours are set
    await inbox.ok(SLA_POLICY_UPDATE, {"input": {"id": policy_id, "firstResponseMinutes": 15}}, "slaPolicyUpdate")
    changes = {"id": account_id, "name": "Ops desk", "smtpPassword": "a-new-smtp-secret"}
    await inbox.ok(EMAIL_ACCOUNT_UPDATE, {"input": changes}, "emailAccountUpdate")
    await inbox.ok(BUSINESS_HOURS_SET, {"input": {"timezone": "UTC", "week": WEEK}}, "businessHoursSet")
    # then each change is in the audit log with its before and after
    entries = {(e["action"], e["target"]): e["details"] for e in await _audit(inbox)}
    assert entries[("slaPolicyUpdate", policy_id)] == {
        "before": {"first_response_minutes": 30},
        "after": {"first_response_minutes": 15},
    }
    assert entries[("slaPolicyCreate", policy_id)]["after"]["name"] == "Urgent"
    assert entries[("emailAccountUpdate", account_id)] == {
        "before": {"name": "Operations", "smtp_password": True},
        "after": {"name": "Ops desk", "smtp_password": "changed"},
    }
    created = entries[("emailAccountCreate", account_id)]["after"]
    assert (created["email"], created["imap_password"], created["smtp_password"]) == ("ops@acme.test", True, True)
    [hours] = [details for (action, _), details in entries.items() if action == "businessHoursSet"]
    assert hours["before"] == {"business_hours": None}
    assert hours["after"]["business_hours"]["timezone"] == "UTC"
    # and no secret is anywhere in it
    text = orjson.dumps(list(entries.values())).decode()
    for secret in ("imap-secret", "smtp-secret", "a-new-smtp-secret"):
        assert secret not in text


async def test_the_organizations_signature_signs_mail_from_an_account_without_one(
    inbox: Inbox, smtp_server: SmtpServer
) -> None:
    from tests.test_email_delivery import customer_thread, deliver, send

    state = inbox.api.state
    # given an email account with no signature of its own, and the organization's default signature
    await create_account(inbox, smtp_server)
    signature = {"signature": "Acme Logistics · Mumbai"}
    await inbox.ok(ORGANIZATION_UPDATE, {"input": signature}, "organizationUpdate")
    # when an email goes out
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    await deliver(state, state.settings, message["id"])
    # then it is signed with the organization's signature
    [received] = smtp_server.messages
    text = _parsed(received).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n").rstrip().endswith("-- \nAcme Logistics · Mumbai"), text


async def test_the_worker_mails_an_invitation_and_a_notification(
    inbox: Inbox, smtp_server: SmtpServer, worker: Any
) -> None:
    import asyncio
    import time

    # given an email account, and an agent who wants assignments by email
    await create_account(inbox, smtp_server)
    agent, token = await _member(inbox, "priya@acme.test", "support")
    prefs = {"notificationPreferences": [{"type": "ASSIGNMENT", "email": True}]}
    await inbox.ok(ME_UPDATE, {"input": prefs}, "meUpdate", token)
    # when someone is invited and a thread is assigned to the agent
    invite = {"input": {"email": "vera@acme.test", "name": "Vera", "role": "VALIDATOR"}}
    await inbox.ok(USER_INVITE, invite, "userInvite")
    await _assign(inbox, agent)
    # then the worker mails both (the actors of INVITATION_CREATED and NOTIFICATION_CREATED)
    deadline = time.monotonic() + 20
    while len(smtp_server.messages) < 2:
        assert time.monotonic() < deadline, smtp_server.messages
        await asyncio.sleep(0.1)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["priya@acme.test", "vera@acme.test"]
