"""Email accounts, their test, and the quarantine: queries and mutations (admins: ORG_MANAGE)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from banxway import db
from banxway.enums import EmailAccountStatus, EmailAuthMethod, MailSecurity, OAuthProvider
from banxway.resolvers import email as email_use_cases
from banxway.resolvers import email_oauth as oauth_use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, given
from banxway.schema.messages import Message
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, related
from banxway.schema.pagination import Connection, connection

MailSecurity = strawberry.enum(MailSecurity, name="MailSecurity", description="NONE, STARTTLS, or TLS from the start.")
EmailAccountError, EmailAccountErrorCode = error_type("EmailAccount", ["INVALID", "NOT_FOUND", "TAKEN"])
EmailAuthMethod = strawberry.enum(
    EmailAuthMethod, name="EmailAuthMethod", description="PASSWORD (IMAP LOGIN, SMTP AUTH) or OAUTH (XOAUTH2)."
)
OAuthProvider = strawberry.enum(
    OAuthProvider, name="OAuthProvider", description="A mailbox provider that connects with OAuth 2.0."
)
EmailAccountStatus = strawberry.enum(
    EmailAccountStatus,
    name="EmailAccountStatus",
    description="ACTIVE, or REAUTHORIZATION_REQUIRED: the OAuth grant is gone and nothing is read or sent until an "
    "admin authorizes the mailbox again (emailAccountOAuthStart with its id).",
)
EmailAccountOAuthStartError, EmailAccountOAuthStartErrorCode = error_type(
    "EmailAccountOAuthStart", ["INVALID", "NOT_FOUND", "NOT_CONFIGURED"]
)


@strawberry.type(description="A mailbox read over IMAP and sent from over SMTP; passwords are never shown.")
class EmailAccount(Node):
    id: strawberry.ID = _id_field("EmailAccount")
    name: str
    email: str
    from_name: str | None
    signature: str | None
    imap_host: str
    imap_port: int
    imap_security: MailSecurity  # type: ignore[valid-type]
    imap_username: str
    imap_folder: str
    smtp_host: str
    smtp_port: int
    smtp_security: MailSecurity  # type: ignore[valid-type]
    smtp_username: str | None
    active: bool
    last_polled_at: datetime | None
    last_error: str | None = strawberry.field(description="Why the last poll failed, in the server's words.")
    auth_method: EmailAuthMethod  # type: ignore[valid-type]
    oauth_provider: OAuthProvider | None = strawberry.field(  # type: ignore[valid-type]
        description="The provider of an OAUTH account (its tokens are never shown)."
    )
    status: EmailAccountStatus  # type: ignore[valid-type]
    created_at: datetime

    @strawberry.field(description="When the current OAuth access token expires (it is refreshed before use).")
    def token_expires_at(self) -> datetime | None:
        return self.oauth_token_expires_at  # type: ignore[attr-defined]

    is_type_of = _model_type_of(db.EmailAccount)


@strawberry.type(
    description="A mail that could not be stored, kept for an admin (with its raw bytes unless too large)."
)
class QuarantinedEmail(Node):
    id: strawberry.ID = _id_field("QuarantinedEmail")
    uid: int | None
    size: int
    error: str
    reprocessed_at: datetime | None
    created_at: datetime

    is_type_of = _model_type_of(db.EmailQuarantine)

    @strawberry.field
    def account(self, info: Ctx) -> EmailAccount | None:
        return related(self, info, "account", "email_account_by_id", self.account_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The message it became when reprocessed.")
    def message(self, info: Ctx) -> Message | None:
        return related(self, info, "message", "message_by_id", self.message_id)  # type: ignore[attr-defined]


@strawberry.type(description="One step of emailAccountTest, in the server's own words.")
class EmailTestStep:
    protocol: str
    step: str
    ok: bool
    detail: str


@strawberry.input
class EmailAccountCreateInput:
    name: str
    email: str
    imap_host: str
    imap_port: int
    imap_security: MailSecurity  # type: ignore[valid-type]
    imap_username: str
    imap_password: str
    smtp_host: str
    smtp_port: int
    smtp_security: MailSecurity  # type: ignore[valid-type]
    imap_folder: str = "INBOX"
    smtp_username: str | None = None
    smtp_password: str | None = None
    from_name: str | None = None
    signature: str | None = None


@strawberry.input(description="Only the fields given change; a password is replaced, never shown.")
class EmailAccountUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    imap_host: str | None = strawberry.UNSET
    imap_port: int | None = strawberry.UNSET
    imap_security: MailSecurity | None = strawberry.UNSET  # type: ignore[valid-type]
    imap_username: str | None = strawberry.UNSET
    imap_password: str | None = strawberry.UNSET
    imap_folder: str | None = strawberry.UNSET
    smtp_host: str | None = strawberry.UNSET
    smtp_port: int | None = strawberry.UNSET
    smtp_security: MailSecurity | None = strawberry.UNSET  # type: ignore[valid-type]
    smtp_username: str | None = strawberry.UNSET
    smtp_password: str | None = strawberry.UNSET
    from_name: str | None = strawberry.UNSET
    signature: str | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input(description="Connect a Gmail or Microsoft 365 mailbox, or re-authorize one (emailAccountId).")
class EmailAccountOAuthStartInput:
    provider: OAuthProvider  # type: ignore[valid-type]
    email_account_id: strawberry.ID | None = None


@strawberry.type
class EmailAccountOAuthStartPayload:
    authorization_url: str | None = strawberry.field(
        default=None,
        description="Send the admin's browser here; the provider comes back to /oauth/{provider}/callback, which "
        "creates (or re-authorizes) the account. Valid for 10 minutes, once.",
    )
    user_errors: list[EmailAccountOAuthStartError]  # type: ignore[valid-type]


@strawberry.input
class EmailAccountIdInput:
    id: strawberry.ID


@strawberry.type
class EmailAccountPayload:
    email_account: EmailAccount | None = None
    user_errors: list[EmailAccountError]  # type: ignore[valid-type]


@strawberry.type
class EmailAccountDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[EmailAccountError]  # type: ignore[valid-type]


@strawberry.type
class EmailAccountTestPayload:
    ok: bool = False
    steps: list[EmailTestStep] = strawberry.field(default_factory=list)
    user_errors: list[EmailAccountError]  # type: ignore[valid-type]


@strawberry.type
class EmailQuarantinePayload:
    quarantined: QuarantinedEmail | None = None
    message: Message | None = None
    user_errors: list[EmailAccountError]  # type: ignore[valid-type]


def _given(input: Any, skip: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """{field: value} of the input fields that were given (null included)."""
    return {name: value for name, value in vars(input).items() if name not in skip and given(value)}


@strawberry.type
class EmailQuery:
    @strawberry.field(description="The organization's email accounts (admins).")
    async def email_accounts(self, info: Ctx) -> list[EmailAccount]:
        return await email_use_cases.email_accounts(info.context)  # type: ignore[return-value]

    @strawberry.field(description="Mail that could not be stored, newest first (admins).")
    async def email_quarantine(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> Connection[QuarantinedEmail]:
        return connection(await email_use_cases.quarantine_page(info.context, first=first, after=after))


@strawberry.type
class EmailMutation:
    @strawberry.mutation(description="Add a mailbox to read (IMAP) and send from (SMTP); passwords are encrypted.")
    async def email_account_create(self, info: Ctx, input: EmailAccountCreateInput) -> EmailAccountPayload:
        async def call() -> dict:
            return {"email_account": await email_use_cases.email_account_create(info.context, _given(input, ()))}

        return await mutate(EmailAccountPayload, EmailAccountError, EmailAccountErrorCode, call)

    @strawberry.mutation
    async def email_account_update(self, info: Ctx, input: EmailAccountUpdateInput) -> EmailAccountPayload:
        async def call() -> dict:
            account_id = decode(input.id, "EmailAccount", "id")
            account = await email_use_cases.email_account_update(info.context, account_id, _given(input))
            return {"email_account": account}

        return await mutate(EmailAccountPayload, EmailAccountError, EmailAccountErrorCode, call)

    @strawberry.mutation(description="Delete the account; its messages stay.")
    async def email_account_delete(self, info: Ctx, input: EmailAccountIdInput) -> EmailAccountDeletePayload:
        async def call() -> dict:
            await email_use_cases.email_account_delete(info.context, decode(input.id, "EmailAccount", "id"))
            return {"deleted_id": input.id}

        return await mutate(EmailAccountDeletePayload, EmailAccountError, EmailAccountErrorCode, call)

    @strawberry.mutation(description="Log in to IMAP and SMTP and report each step.")
    async def email_account_test(self, info: Ctx, input: EmailAccountIdInput) -> EmailAccountTestPayload:
        async def call() -> dict:
            results = await email_use_cases.email_account_test(info.context, decode(input.id, "EmailAccount", "id"))
            steps = [EmailTestStep(protocol=p, step=r.step, ok=r.ok, detail=r.detail) for p, r in results]
            return {"ok": all(s.ok for s in steps), "steps": steps}

        return await mutate(EmailAccountTestPayload, EmailAccountError, EmailAccountErrorCode, call)

    @strawberry.mutation(description="Start connecting a mailbox by OAuth 2.0 (admins): the provider's consent URL.")
    async def email_account_o_auth_start(
        self, info: Ctx, input: EmailAccountOAuthStartInput
    ) -> EmailAccountOAuthStartPayload:
        async def call() -> dict:
            account_id = (
                decode(input.email_account_id, "EmailAccount", "emailAccountId")
                if input.email_account_id is not None
                else None
            )
            request = info.context.request
            base_url = str(request.base_url) if hasattr(request, "base_url") else None
            url = await oauth_use_cases.email_account_oauth_start(
                info.context, input.provider, account_id, base_url=base_url
            )
            return {"authorization_url": url}

        return await mutate(
            EmailAccountOAuthStartPayload, EmailAccountOAuthStartError, EmailAccountOAuthStartErrorCode, call
        )

    @strawberry.mutation(description="Try to store a quarantined mail again.")
    async def email_quarantine_reprocess(self, info: Ctx, input: EmailAccountIdInput) -> EmailQuarantinePayload:
        async def call() -> dict:
            item, message = await email_use_cases.quarantine_reprocess(
                info.context, decode(input.id, "QuarantinedEmail", "id")
            )
            return {"quarantined": item, "message": message}

        return await mutate(EmailQuarantinePayload, EmailAccountError, EmailAccountErrorCode, call)
