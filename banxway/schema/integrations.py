"""WhatsApp/SMS/voice integrations, their numbers and templates, channel readiness, and calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from banxway import db
from banxway.resolvers import calls as call_use_cases
from banxway.resolvers import integrations as use_cases
from banxway.resolvers import meta_accounts as meta_use_cases
from banxway.schema.enums import Channel
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, given
from banxway.schema.messages import Message
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, related
from banxway.schema.users import User

IntegrationType = strawberry.enum(db.IntegrationType)
IntegrationError, IntegrationErrorCode = error_type("Integration", ["INVALID", "NOT_FOUND", "TAKEN"])
CallError, CallErrorCode = error_type("Call", ["INVALID", "NOT_FOUND", "INVALID_TRANSITION"])


@strawberry.type(description="An address to paste into the provider's console.")
class WebhookUrl:
    purpose: str
    url: str


@strawberry.type(description="A number of an integration, and the channels it serves.")
class PhoneNumber(Node):
    id: strawberry.ID = _id_field("PhoneNumber")
    number: str
    label: str | None

    is_type_of = _model_type_of(db.PhoneNumber)

    @strawberry.field
    def channels(self) -> list[Channel]:  # type: ignore[valid-type]
        return [db.Channel(c) for c in self.channels]  # type: ignore[attr-defined]

    @strawberry.field(description="The user whose messages and calls use this number.")
    def assignee(self, info: Ctx) -> User | None:
        return related(self, info, "assignee", "user_by_id", self.assignee_id)  # type: ignore[attr-defined]


@strawberry.type(
    description="An approved WhatsApp template: the only thing that may be sent outside the 24-hour window."
)
class WhatsAppTemplate:
    name: str
    language: str
    body: str = strawberry.field(description="With {{1}}, {{2}}, … where the parameters go.")
    category: str
    parameter_count: int
    provider: IntegrationType  # type: ignore[valid-type]


@strawberry.type(description="A META integration's own settings; the app secret and verify token are never shown.")
class MetaSettings:
    instagram_account_id: str | None
    token_expires_at: datetime | None = strawberry.field(description="When the page access token expires.")
    token_refreshed_at: datetime | None = strawberry.field(description="When the scheduler last renewed it.")
    token_error: str | None = strawberry.field(description="Why the last renewal failed (null: it worked).")


@strawberry.type(description="A WhatsApp/SMS/voice provider account; the API token is never shown.")
class Integration(Node):
    id: strawberry.ID = _id_field("Integration")
    type: IntegrationType  # type: ignore[valid-type]
    account_sid: str
    api_key: str | None
    base_url: str
    active: bool
    ip_allowlist: list[str] = strawberry.field(
        description="Exotel: addresses allowed to call the webhooks (empty: any)."
    )
    previous_webhook_token_expires_at: datetime | None = strawberry.field(
        description="Until when the webhook URLs from before the last rotation still work."
    )
    last_tested_at: datetime | None
    last_error: str | None = strawberry.field(description="What the provider said at the last failed test.")
    created_at: datetime

    is_type_of = _model_type_of(db.Integration)

    @strawberry.field(description="META: the Instagram account and the page token's state; null for others.")
    async def meta(self, info: Ctx) -> MetaSettings | None:
        if self.type != db.IntegrationType.META:
            return None
        row = await meta_use_cases.meta_settings(info.context, self.id)
        if row is None:
            return None
        return MetaSettings(
            instagram_account_id=row.instagram_account_id,
            token_expires_at=row.token_expires_at,
            token_refreshed_at=row.token_refreshed_at,
            token_error=row.token_error,
        )

    @strawberry.field(description="The URLs to configure in the provider's console.")
    def webhook_urls(self, info: Ctx) -> list[WebhookUrl]:
        base = str(info.context.request.base_url) if info.context.request is not None else None
        return [
            WebhookUrl(purpose=p, url=u)
            for p, u in use_cases.webhook_urls(info.context.settings, self, base)  # type: ignore[arg-type]
        ]

    @strawberry.field
    async def phone_numbers(self, info: Ctx) -> list[PhoneNumber]:
        return await info.context.loaders.phone_numbers_by_integration_id.load(self.id)  # type: ignore[attr-defined,return-value]

    @strawberry.field
    def whatsapp_templates(self) -> list[WhatsAppTemplate]:
        return [
            WhatsAppTemplate(
                name=t["name"],
                language=t["language"],
                body=t["body"],
                category=t["category"],
                parameter_count=use_cases.template_parameter_count(t["body"]),
                provider=self.type,
            )
            for t in self.whatsapp_templates  # type: ignore[attr-defined]
        ]


@strawberry.type(description="Whether a channel can send and receive, and what is missing if not.")
class ChannelStatus:
    channel: Channel  # type: ignore[valid-type]
    ready: bool
    missing: list[str]


@strawberry.input
class PhoneNumberInput:
    number: str
    channels: list[Channel]  # type: ignore[valid-type]
    label: str | None = None


@strawberry.input
class WhatsAppTemplateInput:
    name: str
    language: str
    body: str
    category: str | None = None
    content_sid: str | None = strawberry.field(default=None, description="Twilio: the template's Content SID.")


@strawberry.input(description="Creates the organization's integration of `type`, or changes the fields given.")
class IntegrationConfigureInput:
    type: IntegrationType  # type: ignore[valid-type]
    account_sid: str | None = None
    api_key: str | None = strawberry.field(default=None, description="Exotel: the API key. Twilio: optional key SID.")
    api_token: str | None = strawberry.field(default=None, description="Stored encrypted; never shown again.")
    base_url: str | None = strawberry.field(
        default=None, description="The API's address (regional hosts, a test server); default the provider's."
    )
    ip_allowlist: list[str] | None = None
    phone_numbers: list[PhoneNumberInput] | None = strawberry.field(
        default=None, description="Replaces the integration's numbers (assignments of numbers that stay are kept)."
    )
    whatsapp_templates: list[WhatsAppTemplateInput] | None = None
    active: bool | None = None
    app_secret: str | None = strawberry.field(
        default=None, description="META: the app secret that signs webhooks (X-Hub-Signature-256); stored encrypted."
    )
    verify_token: str | None = strawberry.field(
        default=None, description="META: the verify token of the webhook subscription handshake; stored encrypted."
    )
    instagram_account_id: str | None = strawberry.field(
        default=None, description="META: the Instagram professional account linked to the page (Instagram messages)."
    )


@strawberry.input
class IntegrationIdInput:
    id: strawberry.ID


@strawberry.input
class PhoneNumberAssignInput:
    phone_number_id: strawberry.ID
    user_id: strawberry.ID | None = strawberry.field(default=None, description="null: unassign.")


@strawberry.input(description="Call a contact: rings `agentNumber` first, then connects the contact (recorded).")
class CallStartInput:
    agent_number: str
    thread_id: strawberry.ID | None = None
    contact_id: strawberry.ID | None = strawberry.field(default=None, description="Without threadId: a new thread.")


@strawberry.type
class IntegrationPayload:
    integration: Integration | None = None
    user_errors: list[IntegrationError]  # type: ignore[valid-type]

    @strawberry.field(description="The URLs to paste into the provider's console.")
    def webhook_urls(self, info: Ctx) -> list[WebhookUrl]:
        return Integration.webhook_urls(self.integration, info) if self.integration is not None else []  # type: ignore[arg-type]


@strawberry.type
class IntegrationTestPayload:
    ok: bool = False
    detail: str = ""
    integration: Integration | None = None
    user_errors: list[IntegrationError]  # type: ignore[valid-type]


@strawberry.type
class PhoneNumberPayload:
    phone_number: PhoneNumber | None = None
    user_errors: list[IntegrationError]  # type: ignore[valid-type]


@strawberry.type
class CallPayload:
    message: Message | None = None
    user_errors: list[CallError]  # type: ignore[valid-type]


def _fields(input: IntegrationConfigureInput) -> dict[str, Any]:
    values = {name: value for name, value in vars(input).items() if given(value)}
    if input.phone_numbers is not None:
        values["phone_numbers"] = [vars(n) for n in input.phone_numbers]
    if input.whatsapp_templates is not None:
        values["whatsapp_templates"] = [vars(t) for t in input.whatsapp_templates]
    return values


@strawberry.type
class IntegrationQuery:
    @strawberry.field(description="The organization's WhatsApp/SMS/voice integrations (admins).")
    async def integrations(self, info: Ctx) -> list[Integration]:
        return await use_cases.integrations(info.context)  # type: ignore[return-value]

    @strawberry.field(description="The organization's phone numbers, and who they are assigned to.")
    async def phone_numbers(self, info: Ctx) -> list[PhoneNumber]:
        return await use_cases.phone_numbers(info.context)  # type: ignore[return-value]

    @strawberry.field(description="Approved WhatsApp templates (for messageSend's template).")
    async def whatsapp_templates(self, info: Ctx) -> list[WhatsAppTemplate]:
        return [WhatsAppTemplate(**vars(t)) for t in await use_cases.whatsapp_templates(info.context)]

    @strawberry.field(description="Each customer channel: ready to send and receive, or what is missing.")
    async def configuration_status(self, info: Ctx) -> list[ChannelStatus]:
        return [ChannelStatus(**vars(s)) for s in await use_cases.configuration_status(info.context)]


@strawberry.type
class IntegrationMutation:
    @strawberry.mutation(description="Create or change the Exotel or Twilio integration; lists the webhook URLs.")
    async def integration_configure(self, info: Ctx, input: IntegrationConfigureInput) -> IntegrationPayload:
        async def call() -> dict:
            return {"integration": await use_cases.integration_configure(info.context, _fields(input))}

        return await mutate(IntegrationPayload, IntegrationError, IntegrationErrorCode, call)

    @strawberry.mutation(description="Call the provider with the stored credentials and say what it answered.")
    async def integration_test(self, info: Ctx, input: IntegrationIdInput) -> IntegrationTestPayload:
        async def call() -> dict:
            integration_id = decode(input.id, "Integration", "id")
            ok, detail = await use_cases.integration_test(info.context, integration_id)
            integration = await use_cases.integration(info.context, integration_id)
            return {"ok": ok, "detail": detail, "integration": integration}

        return await mutate(IntegrationTestPayload, IntegrationError, IntegrationErrorCode, call)

    @strawberry.mutation(description="New webhook URLs; the old ones keep working for 7 days.")
    async def integration_rotate_webhook_token(self, info: Ctx, input: IntegrationIdInput) -> IntegrationPayload:
        async def call() -> dict:
            integration_id = decode(input.id, "Integration", "id")
            return {"integration": await use_cases.integration_rotate_webhook_token(info.context, integration_id)}

        return await mutate(IntegrationPayload, IntegrationError, IntegrationErrorCode, call)

    @strawberry.mutation(description="Give a number to a user, or take it back (userId null).")
    async def phone_number_assign(self, info: Ctx, input: PhoneNumberAssignInput) -> PhoneNumberPayload:
        async def call() -> dict:
            number_id = decode(input.phone_number_id, "PhoneNumber", "phoneNumberId")
            user_id = decode(input.user_id, "User", "userId") if input.user_id is not None else None
            return {"phone_number": await use_cases.phone_number_assign(info.context, number_id, user_id)}

        return await mutate(PhoneNumberPayload, IntegrationError, IntegrationErrorCode, call)

    @strawberry.mutation(description="Call a contact through Exotel; the call is a VOICE message of the thread.")
    async def call_start(self, info: Ctx, input: CallStartInput) -> CallPayload:
        async def call() -> dict:
            message = await call_use_cases.call_start(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId") if input.thread_id is not None else None,
                contact_id=decode(input.contact_id, "Contact", "contactId") if input.contact_id is not None else None,
                agent_number=input.agent_number,
            )
            return {"message": message}

        return await mutate(CallPayload, CallError, CallErrorCode, call)
