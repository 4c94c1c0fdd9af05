"""Email accounts over GraphQL: create/update/delete/test against real servers (Dovecot, aiosmtpd), the
encrypted passwords, validation, permissions and tenancy."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from banxway.db.models import EmailAccount, Message, Thread
from banxway.db.session import system_session
from banxway.secrets import SecretBox
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.standins.mailservers import DovecotServer, MailCerts, SmtpServer

ACCOUNT_FIELDS = """
  id name email fromName signature imapHost imapPort imapSecurity imapUsername imapFolder
  smtpHost smtpPort smtpSecurity smtpUsername active lastPolledAt lastError createdAt
"""
CREATE = f"""
mutation($input: EmailAccountCreateInput!) {{
  emailAccountCreate(input: $input) {{ emailAccount {{ {ACCOUNT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
UPDATE = f"""
mutation($input: EmailAccountUpdateInput!) {{
  emailAccountUpdate(input: $input) {{ emailAccount {{ {ACCOUNT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DELETE = """
mutation($id: ID!) { emailAccountDelete(input: {id: $id}) { deletedId userErrors { field code message } } }
"""
TEST = """
mutation($id: ID!) {
  emailAccountTest(input: {id: $id}) { ok steps { protocol step ok detail } userErrors { field code message } }
}
"""
ACCOUNTS = f"{{ emailAccounts {{ {ACCOUNT_FIELDS} }} }}"
TYPE_FIELDS = """
query($name: String!) { __type(name: $name) { fields { name } inputFields { name } } }
"""
THREADS = "{ threads(first: 20) { edges { node { id subject messages(first: 10) { edges { node { id body } } } } } } }"

IMAP_PASSWORD = "secret-alice"
SMTP_PASSWORD = "secret-mailer"


@pytest.fixture
def settings(settings: Settings, mail_certs: MailCerts) -> Settings:
    """The app trusts the test CA, so that STARTTLS/TLS accounts can be tested."""
    return settings.model_copy(update={"email_ca_file": mail_certs.ca_path})


def account_input(dovecot: DovecotServer, smtp: SmtpServer, security: str = "NONE", **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "Operations",
        "email": "ops@acme.test",
        "imapHost": dovecot.host,
        "imapPort": dovecot.tls_port if security == "TLS" else dovecot.port,
        "imapSecurity": security,
        "imapUsername": dovecot.user,
        "imapPassword": dovecot.password,
        "smtpHost": smtp.host,
        "smtpPort": smtp.tls_port if security == "TLS" else smtp.port,
        "smtpSecurity": security,
        "smtpUsername": smtp.user,
        "smtpPassword": smtp.password,
        "fromName": "Acme Ops",
    }
    fields.update(changes)
    return fields


async def create(inbox: Inbox, fields: dict[str, Any], token: str | None = None) -> dict:
    result = await inbox.gql(CREATE, {"input": fields}, token)
    assert "errors" not in result, result
    return result["data"]["emailAccountCreate"]


async def create_ok(inbox: Inbox, fields: dict[str, Any]) -> dict:
    payload = await create(inbox, fields)
    assert payload["userErrors"] == [], payload
    return payload["emailAccount"]


async def account_row(state: AppState, account_id: str) -> EmailAccount:
    async with system_session(state.sessionmaker) as session:
        row = await session.get(EmailAccount, local_uuid(account_id))
        assert row is not None
        return row


def codes(result: dict) -> list[str]:
    return [error["extensions"]["code"] for error in result.get("errors") or []]


# -- create, and the passwords -----------------------------------------------------------------------


async def test_create_stores_the_account_with_encrypted_passwords(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given the settings of a real mailbox
    fields = account_input(dovecot, smtp_server, email="Ops@Acme.TEST")
    # when an admin creates the account
    result = await inbox.gql(CREATE, {"input": fields})
    # then it is returned with every field but the passwords, the address lower-cased, INBOX by default
    account = result["data"]["emailAccountCreate"]["emailAccount"]
    assert result["data"]["emailAccountCreate"]["userErrors"] == []
    assert account["email"] == "ops@acme.test"
    assert account["imapHost"] == dovecot.host
    assert account["imapPort"] == dovecot.port
    assert account["imapSecurity"] == "NONE"
    assert account["smtpSecurity"] == "NONE"
    assert account["imapFolder"] == "INBOX"
    assert account["smtpUsername"] == smtp_server.user
    assert account["active"] is True
    assert account["lastPolledAt"] is None
    # and no password appears anywhere in the answer
    assert IMAP_PASSWORD not in str(result)
    assert SMTP_PASSWORD not in str(result)
    # and the row holds the passwords encrypted: not the plaintext, but decryptable with the app's key
    row = await account_row(state, account["id"])
    assert row.imap_password != IMAP_PASSWORD and IMAP_PASSWORD not in row.imap_password
    assert row.smtp_password is not None and SMTP_PASSWORD not in row.smtp_password
    box = SecretBox(state.secret_key)
    assert box.decrypt(row.imap_password) == IMAP_PASSWORD
    assert box.decrypt(row.smtp_password) == SMTP_PASSWORD
    assert row.organization_id == inbox.org.id
    assert row.uidvalidity is None and row.last_uid == 0
    # and the admin lists it
    listed = await inbox.gql(ACCOUNTS)
    assert [a["id"] for a in listed["data"]["emailAccounts"]] == [account["id"]]


async def test_the_schema_has_no_password_field_to_read(inbox: Inbox) -> None:
    # when the EmailAccount type is introspected
    result = await inbox.gql(TYPE_FIELDS, {"name": "EmailAccount"})
    names = [field["name"] for field in result["data"]["__type"]["fields"]]
    # then it has the account's fields, and none of them is a password
    assert "imapUsername" in names and "smtpUsername" in names
    assert not [name for name in names if "password" in name.lower()], names
    # while the inputs do take passwords
    create_input = await inbox.gql(TYPE_FIELDS, {"name": "EmailAccountCreateInput"})
    inputs = [field["name"] for field in create_input["data"]["__type"]["inputFields"]]
    assert {"imapPassword", "smtpPassword"} <= set(inputs)


@pytest.mark.parametrize("security", ["STARTTLS", "TLS"])
async def test_create_and_test_an_account_over_tls(
    inbox: Inbox, dovecot: DovecotServer, smtp_server: SmtpServer, security: str
) -> None:
    # given an account reached over STARTTLS or implicit TLS (the app trusts the test CA)
    account = await create_ok(inbox, account_input(dovecot, smtp_server, security))
    assert account["imapSecurity"] == security
    # when it is tested
    result = await inbox.gql(TEST, {"id": account["id"]})
    payload = result["data"]["emailAccountTest"]
    # then every step passed, the TLS one included, for both protocols
    assert payload["userErrors"] == []
    assert payload["ok"] is True, payload
    steps = [(s["protocol"], s["step"], s["ok"]) for s in payload["steps"]]
    smtp_steps = ["connect", "tls", "ehlo", "auth"] if security == "TLS" else ["connect", "ehlo", "tls", "auth"]
    assert steps == [("IMAP", step, True) for step in ("connect", "tls", "login", "select")] + [
        ("SMTP", step, True) for step in smtp_steps
    ]
    tls_details = [s["detail"] for s in payload["steps"] if s["step"] == "tls"]
    assert all("TLSv1." in detail for detail in tls_details), tls_details


# -- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"imapPort": 0}, "imapPort"),
        ({"smtpPort": 70000}, "smtpPort"),
        ({"email": "not-an-address"}, "email"),
        ({"imapPassword": ""}, "imapPassword"),
        ({"smtpPassword": ""}, "smtpPassword"),
        ({"imapHost": "   "}, "imapHost"),
        ({"name": ""}, "name"),
    ],
)
async def test_create_validation_errors_name_the_field(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer, changes: dict, field: str
) -> None:
    # when an admin creates an account with one bad field
    payload = await create(inbox, account_input(dovecot, smtp_server, **changes))
    # then the error is INVALID and names that field, and nothing is stored
    assert payload["emailAccount"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", [field])], payload
    async with system_session(state.sessionmaker) as session:
        assert list(await session.scalars(select(EmailAccount.id))) == []


async def test_a_blank_email_is_invalid_not_taken(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # when an admin creates an account whose address is blank
    payload = await create(inbox, account_input(dovecot, smtp_server, email="   "))
    # then the error says the email is required (INVALID), rather than that the address is taken
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["email"])], payload


async def test_blanking_the_email_by_update_is_invalid_not_taken(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given an account
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    # when its address is blanked by an update
    result = await inbox.gql(UPDATE, {"input": {"id": account["id"], "email": ""}})
    errors = result["data"]["emailAccountUpdate"]["userErrors"]
    # then it is INVALID (the email is required), not TAKEN, and the address stays
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID", ["email"])], result
    assert (await account_row(state, account["id"])).email == "ops@acme.test"


async def test_bad_security_and_missing_password_are_refused_by_the_schema_naming_the_field(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # when the security is not one of NONE, STARTTLS, TLS
    bad_security = await inbox.gql(CREATE, {"input": account_input(dovecot, smtp_server, imapSecurity="SSL")})
    # then the request is refused, naming the field and the enum
    assert bad_security.get("data") is None
    message = bad_security["errors"][0]["message"]
    assert "imapSecurity" in message and "MailSecurity" in message, bad_security
    # when the IMAP password is left out
    fields = account_input(dovecot, smtp_server)
    del fields["imapPassword"]
    missing = await inbox.gql(CREATE, {"input": fields})
    # then the request is refused, naming the field
    assert missing.get("data") is None
    assert "imapPassword" in missing["errors"][0]["message"], missing
    # and nothing was stored
    async with system_session(state.sessionmaker) as session:
        assert list(await session.scalars(select(EmailAccount.id))) == []


async def test_update_validation_errors_name_the_field(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    for changes, field in [
        ({"imapPort": 65536}, "imapPort"),
        ({"imapPassword": ""}, "imapPassword"),
        ({"imapPassword": None}, "imapPassword"),
        ({"email": "nope@"}, "email"),
        ({"imapHost": None}, "imapHost"),
    ]:
        # when one field is set to a bad value
        result = await inbox.gql(UPDATE, {"input": {"id": account["id"], **changes}})
        payload = result["data"]["emailAccountUpdate"]
        # then the error names it, and the row is unchanged
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", [field])], (changes, result)
    row = await account_row(state, account["id"])
    assert (row.imap_port, row.imap_host, row.email) == (dovecot.port, dovecot.host, "ops@acme.test")
    assert SecretBox(state.secret_key).decrypt(row.imap_password) == IMAP_PASSWORD


async def test_a_duplicate_address_is_taken(inbox: Inbox, dovecot: DovecotServer, smtp_server: SmtpServer) -> None:
    # given an account for ops@acme.test and another one
    await create_ok(inbox, account_input(dovecot, smtp_server))
    other = await create_ok(inbox, account_input(dovecot, smtp_server, email="sales@acme.test"))
    # when a second account is created for the same address (in another case)
    payload = await create(inbox, account_input(dovecot, smtp_server, email="OPS@acme.test", name="Again"))
    # then it is TAKEN, on the email field
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("TAKEN", ["email"])]
    # and renaming the other one to that address is TAKEN too
    result = await inbox.gql(UPDATE, {"input": {"id": other["id"], "email": "ops@acme.test"}})
    errors = result["data"]["emailAccountUpdate"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("TAKEN", ["email"])]
    listed = await inbox.gql(ACCOUNTS)
    assert sorted(a["email"] for a in listed["data"]["emailAccounts"]) == ["ops@acme.test", "sales@acme.test"]


async def test_the_same_address_in_another_organization_is_not_taken(
    api: Api, inbox: Inbox, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given an account for ops@acme.test in Acme
    await create_ok(inbox, account_input(dovecot, smtp_server))
    # when Globex adds the same address
    globex = await api.create_org("globex")
    other = Inbox(api, globex, await api.token(globex.admin_email))
    payload = await create(other, account_input(dovecot, smtp_server))
    # then that is fine
    assert payload["userErrors"] == []


# -- permissions and tenancy --------------------------------------------------------------------------


async def test_support_users_are_forbidden(
    api: Api, org: Org, inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given an account, and a SUPPORT colleague
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    await api.create_user(org, "sam@acme.test", "support")
    token = await api.token("sam@acme.test")
    # when they list, create, update, test or delete accounts
    results = [
        await api.gql(ACCOUNTS, token=token),
        await api.gql(CREATE, {"input": account_input(dovecot, smtp_server, email="x@acme.test")}, token=token),
        await api.gql(UPDATE, {"input": {"id": account["id"], "name": "Mine"}}, token=token),
        await api.gql(TEST, {"id": account["id"]}, token=token),
        await api.gql(DELETE, {"id": account["id"]}, token=token),
        await api.gql("{ emailQuarantine(first: 5) { totalCount } }", token=token),
    ]
    # then every one is FORBIDDEN, and nothing changed
    assert [codes(result) for result in results] == [["FORBIDDEN"]] * len(results), results
    row = await account_row(state, account["id"])
    assert row.name == "Operations"
    async with system_session(state.sessionmaker) as session:
        assert len(list(await session.scalars(select(EmailAccount.id)))) == 1


async def test_another_organization_can_neither_see_nor_change_the_account(
    api: Api, inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given Acme's account, and Globex's admin
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    globex = await api.create_org("globex")
    token = await api.token(globex.admin_email)
    # when Globex lists its accounts: Acme's is not there
    listed = await api.gql(ACCOUNTS, token=token)
    assert listed["data"]["emailAccounts"] == []
    # when Globex updates, tests or deletes it by id: NOT_FOUND each time
    updated = await api.gql(UPDATE, {"input": {"id": account["id"], "imapHost": "evil.test"}}, token=token)
    tested = await api.gql(TEST, {"id": account["id"]}, token=token)
    deleted = await api.gql(DELETE, {"id": account["id"]}, token=token)
    for payload in (
        updated["data"]["emailAccountUpdate"],
        tested["data"]["emailAccountTest"],
        deleted["data"]["emailAccountDelete"],
    ):
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"], payload
        assert payload["userErrors"][0]["field"] == ["id"]
    assert tested["data"]["emailAccountTest"]["steps"] == []
    assert deleted["data"]["emailAccountDelete"]["deletedId"] is None
    # and node(id) does not show it either
    node = await api.gql("query($id: ID!) { node(id: $id) { id } }", {"id": account["id"]}, token=token)
    assert (node.get("data") or {}).get("node") is None
    # and the account is untouched
    row = await account_row(state, account["id"])
    assert row.imap_host == dovecot.host


# -- emailAccountTest ----------------------------------------------------------------------------------


async def test_account_test_reports_every_step(inbox: Inbox, dovecot: DovecotServer, smtp_server: SmtpServer) -> None:
    # given a plain-text account on the test servers
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    # when it is tested
    result = await inbox.gql(TEST, {"id": account["id"]})
    payload = result["data"]["emailAccountTest"]
    # then it is ok, with IMAP connect/login/select and SMTP connect/ehlo/auth, in the servers' words
    assert payload["ok"] is True and payload["userErrors"] == []
    steps = [(s["protocol"], s["step"], s["ok"]) for s in payload["steps"]]
    assert steps == [
        ("IMAP", "connect", True),
        ("IMAP", "login", True),
        ("IMAP", "select", True),
        ("SMTP", "connect", True),
        ("SMTP", "ehlo", True),
        ("SMTP", "auth", True),
    ]
    details = {(s["protocol"], s["step"]): s["detail"] for s in payload["steps"]}
    assert "Dovecot ready" in details[("IMAP", "connect")]
    assert details[("IMAP", "select")].startswith("INBOX: 0 messages, UIDVALIDITY ")
    assert details[("SMTP", "connect")].startswith("220")
    assert details[("SMTP", "auth")].startswith("235")


async def test_account_test_with_a_wrong_password_fails_at_login_in_dovecots_words(
    inbox: Inbox, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given an account whose IMAP and SMTP passwords are wrong
    account = await create_ok(
        inbox, account_input(dovecot, smtp_server, imapPassword="wrong-one", smtpPassword="wrong-two")
    )
    # when it is tested
    result = await inbox.gql(TEST, {"id": account["id"]})
    payload = result["data"]["emailAccountTest"]
    # then it is not ok: IMAP stopped at login with Dovecot's reply, SMTP at auth with the 535
    assert payload["ok"] is False
    steps = [(s["protocol"], s["step"], s["ok"]) for s in payload["steps"]]
    assert steps == [
        ("IMAP", "connect", True),
        ("IMAP", "login", False),
        ("SMTP", "connect", True),
        ("SMTP", "ehlo", True),
        ("SMTP", "auth", False),
    ]
    login = payload["steps"][1]["detail"]
    assert "Authentication failed" in login and "AUTHENTICATIONFAILED" in login, login
    assert "535" in payload["steps"][-1]["detail"]
    # when the right IMAP password is set, the IMAP steps pass
    await inbox.ok(UPDATE, {"input": {"id": account["id"], "imapPassword": IMAP_PASSWORD}}, "emailAccountUpdate")
    again = (await inbox.gql(TEST, {"id": account["id"]}))["data"]["emailAccountTest"]
    assert [(s["step"], s["ok"]) for s in again["steps"] if s["protocol"] == "IMAP"] == [
        ("connect", True),
        ("login", True),
        ("select", True),
    ]


# -- update and delete ---------------------------------------------------------------------------------


async def _set_cursor(state: AppState, account_id: str, uidvalidity: int, last_uid: int) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        row = await session.get(EmailAccount, local_uuid(account_id))
        assert row is not None
        row.uidvalidity = uidvalidity
        row.last_uid = last_uid


async def test_update_of_the_imap_server_resets_the_cursor(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given an account that has read up to UID 42
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    await _set_cursor(state, account["id"], 1234, 42)
    # when only its name, signature and SMTP password change (and the IMAP host is given unchanged)
    await inbox.ok(
        UPDATE,
        {
            "input": {
                "id": account["id"],
                "name": "Ops desk",
                "signature": "Acme Ops",
                "smtpPassword": "new-smtp",
                "imapHost": dovecot.host,
            }
        },
        "emailAccountUpdate",
    )
    # then the cursor stays, and the new SMTP password is stored encrypted
    row = await account_row(state, account["id"])
    assert (row.uidvalidity, row.last_uid) == (1234, 42)
    assert row.name == "Ops desk"
    assert SecretBox(state.secret_key).decrypt(row.smtp_password or "") == "new-smtp"
    assert "new-smtp" not in (row.smtp_password or "")
    # when the IMAP host changes (with the password again: it is sent to the new host)
    moved = {"id": account["id"], "imapHost": "localhost", "imapPassword": IMAP_PASSWORD}
    payload = await inbox.ok(UPDATE, {"input": moved}, "emailAccountUpdate")
    assert payload["emailAccount"]["imapHost"] == "localhost"
    # then the cursor starts over
    row = await account_row(state, account["id"])
    assert (row.uidvalidity, row.last_uid) == (None, 0)
    # and the same for the folder and the username
    for changes in (
        {"imapFolder": "Archive"},
        {"imapUsername": "bob", "imapPassword": IMAP_PASSWORD},
        {"imapPort": dovecot.tls_port, "imapPassword": IMAP_PASSWORD},
    ):
        await _set_cursor(state, account["id"], 1234, 42)
        await inbox.ok(UPDATE, {"input": {"id": account["id"], **changes}}, "emailAccountUpdate")
        row = await account_row(state, account["id"])
        assert (row.uidvalidity, row.last_uid) == (None, 0), changes


async def test_moving_a_kept_password_to_another_server_needs_the_password_again(
    inbox: Inbox, state: AppState, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    """Issue 16, item 7: otherwise an admin (or a stolen admin token) points the account at their own server and
    `emailAccountTest` hands them the kept password."""
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    for changes, field in (
        ({"imapHost": "attacker.example"}, "imapPassword"),
        ({"imapUsername": "someone"}, "imapPassword"),
        ({"smtpHost": "attacker.example"}, "smtpPassword"),
        ({"smtpPort": 2525}, "smtpPassword"),
    ):
        result = await inbox.gql(UPDATE, {"input": {"id": account["id"], **changes}})
        errors = result["data"]["emailAccountUpdate"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID", [field])], changes
        assert "again" in errors[0]["message"]
    row = await account_row(state, account["id"])
    assert (row.imap_host, row.smtp_host, row.imap_username) == (
        dovecot.host,
        smtp_server.host,
        account["imapUsername"],
    )
    # with the password given again, the move is allowed
    moved = {"id": account["id"], "smtpHost": "localhost", "smtpPassword": "another"}
    assert (await inbox.ok(UPDATE, {"input": moved}, "emailAccountUpdate"))["emailAccount"]["smtpHost"] == "localhost"


async def test_update_of_an_unknown_id_is_not_found(inbox: Inbox) -> None:
    missing = (await inbox.gql(UPDATE, {"input": {"id": _global_id(uuid.uuid4()), "name": "x"}}))["data"]
    assert [e["code"] for e in missing["emailAccountUpdate"]["userErrors"]] == ["NOT_FOUND"]


def _global_id(value: uuid.UUID, type_name: str = "EmailAccount") -> str:
    return base64.b64encode(f"{type_name}:{value}".encode()).decode()


async def test_delete_keeps_the_messages(
    inbox: Inbox, state: AppState, settings: Settings, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    from banxway.resolvers.email_ingest import poll_account

    # given an account that has imported one mail
    account = await create_ok(inbox, account_input(dovecot, smtp_server))
    dovecot.append(
        None,
        b"From: Priya <priya@oceanic.test>\r\nTo: ops@acme.test\r\nSubject: Booking 7781\r\n"
        b"Message-ID: <bkg-7781@oceanic.test>\r\n\r\nPlease confirm the booking.\r\n",
    )
    result = await poll_account(system_context(state, settings), local_uuid(account["id"]))
    assert result.imported == 1
    # when the account is deleted
    payload = await inbox.ok(DELETE, {"id": account["id"]}, "emailAccountDelete")
    assert payload["deletedId"] == account["id"]
    # then it is gone
    assert (await inbox.gql(ACCOUNTS))["data"]["emailAccounts"] == []
    async with system_session(state.sessionmaker) as session:
        assert await session.get(EmailAccount, local_uuid(account["id"])) is None
        # and its message and thread stay, no longer naming an account
        [message] = list(await session.scalars(select(Message)))
        assert message.email_account_id is None
        assert message.body == "Please confirm the booking."
        assert await session.get(Thread, message.thread_id) is not None
    threads = (await inbox.gql(THREADS))["data"]["threads"]["edges"]
    assert [t["node"]["subject"] for t in threads] == ["Booking 7781"]
    assert [m["node"]["body"] for m in threads[0]["node"]["messages"]["edges"]] == ["Please confirm the booking."]
    # and deleting it again is NOT_FOUND
    again = (await inbox.gql(DELETE, {"id": account["id"]}))["data"]["emailAccountDelete"]
    assert [e["code"] for e in again["userErrors"]] == ["NOT_FOUND"]
