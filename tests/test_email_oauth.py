"""Gmail and Microsoft 365 mailboxes by OAuth 2.0 (issue 17): emailAccountOAuthStart → the provider's consent →
`GET /oauth/{provider}/callback` → an account with encrypted tokens; IMAP (Dovecot with an oauth2 passdb) and SMTP
(aiosmtpd) with XOAUTH2; the refresh before expiry; REAUTHORIZATION_REQUIRED when the grant is gone. The provider is
the stand-in of tests/standins/oauth_server.py."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, text, update

from banxway.db.models import AuditEntry, EmailAccount, EmailOAuthState, Event, Message, Notification
from banxway.db.session import system_session
from banxway.enums import MessageStatus, NotificationType
from banxway.integrations.email import imap, smtp
from banxway.resolvers import delivery
from banxway.resolvers.email_ingest import poll_account, record_poll_failure
from banxway.resolvers.email_oauth import smtp_config_for
from banxway.resolvers.system_mail import NoMailAccount, send_system_mail
from banxway.secrets import SecretBox
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.standins.mailservers import DovecotServer, MailCerts, SmtpServer
from tests.standins.oauth_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAuthServer,
    XOAuth2SmtpServer,
    oauth_server,
    run_oauth_dovecot,
    run_xoauth2_smtp,
)
from tests.test_email_delivery import create_account

MAILBOX = "ops@gmail.test"
START = """
mutation($input: EmailAccountOAuthStartInput!) {
  emailAccountOAuthStart(input: $input) { authorizationUrl userErrors { field code message } }
}
"""
ACCOUNTS = """
{ emailAccounts { id email authMethod oauthProvider status tokenExpiresAt lastError imapHost imapPort
  imapSecurity smtpHost smtpPort smtpSecurity } }
"""
ACCOUNT_UPDATE = """
mutation($input: EmailAccountUpdateInput!) {
  emailAccountUpdate(input: $input) { emailAccount { id imapHost } userErrors { field code message } }
}
"""
ACCOUNT_TEST = """
mutation($id: ID!) { emailAccountTest(input: {id: $id}) { ok steps { protocol step ok detail } } }
"""
EMAIL_ACCOUNT_FIELDS = '{ __type(name: "EmailAccount") { fields { name } } }'
SEND = """
mutation($threadId: ID!) {
  messageSend(input: {threadId: $threadId, channel: EMAIL, body: "Our quote: USD 2,150."}) {
    message { id status } userErrors { field code message }
  }
}
"""


# -- the provider, its mail servers, and the settings that point at them -------------------------------------


@pytest.fixture
async def oauth() -> AsyncIterator[OAuthServer]:
    async with oauth_server("google") as server:
        yield server


@pytest.fixture
async def microsoft() -> AsyncIterator[OAuthServer]:
    async with oauth_server("microsoft") as server:
        server.signed_in = "ops@contoso.test"
        yield server


@pytest.fixture
def oauth_dovecot(mail_certs: MailCerts, oauth: OAuthServer) -> Iterator[DovecotServer]:
    with run_oauth_dovecot(mail_certs, f"{oauth.url}/introspect") as server:
        yield server


@pytest.fixture
def oauth_smtp(mail_certs: MailCerts, oauth: OAuthServer) -> Iterator[XOAuth2SmtpServer]:
    with run_xoauth2_smtp(mail_certs, oauth) as server:
        yield server


@pytest.fixture
def settings(
    settings: Settings,
    oauth: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: XOAuth2SmtpServer,
    mail_certs: MailCerts,
) -> Settings:
    """Google pointed at the stand-ins (Gmail's IMAP and SMTP both with implicit TLS, as imap/smtp.gmail.com)."""
    return settings.model_copy(
        update={
            "google_client_id": CLIENT_ID,
            "google_client_secret": CLIENT_SECRET,
            "google_authorize_url": f"{oauth.url}/authorize",
            "google_token_url": f"{oauth.url}/token",
            "google_imap_host": oauth_dovecot.host,
            "google_imap_port": oauth_dovecot.tls_port,
            "google_smtp_host": oauth_smtp.host,
            "google_smtp_port": oauth_smtp.tls_port,
            "email_ca_file": mail_certs.ca_path,
        }
    )


# -- helpers ----------------------------------------------------------------------------------------------------


async def start(
    inbox: Inbox, provider: str = "GOOGLE", account_id: str | None = None, token: str | None = None
) -> dict:
    variables = {"input": {"provider": provider, **({"emailAccountId": account_id} if account_id else {})}}
    return await inbox.gql(START, variables, token=token)


async def consent(url: str) -> str:
    """Follow the consent URL as the admin's browser would; the provider's redirect back to us (path and query)."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == "http://testserver"  # the redirect_uri: this service
    return f"{location.path}?{location.query}"


async def connect(inbox: Inbox, provider: str = "GOOGLE", account_id: str | None = None) -> httpx.Response:
    """The whole flow: start, consent, callback; the callback's response."""
    result = await start(inbox, provider, account_id)
    payload = result["data"]["emailAccountOAuthStart"]
    assert payload["userErrors"] == [], payload
    return await inbox.api.http.get(await consent(payload["authorizationUrl"]))


async def accounts(inbox: Inbox, token: str | None = None) -> list[dict]:
    result = await inbox.gql(ACCOUNTS, token=token)
    assert "errors" not in result, result
    return result["data"]["emailAccounts"]


async def account_row(state: AppState, email: str = MAILBOX) -> EmailAccount:
    async with system_session(state.sessionmaker) as session:
        account = await session.scalar(select(EmailAccount).where(EmailAccount.email == email))
        assert account is not None
        return account


async def count(state: AppState, model: Any, *where: Any) -> int:
    async with system_session(state.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def set_expiry(state: AppState, account_id: uuid.UUID, expires_at: datetime) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(EmailAccount).where(EmailAccount.id == account_id).values(oauth_token_expires_at=expires_at)
        )


def mail(subject: str = "Booking request", sender: str = "priya.shah@oceanic.test") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Priya Shah <{sender}>"
    msg["To"] = MAILBOX
    msg["Subject"] = subject
    msg["Date"] = "Tue, 04 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@oceanic.test>"
    msg.set_content("Please quote 2x40HC Nhava Sheva to Hamburg.")
    return msg.as_bytes(policy=SMTP_POLICY)


def deliver_mail_to(dovecot: DovecotServer, raw: bytes) -> int:
    """APPEND a mail to the OAuth mailbox (the stand-in's password login, only for putting mail there)."""
    if MAILBOX not in dovecot.users:
        dovecot.add_user(MAILBOX, "append-only-password")
    return dovecot.append(MAILBOX, raw)


async def poll(state: AppState, settings: Settings, account_id: uuid.UUID) -> Any:
    return await poll_account(system_context(state, settings), account_id)


def xoauth2(token: str) -> str:
    return f"user={MAILBOX}\x01auth=Bearer {token}\x01\x01"


# -- the authorization-code flow ------------------------------------------------------------------------------


async def test_the_flow_creates_an_oauth_account_with_encrypted_tokens(
    inbox: Inbox, org: Org, state: AppState, oauth: OAuthServer, oauth_dovecot: DovecotServer
) -> None:
    # given an admin who starts connecting a Gmail mailbox
    result = await start(inbox)
    url = result["data"]["emailAccountOAuthStart"]["authorizationUrl"]
    # then the consent URL is the provider's, with a state, PKCE S256, offline access and the mail scope
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{oauth.url}/authorize?")
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == ["http://testserver/oauth/google/callback"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 43
    assert set(query["scope"][0].split()) == {"openid", "email", "https://mail.google.com/"}
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    # and the state is stored hashed, never as it is
    async with system_session(state.sessionmaker) as session:
        pending = await session.scalar(select(EmailOAuthState))
    assert pending is not None and pending.state_hash != query["state"][0]
    assert pending.organization_id == org.id
    # when the admin consents and the provider redirects back
    response = await inbox.api.http.get(await consent(url))
    # then the page says the mailbox is connected
    assert response.status_code == 200, response.text
    assert MAILBOX in response.text
    assert response.headers["cache-control"] == "no-store"
    # and the code was exchanged with the PKCE verifier and the client's credentials
    [exchange] = oauth.token_requests
    assert exchange.grant_type == "authorization_code"
    assert exchange.form["code_verifier"] and exchange.form["client_secret"] == CLIENT_SECRET
    # and the account exists, on Gmail's servers, with its tokens encrypted
    account = await account_row(state)
    assert account.organization_id == org.id
    assert (account.auth_method, account.oauth_provider, account.status) == ("OAUTH", "GOOGLE", "ACTIVE")
    assert account.imap_password is None and account.smtp_password is None
    assert (account.imap_host, account.imap_port, account.imap_security) == (
        oauth_dovecot.host,
        oauth_dovecot.tls_port,
        "TLS",
    )
    assert account.imap_username == MAILBOX and account.smtp_username == MAILBOX
    box = SecretBox(state.secret_key)
    [refresh_token] = oauth.refresh_tokens
    [access_token] = oauth.access_tokens
    assert account.oauth_refresh_token != refresh_token and box.decrypt(account.oauth_refresh_token) == refresh_token
    assert account.oauth_access_token != access_token and box.decrypt(account.oauth_access_token) == access_token
    assert account.oauth_token_expires_at is not None
    assert account.oauth_token_expires_at > datetime.now(UTC) + timedelta(minutes=55)
    # and GraphQL shows how it logs in, never a token
    [shown] = await accounts(inbox)
    assert (shown["authMethod"], shown["oauthProvider"], shown["status"]) == ("OAUTH", "GOOGLE", "ACTIVE")
    assert shown["tokenExpiresAt"] is not None
    fields = {f["name"] for f in (await inbox.gql(EMAIL_ACCOUNT_FIELDS))["data"]["__type"]["fields"]}
    assert {name for name in fields if "token" in name.lower()} == {"tokenExpiresAt"}
    # and it was recorded like emailAccountCreate: the event, and the audit log naming the admin
    assert await count(state, Event, Event.type == "EMAIL_ACCOUNT_CREATED") == 1
    async with system_session(state.sessionmaker) as session:
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "emailAccountCreate"))
    assert audit is not None and audit.actor_id is not None and audit.channel == "OAUTH"
    assert access_token not in str(audit.details) and refresh_token not in str(audit.details)


@pytest.mark.parametrize("case", ["unknown", "reused", "expired", "other provider", "denied", "no state"])
async def test_a_bad_callback_is_400_naming_why_and_stores_nothing(
    inbox: Inbox, state: AppState, oauth: OAuthServer, case: str
) -> None:
    # given a started authorization the provider sends back
    result = await start(inbox)
    url = result["data"]["emailAccountOAuthStart"]["authorizationUrl"]
    if case == "denied":
        oauth.deny()
    callback = await consent(url)
    if case == "unknown":
        callback = callback.replace("state=", "state=x")
    elif case == "reused":  # a first use connects the mailbox; the same callback again is refused
        assert (await inbox.api.http.get(callback)).status_code == 200
    elif case == "expired":
        async with system_session(state.sessionmaker) as session, session.begin():
            await session.execute(update(EmailOAuthState).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    elif case == "other provider":
        callback = callback.replace("/oauth/google/", "/oauth/microsoft/")
    elif case == "no state":
        callback = callback.split("?")[0] + "?code=abc"
    accounts_before = await count(state, EmailAccount)
    # when the callback comes
    response = await inbox.api.http.get(callback)
    # then it is refused, saying why
    assert response.status_code == 400
    expected = {
        "unknown": "Unknown state",
        "reused": "used already",
        "expired": "expired",
        "other provider": "started for GOOGLE, not MICROSOFT",
        "denied": "access_denied",
        "no state": "no state",
    }[case]
    assert expected in response.text
    # and no account was created, nor a code exchanged
    assert await count(state, EmailAccount) == accounts_before
    assert len(oauth.token_requests) == (1 if case == "reused" else 0)
    if case in ("other provider", "denied"):  # and the state is used up: it cannot be replayed on the right path
        assert (await inbox.api.http.get(callback.replace("/oauth/microsoft/", "/oauth/google/"))).status_code == 400
        assert await count(state, EmailAccount) == accounts_before


async def test_the_state_binds_the_organization_and_the_admin(
    inbox: Inbox, api: Api, org: Org, state: AppState, oauth: OAuthServer
) -> None:
    # given another organization with its own admin and an OAuth account of ours
    other = await api.create_org("globex")
    other_token = await api.token(other.admin_email)
    assert (await connect(inbox)).status_code == 200
    [ours] = await accounts(inbox)
    # when their admin tries to re-authorize our account
    result = await start(inbox, account_id=ours["id"], token=other_token)
    # then it does not exist for them
    [error] = result["data"]["emailAccountOAuthStart"]["userErrors"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", ["emailAccountId"])
    # when our admin starts a second mailbox, and the callback reaches us through their admin's browser
    oauth.signed_in = "sales@gmail.test"
    result = await start(inbox)
    callback = await consent(result["data"]["emailAccountOAuthStart"]["authorizationUrl"])
    response = await api.http.get(callback, headers={"authorization": f"Bearer {other_token}"})
    # then the mailbox lands in our organization, whoever's browser it was
    assert response.status_code == 200
    assert {a["email"] for a in await accounts(inbox)} == {MAILBOX, "sales@gmail.test"}
    assert await accounts(inbox, token=other_token) == []


async def test_two_callbacks_connecting_the_same_new_mailbox_at_once_end_in_one_account(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, oauth: OAuthServer
) -> None:
    # given an admin who consented for a new mailbox
    result = await start(inbox)
    callback = await consent(result["data"]["emailAccountOAuthStart"]["authorizationUrl"])
    # and another callback for the same address (a second consent tab) that has added its row, not committed yet
    async with system_session(state.sessionmaker) as other, other.begin():
        other.add(
            EmailAccount(
                organization_id=org.id,
                name=MAILBOX,
                email=MAILBOX,
                imap_host=settings.google_imap_host,
                imap_port=settings.google_imap_port,
                imap_security="TLS",
                imap_username=MAILBOX,
                smtp_host=settings.google_smtp_host,
                smtp_port=settings.google_smtp_port,
                smtp_security="TLS",
                smtp_username=MAILBOX,
                auth_method="OAUTH",
                oauth_provider="GOOGLE",
                status="ACTIVE",
            )
        )
        await other.flush()
        # when our callback comes meanwhile (it finds no row, and its insert waits for the other one)
        ours = asyncio.create_task(inbox.api.http.get(callback))
        await _waiting_for_a_lock(state)
    response = await ours  # the other committed
    # then it is not a 500: the mailbox is connected once, with our tokens (the re-authorization branch)
    assert response.status_code == 200, response.text
    assert MAILBOX in response.text
    assert await count(state, EmailAccount) == 1
    [access_token] = oauth.access_tokens
    assert SecretBox(state.secret_key).decrypt((await account_row(state)).oauth_access_token) == access_token
    assert await count(state, Event, Event.type == "EMAIL_ACCOUNT_UPDATED") == 1


async def _waiting_for_a_lock(state: AppState) -> None:
    async with system_session(state.sessionmaker) as session:
        for _ in range(200):
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
            await session.rollback()
            if waiting:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the callback never waited for the other insert")


async def test_only_admins_start_and_a_demoted_admin_cannot_finish(
    inbox: Inbox, api: Api, org: Org, state: AppState, oauth: OAuthServer
) -> None:
    # given a SUPPORT agent
    await api.create_user(org, "agent@acme.test", "support")
    agent = await api.token("agent@acme.test")
    # when they start connecting a mailbox, then it is forbidden
    result = await start(inbox, token=agent)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # given a second admin who starts one and is demoted before the provider comes back
    await api.create_user(org, "second@acme.test", "admin")
    second = await api.token("second@acme.test")
    result = await start(inbox, token=second)
    callback = await consent(result["data"]["emailAccountOAuthStart"]["authorizationUrl"])
    async with system_session(state.sessionmaker) as session, session.begin():
        from banxway.db.models import User
        from banxway.enums import Role

        await session.execute(update(User).where(User.email == "second@acme.test").values(role=Role.SUPPORT))
    # then the callback is refused and nothing is stored
    response = await api.http.get(callback)
    assert response.status_code == 400 and "may not manage mailboxes" in response.text
    assert await count(state, EmailAccount) == 0
    assert oauth.token_requests == []


async def test_an_unconfigured_provider_is_not_configured(inbox: Inbox) -> None:
    result = await start(inbox, "MICROSOFT")
    [error] = result["data"]["emailAccountOAuthStart"]["userErrors"]
    assert error["code"] == "NOT_CONFIGURED" and "BANXWAY_MICROSOFT_CLIENT_ID" in error["message"]


async def test_an_oauth_accounts_servers_cannot_be_changed(inbox: Inbox, oauth: OAuthServer) -> None:
    # given an OAuth account
    assert (await connect(inbox)).status_code == 200
    [account] = await accounts(inbox)
    # when an admin points it at another IMAP server (its access token would go there)
    result = await inbox.gql(ACCOUNT_UPDATE, {"input": {"id": account["id"], "imapHost": "imap.evil.test"}})
    # then it is refused
    [error] = result["data"]["emailAccountUpdate"]["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["imapHost"])


# -- IMAP and SMTP with XOAUTH2 -----------------------------------------------------------------------------


async def test_mail_is_ingested_over_imap_with_xoauth2(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer, oauth_dovecot: DovecotServer
) -> None:
    # given a connected Gmail mailbox with a mail in it
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state)
    deliver_mail_to(oauth_dovecot, mail("Booking request 2x40HC"))
    # when it is polled through the ingest
    result = await poll(state, settings, account.id)
    # then the mail is imported, Dovecot having checked the access token with the provider (introspection)
    assert (result.fetched, result.imported) == (1, 1)
    assert oauth.introspections >= 1
    async with system_session(state.sessionmaker) as session:
        subjects = list(await session.scalars(select(Message.subject).where(Message.email_account_id == account.id)))
    assert subjects == ["Booking request 2x40HC"]
    # and the account's test logs in with XOAUTH2 to both servers
    [shown] = await accounts(inbox)
    tested = (await inbox.gql(ACCOUNT_TEST, {"id": shown["id"]}))["data"]["emailAccountTest"]
    assert tested["ok"], tested
    login = next(s for s in tested["steps"] if s["protocol"] == "IMAP" and s["step"] == "login")
    assert login["detail"].startswith("XOAUTH2")


async def test_a_wrong_token_is_refused_by_dovecot(
    state: AppState, settings: Settings, oauth_dovecot: DovecotServer, oauth: OAuthServer
) -> None:
    # given an IMAP configuration with a token the provider never issued
    config = imap.ImapConfig(
        host=oauth_dovecot.host,
        port=oauth_dovecot.tls_port,
        security="TLS",
        username=MAILBOX,
        password=None,
        ca_file=settings.email_ca_file,
        access_token="ya29.forged",
    )
    # then the login fails at the login step
    steps = await imap.atest_imap(config)
    assert [(s.step, s.ok) for s in steps][-1] == ("login", False)


async def test_mail_is_sent_over_smtp_with_xoauth2(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer, oauth_smtp: XOAuth2SmtpServer
) -> None:
    # given a connected Gmail mailbox and a customer's thread
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state)
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@oceanic.test"}])
    thread = await inbox.thread("Quote 2x40HC", contactId=contact["id"])
    message = (await inbox.ok(SEND, {"threadId": thread["id"]}, "messageSend"))["message"]
    # when it is delivered
    status = await delivery.deliver(system_context(state, settings), local_uuid(message["id"]))
    # then it went out through the account, authenticated with XOAUTH2 (the SASL string exactly)
    assert status == MessageStatus.SENT
    [received] = oauth_smtp.messages
    assert received.mail_from == MAILBOX and received.rcpt_tos == ["priya@oceanic.test"]
    assert received.authenticated_as == MAILBOX and received.tls
    token = SecretBox(state.secret_key).decrypt(account.oauth_access_token)
    assert oauth_smtp.handler.sasl == [xoauth2(token)]


# -- the refresh -----------------------------------------------------------------------------------------------


async def test_a_token_about_to_expire_is_refreshed_before_the_login(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer, oauth_dovecot: DovecotServer
) -> None:
    # given a connected mailbox whose access token expires in two minutes, and a provider that rotates refresh
    # tokens
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state)
    box = SecretBox(state.secret_key)
    old_access, old_refresh = box.decrypt(account.oauth_access_token), box.decrypt(account.oauth_refresh_token)
    oauth.expire_access_tokens()
    oauth.rotate_refresh_tokens = True
    await set_expiry(state, account.id, datetime.now(UTC) + timedelta(minutes=2))
    deliver_mail_to(oauth_dovecot, mail())
    # when it is polled
    result = await poll(state, settings, account.id)
    # then the token was refreshed first (with the stored refresh token) and the login worked
    assert result.imported == 1
    [_, refreshed] = oauth.token_requests
    assert refreshed.grant_type == "refresh_token" and refreshed.form["refresh_token"] == old_refresh
    account = await account_row(state)
    assert box.decrypt(account.oauth_access_token) != old_access
    assert account.oauth_token_expires_at > datetime.now(UTC) + timedelta(minutes=55)
    # and the rotated refresh token replaced the old one (which no longer works at the provider)
    assert box.decrypt(account.oauth_refresh_token) != old_refresh
    assert old_refresh not in oauth.refresh_tokens
    # and a fresh token is used as it is: no refresh on the next poll
    await poll(state, settings, account.id)
    assert len(oauth.token_requests) == 2


async def test_a_refused_refresh_requires_reauthorization_once_and_reauthorizing_clears_it(
    inbox: Inbox,
    state: AppState,
    settings: Settings,
    oauth: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: XOAuth2SmtpServer,
) -> None:
    # given a connected mailbox whose user revoked our access, and whose token has expired
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state)
    oauth.revoke(MAILBOX)
    await set_expiry(state, account.id, datetime.now(UTC) - timedelta(minutes=1))
    # when it is polled
    with pytest.raises(imap.ImapError) as raised:
        await poll(state, settings, account.id)
    # then the poll fails at the login, naming reauthorization and the provider's words, and not to be retried
    assert raised.value.step == "login" and not raised.value.transient
    assert "authorized again" in raised.value.detail and "invalid_grant" in raised.value.detail
    # and the account requires reauthorization, with the provider's words
    account = await account_row(state)
    assert account.status == "REAUTHORIZATION_REQUIRED"
    assert "invalid_grant: Token has been expired or revoked." in (account.last_error or "")
    [shown] = await accounts(inbox)
    assert shown["status"] == "REAUTHORIZATION_REQUIRED"
    # and the admin was told, once
    failed = Notification.type == NotificationType.INTEGRATION_TOKEN_FAILED
    assert await count(state, Notification, failed) == 1
    # when it is polled again, and a mail is sent through it
    requests = len(oauth.token_requests)
    with pytest.raises(imap.ImapError) as again:
        await poll(state, settings, account.id)
    # (the poll_mailbox actor records a failed poll's words as `<step>: <detail>`: the same words again)
    await record_poll_failure(system_context(state, settings), account.id, f"{again.value.step}: {again.value.detail}")
    with pytest.raises(NoMailAccount) as refused:  # no other mailbox: none to send system mail from
        async with system_session(state.sessionmaker) as session:
            await send_system_mail(
                system_context(state, settings), session, account.organization_id, to="x@y.test", subject="s", body="b"
            )
    # then neither asks the provider again, the send names reauthorization, and nobody is told twice
    assert len(oauth.token_requests) == requests
    assert "needs to be authorized again" in str(refused.value)
    assert oauth_smtp.messages == []
    assert await count(state, Notification, failed) == 1
    assert (await account_row(state)).last_error == account.last_error  # the same words, not nested
    # when an admin authorizes it again
    response = await connect(inbox, account_id=shown["id"])
    # then it is ACTIVE again, the same account, and mail flows
    assert response.status_code == 200, response.text
    account = await account_row(state)
    assert (account.status, account.last_error) == ("ACTIVE", None)
    assert await count(state, EmailAccount) == 1
    assert await count(state, Event, Event.type == "EMAIL_ACCOUNT_UPDATED") == 2  # status lost, then back
    deliver_mail_to(oauth_dovecot, mail())
    assert (await poll(state, settings, account.id)).imported == 1


async def test_reauthorizing_as_another_mailbox_is_refused(inbox: Inbox, state: AppState, oauth: OAuthServer) -> None:
    # given a connected mailbox
    assert (await connect(inbox)).status_code == 200
    [shown] = await accounts(inbox)
    # when the admin re-authorizes it but signs in as another mailbox
    oauth.signed_in = "someone.else@gmail.test"
    response = await connect(inbox, account_id=shown["id"])
    # then it is refused; the account keeps its tokens
    assert response.status_code == 400 and "signed in as someone.else@gmail.test" in response.text
    assert await count(state, EmailAccount) == 1


async def test_a_transient_refresh_failure_keeps_the_status_and_is_retried(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer, oauth_dovecot: DovecotServer
) -> None:
    # given a connected mailbox with an expired token, and a provider that answers 503 once
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state)
    await set_expiry(state, account.id, datetime.now(UTC) - timedelta(minutes=1))
    oauth.fail_next(503, "temporarily_unavailable", "Try again later.")
    # when it is polled, then the login fails as worth a retry
    with pytest.raises(imap.ImapError) as raised:
        await poll(state, settings, account.id)
    assert raised.value.transient and "temporarily_unavailable" in raised.value.detail
    # and the account stays ACTIVE, nobody is notified
    assert (await account_row(state)).status == "ACTIVE"
    assert await count(state, Notification) == 0
    # and the next poll refreshes and reads the mailbox
    deliver_mail_to(oauth_dovecot, mail())
    assert (await poll(state, settings, account.id)).imported == 1


async def test_a_send_from_a_mailbox_needing_reauthorization_fails_naming_it(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer, oauth_smtp: XOAuth2SmtpServer
) -> None:
    # given a connected mailbox whose grant the provider refuses now
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state)
    await set_expiry(state, account.id, datetime.now(UTC) + timedelta(minutes=1))
    oauth.fail_next(400, "invalid_grant", "Token has been expired or revoked.")
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@oceanic.test"}])
    thread = await inbox.thread("Quote 2x40HC", contactId=contact["id"])
    message = (await inbox.ok(SEND, {"threadId": thread["id"]}, "messageSend"))["message"]
    # when it is delivered
    status = await delivery.deliver(system_context(state, settings), local_uuid(message["id"]))
    # then it FAILED at once, saying the mailbox must be authorized again; nothing was sent
    assert status == MessageStatus.FAILED
    async with system_session(state.sessionmaker) as session:
        stored = await session.get(Message, local_uuid(message["id"]))
    assert stored is not None and "needs to be authorized again" in (stored.error or "")
    assert oauth_smtp.messages == []
    assert (await account_row(state)).status == "REAUTHORIZATION_REQUIRED"


async def test_system_mail_passes_over_a_mailbox_needing_reauthorization(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer, smtp_server: SmtpServer
) -> None:
    # given the organization's oldest mailbox, a Gmail one whose grant is gone, and a newer password mailbox
    assert (await connect(inbox)).status_code == 200
    gmail = await account_row(state)
    await create_account(inbox, smtp_server, email="desk@acme.test")
    oauth.revoke(MAILBOX)
    await set_expiry(state, gmail.id, datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(smtp.PermanentSendError):
        await smtp_config_for(system_context(state, settings), await account_row(state))
    assert (await account_row(state)).status == "REAUTHORIZATION_REQUIRED"
    # when Banxway mails on its own behalf (an invitation, a notification email)
    async with system_session(state.sessionmaker) as session:
        await send_system_mail(
            system_context(state, settings), session, gmail.organization_id, to="x@y.test", subject="s", body="b"
        )
    # then it went through the mailbox that can log in
    [received] = smtp_server.messages
    assert received.mail_from == "desk@acme.test" and received.rcpt_tos == ["x@y.test"]


async def test_the_token_failure_notification_is_made_by_the_notification_rules(
    inbox: Inbox, state: AppState, settings: Settings, oauth: OAuthServer
) -> None:
    # given a connected mailbox with a long address, whose grant is gone
    address = "operations.and.customer.service.desk@freight-forwarding-" + "x" * 60 + ".test"
    oauth.signed_in = address
    assert (await connect(inbox)).status_code == 200
    account = await account_row(state, address)
    oauth.revoke(address)
    await set_expiry(state, account.id, datetime.now(UTC) - timedelta(minutes=1))
    # when a login refreshes its token and is refused
    with pytest.raises(smtp.PermanentSendError):
        await smtp_config_for(system_context(state, settings), await account_row(state, address))
    # then the admin's notification is clipped as every notification is (notifications.notify, not a copy of it)
    async with system_session(state.sessionmaker) as session:
        [notification] = await session.scalars(
            select(Notification).where(Notification.type == NotificationType.INTEGRATION_TOKEN_FAILED)
        )
    assert len(notification.summary) == 300 and notification.summary.endswith("…")
    assert notification.summary.startswith(f"The mailbox {address} must be authorized again")


# -- Microsoft 365 -----------------------------------------------------------------------------------------------


async def test_a_microsoft_mailbox_uses_preferred_username_starttls_and_scoped_refreshes(
    inbox: Inbox,
    state: AppState,
    settings: Settings,
    microsoft: OAuthServer,
    mail_certs: MailCerts,
    oauth: OAuthServer,
) -> None:
    # given Microsoft configured (its own stand-in; SMTP with STARTTLS on the plain port, as smtp.office365.com:587)
    with run_xoauth2_smtp(mail_certs, microsoft) as office_smtp:
        ms_settings = settings.model_copy(
            update={
                "microsoft_client_id": CLIENT_ID,
                "microsoft_client_secret": CLIENT_SECRET,
                "microsoft_tenant": "contoso.test",
                "microsoft_authorize_url": f"{microsoft.url}/authorize?tenant={{tenant}}",
                "microsoft_token_url": f"{microsoft.url}/token",
                "microsoft_smtp_host": office_smtp.host,
                "microsoft_smtp_port": office_smtp.port,
            }
        )
        ms_state = dataclasses.replace(state, settings=ms_settings)
        async with _client_for(ms_settings, ms_state) as http:
            ms_inbox = Inbox(Api(http, ms_state), inbox.org, inbox.token)
            # when an admin connects a Microsoft 365 mailbox
            result = await start(ms_inbox, "MICROSOFT")
            url = result["data"]["emailAccountOAuthStart"]["authorizationUrl"]
            assert "tenant=contoso.test" in url and "offline_access" in parse_qs(urlsplit(url).query)["scope"][0]
            response = await http.get(await consent(url))
            assert response.status_code == 200, response.text
        # then the account is named by the id_token's preferred_username, on Microsoft's servers
        account = await account_row(state, "ops@contoso.test")
        assert (account.oauth_provider, account.smtp_security, account.smtp_port) == (
            "MICROSOFT",
            "STARTTLS",
            office_smtp.port,
        )
        # and a refresh sends the scopes again, and a send logs in with XOAUTH2 after STARTTLS
        await set_expiry(state, account.id, datetime.now(UTC))
        async with system_session(state.sessionmaker) as session:
            reply = await send_system_mail(
                system_context(state, ms_settings),
                session,
                account.organization_id,
                to="a@b.test",
                subject="s",
                body="b",
            )
        assert reply.startswith("250")
        refresh = microsoft.token_requests[-1]
        assert refresh.grant_type == "refresh_token" and "offline_access" in refresh.form["scope"]
        [received] = office_smtp.messages
        assert received.authenticated_as == "ops@contoso.test" and received.tls
        token = SecretBox(state.secret_key).decrypt((await account_row(state, "ops@contoso.test")).oauth_access_token)
        assert base64.b64encode(f"user=ops@contoso.test\x01auth=Bearer {token}\x01\x01".encode())
        assert office_smtp.handler.sasl == [f"user=ops@contoso.test\x01auth=Bearer {token}\x01\x01"]


def _client_for(settings: Settings, state: AppState) -> Any:
    from tests.conftest import http_client

    return http_client(settings, state)
