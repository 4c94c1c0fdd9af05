"""Gmail and Microsoft 365 mailboxes connected with OAuth 2.0 (issue 17): the authorization-code flow, the access
token that IMAP and SMTP log in with (XOAUTH2), its refresh, and what happens when the grant is gone.

* `email_account_oauth_start` (admins) stores a pending authorization — the `state` (as its SHA-256; random,
  single-use, STATE_LIFETIME), the PKCE code_verifier (encrypted), the organization, the admin, the provider, the
  account to re-authorize — and returns the provider's consent URL.
* `oauth_callback` (`GET /oauth/{provider}/callback`, banxway.webhooks.email_oauth) claims the state (unknown,
  expired, used, or another provider's: `CallbackRefused`, nothing stored), exchanges the code, reads the mailbox
  address from the id_token and, acting as the admin who started it (who must still be an active admin), creates
  the account (EMAIL_ACCOUNT_CREATED, audited as emailAccountCreate) or re-authorizes it (EMAIL_ACCOUNT_UPDATED,
  audited as emailAccountUpdate; its status back to ACTIVE).
* `access_token` is what every IMAP/SMTP login of an OAuth account awaits first (`imap_config_for`,
  `smtp_config_for`): the stored token, or a new one when less than REFRESH_MARGIN is left. The refresh holds the
  account's row lock, so that processes refreshing at once make one call (refresh-token rotation: the new refresh
  token replaces the old one). A refusal (`invalid_grant`, ...) sets the account's status to
  REAUTHORIZATION_REQUIRED with the provider's words in `last_error` and notifies the admins once; polls and sends
  then stop at once with that message (`ReauthorizationRequired`) until an admin authorizes again. A transient
  failure (5xx, 429, timeout) keeps the status: the login is retried later (`TokenUnavailable`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from banxway.auth import Permission
from banxway.context import Context, SystemContext, Viewer
from banxway.db.models import EmailAccount, EmailOAuthState, User
from banxway.db.session import system_session
from banxway.enums import EmailAccountStatus, EmailAuthMethod, MailSecurity, NotificationType, OAuthProvider, Role
from banxway.errors import DomainError
from banxway.events import EmailAccountCreated, EmailAccountUpdated
from banxway.integrations.email import imap, smtp
from banxway.integrations.email import oauth as provider_oauth
from banxway.logs import get_logger
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.mailboxes import imap_config, smtp_config
from banxway.resolvers.notifications import notify

if TYPE_CHECKING:
    from banxway.settings import Settings
    from banxway.state import AppState

log = get_logger("banxway.email.oauth")

STATE_LIFETIME = timedelta(minutes=10)
REFRESH_MARGIN = timedelta(minutes=5)  # a token with less than this left is refreshed before use

_GOOGLE_SCOPES = ("openid", "email", "https://mail.google.com/")
_MICROSOFT_SCOPES = (
    "openid",
    "email",
    "offline_access",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)


class ReauthorizationRequired(Exception):
    """The account's OAuth grant is gone (revoked, expired, refused): an admin must authorize it again. `str()`:
    which mailbox, what to do, and the provider's words."""


def _reauthorization_words(account: EmailAccount) -> str:
    """What the account's `last_error` says (it is `login: <this>`, the form the poller records a failed login
    in, so that each refused poll writes the same words again)."""
    if account.last_error:
        return account.last_error.removeprefix("login: ")
    return f"The mailbox {account.email} needs to be authorized again (emailAccountOAuthStart with its id)."


class TokenUnavailable(Exception):
    """No access token now (the provider's token endpoint failed or is not configured); worth a retry later."""


class CallbackRefused(Exception):
    """The OAuth callback cannot be accepted; `str()` says why (shown on the 400 page)."""


# -- configuration ---------------------------------------------------------------------------------------------


def client_for(settings: Settings, provider: OAuthProvider) -> provider_oauth.OAuthClient | None:
    """The provider's OAuth client from the settings; None when its client id or secret is not configured."""
    public_only = not settings.allow_private_provider_urls
    if provider is OAuthProvider.GOOGLE:
        if not (settings.google_client_id and settings.google_client_secret):
            return None
        return provider_oauth.OAuthClient(
            provider="Google",
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            authorize_url=settings.google_authorize_url,
            token_url=settings.google_token_url,
            scopes=_GOOGLE_SCOPES,
            authorize_params={"access_type": "offline", "prompt": "consent"},
            timeout=settings.provider_timeout_seconds,
            public_only=public_only,
        )
    if not (settings.microsoft_client_id and settings.microsoft_client_secret):
        return None
    tenant = settings.microsoft_tenant
    return provider_oauth.OAuthClient(
        provider="Microsoft",
        client_id=settings.microsoft_client_id,
        client_secret=settings.microsoft_client_secret,
        authorize_url=settings.microsoft_authorize_url.replace("{tenant}", tenant),
        token_url=settings.microsoft_token_url.replace("{tenant}", tenant),
        scopes=_MICROSOFT_SCOPES,
        refresh_with_scope=True,
        timeout=settings.provider_timeout_seconds,
        public_only=public_only,
    )


def _servers(settings: Settings, provider: OAuthProvider) -> dict[str, Any]:
    """The provider's IMAP and SMTP servers (Gmail: both TLS; Microsoft 365: IMAP TLS, SMTP STARTTLS on 587)."""
    if provider is OAuthProvider.GOOGLE:
        return {
            "imap_host": settings.google_imap_host,
            "imap_port": settings.google_imap_port,
            "imap_security": MailSecurity.TLS.value,
            "smtp_host": settings.google_smtp_host,
            "smtp_port": settings.google_smtp_port,
            "smtp_security": MailSecurity.TLS.value,
        }
    return {
        "imap_host": settings.microsoft_imap_host,
        "imap_port": settings.microsoft_imap_port,
        "imap_security": MailSecurity.TLS.value,
        "smtp_host": settings.microsoft_smtp_host,
        "smtp_port": settings.microsoft_smtp_port,
        "smtp_security": MailSecurity.STARTTLS.value,
    }


def _provider(value: Any, field: str = "provider") -> OAuthProvider:
    try:
        return OAuthProvider(str(getattr(value, "value", value)).upper())
    except ValueError:
        raise DomainError(
            "INVALID", f"{field} must be one of {[p.value for p in OAuthProvider]}, not {value!r}.", field
        ) from None


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# -- the authorization-code flow -------------------------------------------------------------------------------


async def email_account_oauth_start(
    ctx: Context, provider: Any, email_account_id: uuid.UUID | None, *, base_url: str | None
) -> str:
    """The consent URL for a new `provider` mailbox, or to re-authorize `email_account_id` (an OAuth account of
    that provider). `base_url`: this service's address as the request reached it (BANXWAY_PUBLIC_URL wins)."""
    viewer = ctx.require(Permission.ORG_MANAGE)
    chosen = _provider(provider)
    account = None
    if email_account_id is not None:
        account = await get_or_error(
            ctx.db.session, EmailAccount, email_account_id, "emailAccountId", label="email account"
        )
        if account.auth_method != EmailAuthMethod.OAUTH:
            raise DomainError(
                "INVALID",
                "This email account logs in with a password, not OAuth: update its password instead.",
                "emailAccountId",
            )
        if account.oauth_provider != chosen.value:
            raise DomainError(
                "INVALID", f"This email account is a {account.oauth_provider} mailbox, not {chosen.value}.", "provider"
            )
    client = client_for(ctx.settings, chosen)
    if client is None:
        variable = f"BANXWAY_{chosen.value}_CLIENT_ID and BANXWAY_{chosen.value}_CLIENT_SECRET"
        raise DomainError(
            "NOT_CONFIGURED", f"{chosen.value} mailboxes are not configured on this server ({variable}).", "provider"
        )
    root = (ctx.settings.public_url or base_url or "http://127.0.0.1:8000").rstrip("/")
    redirect_uri = f"{root}/oauth/{chosen.value.lower()}/callback"
    state = provider_oauth.new_state()
    verifier, challenge = provider_oauth.pkce_pair()
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        # housekeeping: the organization's authorizations that can no longer be completed
        await session.execute(
            delete(EmailOAuthState).where(
                EmailOAuthState.organization_id == viewer.organization_id, EmailOAuthState.expires_at < now
            )
        )
        session.add(
            EmailOAuthState(
                organization_id=viewer.organization_id,
                state_hash=_hash(state),
                code_verifier=ctx.box.encrypt(verifier),
                provider=chosen.value,
                redirect_uri=redirect_uri,
                user_id=viewer.user_id,
                email_account_id=account.id if account is not None else None,
                expires_at=now + STATE_LIFETIME,
            )
        )
    return provider_oauth.authorization_url(
        client,
        state=state,
        code_challenge=challenge,
        redirect_uri=redirect_uri,
        login_hint=account.email if account is not None else None,
    )


@dataclass(frozen=True)
class _Pending:
    organization_id: uuid.UUID
    user_id: uuid.UUID
    provider: OAuthProvider
    redirect_uri: str
    code_verifier: str
    email_account_id: uuid.UUID | None


async def _claim(state: AppState, provider: OAuthProvider, state_value: str) -> _Pending:
    """Use up the pending authorization `state_value` names; CallbackRefused when it cannot be used (a state of
    another provider is used up all the same: single use, whatever happens next)."""
    now = datetime.now(UTC)
    refusal: str | None = None
    async with system_session(state.sessionmaker) as session, session.begin():
        pending = await session.scalar(
            select(EmailOAuthState).where(EmailOAuthState.state_hash == _hash(state_value)).with_for_update()
        )
        if pending is None:
            raise CallbackRefused("Unknown state: this authorization was not started here (or was cleaned up).")
        if pending.used_at is not None:
            raise CallbackRefused("This authorization was used already: start again from Banxway.")
        if pending.expires_at <= now:
            minutes = int(STATE_LIFETIME.total_seconds() // 60)
            raise CallbackRefused(f"This authorization expired (after {minutes} minutes): start again from Banxway.")
        pending.used_at = now
        if pending.provider != provider.value:
            refusal = f"This authorization was started for {pending.provider}, not {provider.value}."
        claimed = _Pending(
            pending.organization_id,
            pending.user_id,
            provider,
            pending.redirect_uri,
            state.box.decrypt(pending.code_verifier),
            pending.email_account_id,
        )
    if refusal is not None:
        raise CallbackRefused(refusal)
    return claimed


async def _admin_context(state: AppState, pending: _Pending) -> Context:
    """The admin who started the authorization, as they are now: still active, still allowed to manage."""
    async with system_session(state.sessionmaker) as session:
        user = await session.scalar(
            select(User).where(User.id == pending.user_id, User.organization_id == pending.organization_id)
        )
    if user is None or not user.active:
        raise CallbackRefused("The user who started this authorization no longer exists or is deactivated.")
    viewer = Viewer(user.id, user.organization_id, user.role, user.email, user.name, user.session_version)
    if not viewer.can(Permission.ORG_MANAGE):
        raise CallbackRefused(
            f"The user who started this authorization (role {user.role.name}) may not manage mailboxes."
        )
    return Context(state, viewer_or_none=viewer)


async def oauth_callback(state: AppState, provider_name: str, params: Mapping[str, str]) -> EmailAccount:
    """Complete an authorization (the provider redirected the admin's browser here with `code` and `state`).
    Raises CallbackRefused (nothing stored but the state's use)."""
    try:
        provider = OAuthProvider(provider_name.upper())
    except ValueError:
        raise CallbackRefused(f"Unknown provider {provider_name!r}.") from None
    state_value, code = params.get("state"), params.get("code")
    if not state_value:
        raise CallbackRefused("The callback has no state.")
    pending = await _claim(state, provider, state_value)
    if params.get("error"):  # the admin declined, or the provider refused (RFC 6749 4.1.2.1)
        words = params.get("error_description") or ""
        raise CallbackRefused(f"{provider.value} did not authorize: {params['error']} {words}".strip())
    if not code:
        raise CallbackRefused("The callback has no code.")
    client = client_for(state.settings, provider)
    if client is None:
        raise CallbackRefused(f"{provider.value} mailboxes are not configured on this server.")
    ctx = await _admin_context(state, pending)
    try:
        try:
            tokens = await provider_oauth.exchange_code(
                client, code=code, code_verifier=pending.code_verifier, redirect_uri=pending.redirect_uri
            )
        except provider_oauth.OAuthError as exc:
            raise CallbackRefused(f"{client.provider} refused the authorization code: {exc}") from exc
        address = v.email(tokens.email, "email") if tokens.email else None
        if address is None:
            raise CallbackRefused(f"{client.provider} did not say which mailbox this is (no email in the id_token).")
        try:
            return await _store(ctx, pending, address, tokens)
        except IntegrityError:
            # another callback connected this address meanwhile (two consent tabs, a double click): the row it
            # added was invisible to our SELECT ... FOR UPDATE. Now it is there: this one re-authorizes it.
            log.info("OAuth mailbox connected concurrently; re-authorizing it", provider=provider.value)
            try:
                return await _store(ctx, pending, address, tokens)
            except IntegrityError:
                raise CallbackRefused(
                    f"{address} was being connected at the same time: check the email accounts, or try again."
                ) from None
    finally:
        await ctx.aclose()


def _token_values(ctx: Context | SystemContext, tokens: provider_oauth.Tokens) -> dict[str, Any]:
    values: dict[str, Any] = {
        "oauth_access_token": ctx.box.encrypt(tokens.access_token),
        "oauth_token_expires_at": tokens.expires_at,
    }
    if tokens.refresh_token:
        values["oauth_refresh_token"] = ctx.box.encrypt(tokens.refresh_token)
    return values


async def _store(ctx: Context, pending: _Pending, address: str, tokens: provider_oauth.Tokens) -> EmailAccount:
    provider = pending.provider
    async with ctx.transaction() as session:
        if pending.email_account_id is not None:
            account = await session.scalar(
                select(EmailAccount).where(EmailAccount.id == pending.email_account_id).with_for_update()
            )
            if account is None:
                raise CallbackRefused("The email account to re-authorize was deleted meanwhile.")
            if account.email.lower() != address:
                raise CallbackRefused(
                    f"You signed in as {address}, but this account is {account.email}: sign in as {account.email}."
                )
        else:
            account = await session.scalar(select(EmailAccount).where(EmailAccount.email == address).with_for_update())
            if account is not None and (
                account.auth_method != EmailAuthMethod.OAUTH or account.oauth_provider != provider.value
            ):
                raise CallbackRefused(
                    f"This organization already has an account for {address} (not by {provider.value} OAuth)."
                )
        if account is None:
            values = {
                "name": address,
                "email": address,
                "imap_username": address,
                "imap_folder": "INBOX",
                "smtp_username": address,
                "auth_method": EmailAuthMethod.OAUTH.value,
                "oauth_provider": provider.value,
                "status": EmailAccountStatus.ACTIVE.value,
                **_servers(ctx.settings, provider),
            }
            account = EmailAccount(organization_id=pending.organization_id, **values, **_token_values(ctx, tokens))
            session.add(account)
            await session.flush()
            ctx.record(session, EmailAccountCreated(email_account_id=account.id))
            await audit_change(
                ctx,
                session,
                action="emailAccountCreate",
                target=to_global_id("EmailAccount", account.id),
                after={**values, "oauth_refresh_token": True},
                channel="OAUTH",
            )
            log.info("OAuth mailbox connected", account=str(account.id), provider=provider.value)
            return account
        before = {"status": account.status, "last_error": account.last_error}
        for name, value in _token_values(ctx, tokens).items():
            setattr(account, name, value)
        account.status = EmailAccountStatus.ACTIVE.value
        account.last_error = None
        changed = ["oauth_refresh_token", "status"] if before["status"] != account.status else ["oauth_refresh_token"]
        ctx.record(session, EmailAccountUpdated(email_account_id=account.id, changed=changed))
        await audit_change(
            ctx,
            session,
            action="emailAccountUpdate",
            target=to_global_id("EmailAccount", account.id),
            before=before,
            after={"status": account.status, "last_error": None, "oauth_refresh_token": "changed"},
            channel="OAUTH",
        )
        log.info("OAuth mailbox re-authorized", account=str(account.id), provider=provider.value)
        return account


# -- access tokens -----------------------------------------------------------------------------------------------


def _fresh(account: EmailAccount, now: datetime) -> bool:
    expires_at = account.oauth_token_expires_at
    return account.oauth_access_token is not None and expires_at is not None and expires_at - now > REFRESH_MARGIN


async def access_token(ctx: Context | SystemContext, account: EmailAccount) -> str | None:
    """The access token `account` logs in with (None for a password account), refreshed first when less than
    REFRESH_MARGIN is left. Raises ReauthorizationRequired or TokenUnavailable."""
    if account.auth_method != EmailAuthMethod.OAUTH:
        return None
    if account.status == EmailAccountStatus.REAUTHORIZATION_REQUIRED:
        raise ReauthorizationRequired(_reauthorization_words(account))
    if _fresh(account, datetime.now(UTC)):
        assert account.oauth_access_token is not None
        return ctx.box.decrypt(account.oauth_access_token)
    return await refresh_access_token(ctx.state, account.id)


async def refresh_access_token(state: AppState, account_id: uuid.UUID, *, force: bool = False) -> str:
    """Refresh the account's access token unless another process just did (`force`: even so); store it (and a
    rotated refresh token). Raises ReauthorizationRequired (status set, admins told once) or TokenUnavailable."""
    async with system_session(state.sessionmaker) as session:
        organization_id = await session.scalar(
            select(EmailAccount.organization_id).where(EmailAccount.id == account_id)
        )
    if organization_id is None:
        raise TokenUnavailable("The email account no longer exists.")
    ctx = SystemContext(state, organization_id)
    outcome: str | Exception
    async with ctx.transaction() as session:
        # the row lock makes concurrent refreshes (the poller, a send, IDLE) wait for one call to the provider
        account = await session.get(EmailAccount, account_id, with_for_update=True)
        if account is None or account.auth_method != EmailAuthMethod.OAUTH:
            raise TokenUnavailable("The email account no longer logs in with OAuth.")
        if account.status == EmailAccountStatus.REAUTHORIZATION_REQUIRED:
            raise ReauthorizationRequired(_reauthorization_words(account))
        if not force and _fresh(account, datetime.now(UTC)):
            assert account.oauth_access_token is not None
            return ctx.box.decrypt(account.oauth_access_token)
        outcome = await _refresh_locked(ctx, session, account)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def _refresh_locked(ctx: SystemContext, session: Any, account: EmailAccount) -> str | Exception:
    """The refresh itself, in the locked row's transaction: the new token, or the exception to raise after the
    transaction committed what the failure changed (status, last_error, the notification)."""
    provider = OAuthProvider(account.oauth_provider or OAuthProvider.GOOGLE.value)
    client = client_for(ctx.settings, provider)
    if client is None:
        account.last_error = f"{provider.value} OAuth is not configured on this server: the token cannot be refreshed."
        return TokenUnavailable(account.last_error)
    if not account.oauth_refresh_token:
        return await _needs_reauthorization(ctx, session, account, "no refresh token is stored")
    try:
        tokens = await provider_oauth.refresh(client, ctx.box.decrypt(account.oauth_refresh_token))
    except provider_oauth.OAuthError as exc:
        if exc.transient:
            account.last_error = f"The access token could not be refreshed (will retry): {exc}"[:2000]
            log.warning("OAuth refresh failed, will retry", account=str(account.id), error=str(exc))
            return TokenUnavailable(account.last_error)
        return await _needs_reauthorization(ctx, session, account, f"{client.provider} said {exc}")
    for name, value in _token_values(ctx, tokens).items():
        setattr(account, name, value)
    log.info("OAuth access token refreshed", account=str(account.id), rotated=tokens.refresh_token is not None)
    return tokens.access_token


async def _needs_reauthorization(
    ctx: SystemContext, session: Any, account: EmailAccount, reason: str
) -> ReauthorizationRequired:
    account.status = EmailAccountStatus.REAUTHORIZATION_REQUIRED.value
    words = f"The mailbox {account.email} needs to be authorized again (emailAccountOAuthStart with its id): {reason}"
    account.last_error = f"login: {words}"[:2000]
    account.oauth_access_token = None
    account.oauth_token_expires_at = None
    ctx.record(session, EmailAccountUpdated(email_account_id=account.id, changed=["status"]))
    await _notify_admins(
        session,
        account.organization_id,
        f"The mailbox {account.email} must be authorized again ({reason}); until then no mail is read from it or "
        "sent through it. Reauthorize it in the email account settings.",
    )
    log.warning("OAuth mailbox needs reauthorization", account=str(account.id), reason=reason)
    return ReauthorizationRequired(_reauthorization_words(account))


async def _notify_admins(session: Any, organization_id: uuid.UUID, summary: str) -> None:
    """An INTEGRATION_TOKEN_FAILED notification to each active admin of the organization (`notify`: in app and by
    email as each admin asked)."""
    admins = await session.scalars(
        select(User.id).where(User.organization_id == organization_id, User.role == Role.ADMIN, User.active.is_(True))
    )
    await notify(
        session,
        None,
        list(admins),
        NotificationType.INTEGRATION_TOKEN_FAILED,
        summary,
        actor_id=None,
        organization_id=organization_id,
    )


# -- what IMAP and SMTP callers await ------------------------------------------------------------------------------


async def imap_config_for(ctx: Context | SystemContext, account: EmailAccount) -> imap.ImapConfig:
    """The account's IMAP settings with a fresh access token (OAuth) or its password. An OAuth account that cannot
    log in now raises imap.ImapError at the login step (transient unless it needs reauthorization)."""
    try:
        token = await access_token(ctx, account)
    except ReauthorizationRequired as exc:
        raise imap.ImapError("login", str(exc), transient=False) from exc
    except TokenUnavailable as exc:
        raise imap.ImapError("login", str(exc), transient=True) from exc
    return imap_config(account, ctx.box, ctx.settings, access_token=token)


async def smtp_config_for(ctx: Context | SystemContext, account: EmailAccount) -> smtp.SmtpConfig:
    """The account's SMTP settings with a fresh access token (OAuth) or its password. An OAuth account that cannot
    log in now raises smtp.PermanentSendError (reauthorization needed) or smtp.TransientSendError."""
    try:
        token = await access_token(ctx, account)
    except ReauthorizationRequired as exc:
        raise smtp.PermanentSendError(None, str(exc), "auth") from exc
    except TokenUnavailable as exc:
        raise smtp.TransientSendError(None, str(exc), "auth") from exc
    return smtp_config(account, ctx.box, ctx.settings, access_token=token)
