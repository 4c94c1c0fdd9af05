"""WhatsApp/SMS/voice provider integrations (Exotel, Twilio): configure, test, rotate the webhook token, their
numbers (assignable to users), WhatsApp templates, and which channels are ready (`configuration_status`).

Every change records an administration event (ORG_MANAGE subscribers only): INTEGRATION_CONFIGURED on create,
INTEGRATION_UPDATED with `changed` otherwise; assigning a number is an INTEGRATION_UPDATED of its integration
(changed `phone_numbers`: a number's assignee is part of the integration a client shows)."""

from __future__ import annotations

import functools
import ipaddress
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError

from banxway.auth import Permission
from banxway.db.models import EmailAccount, Integration, PhoneNumber
from banxway.db.session import read_object
from banxway.enums import Channel, IntegrationType
from banxway.errors import DomainError
from banxway.events import IntegrationConfigured, IntegrationUpdated
from banxway.integrations import messaging as providers
from banxway.resolvers import meta_accounts
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import active_user, get_or_error
from banxway.resolvers.inbox_events import to_global_id
from banxway.secrets import SecretBox
from banxway.settings import Settings

if TYPE_CHECKING:
    from banxway.context import Context, SystemContext

MESSAGING_CHANNELS = (Channel.WHATSAPP, Channel.SMS, Channel.VOICE)
PREVIOUS_TOKEN_VALID_FOR = timedelta(days=7)
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def webhook_url(settings: Settings, integration: Integration, path: str, base: str | None = None) -> str:
    root = settings.public_url or (base or "http://127.0.0.1:8000").rstrip("/")
    if root.startswith("ws"):  # the request's base when read over a subscription's WebSocket
        root = "http" + root.removeprefix("ws")
    return f"{root}/webhooks/{integration.type.value.lower()}/{integration.webhook_token}/{path}"


def webhook_urls(settings: Settings, integration: Integration, base: str | None = None) -> list[tuple[str, str]]:
    return [
        (purpose, webhook_url(settings, integration, path, base))
        for purpose, path in providers.provider(integration.type).webhook_paths
    ]


def provider_config(integration: Integration, box: SecretBox, settings: Settings) -> providers.ProviderConfig:
    return providers.ProviderConfig(
        type=integration.type,
        base_url=integration.base_url,
        account_sid=integration.account_sid,
        api_key=integration.api_key,
        api_token=box.decrypt(integration.api_token),
        timeout=settings.provider_timeout_seconds,
        public_only=not settings.allow_private_provider_urls,
    )


def template_parameter_count(body: str) -> int:
    return max((int(n) for n in _PLACEHOLDER.findall(body)), default=0)


def render_template(body: str, parameters: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: parameters[int(m.group(1)) - 1], body)


def _base_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise DomainError("INVALID", f"'{value}' is not an http:// or https:// address.", "baseUrl")
    return url


async def refuse_private_address(url: str) -> None:
    """A provider is on the internet: a baseUrl on a loopback, private, link-local (cloud metadata) or otherwise
    reserved address — as written or as its name resolves now — would make our server call its own network on an
    admin's behalf (issue 16, item 5). BANXWAY_ALLOW_PRIVATE_PROVIDER_URLS allows it (tests, stand-ins)."""
    await v.refuse_private_url(url, "baseUrl", "a provider's API is on the internet")


def _allowlist(values: list[str]) -> list[str]:
    cleaned = []
    for index, value in enumerate(values):
        try:
            cleaned.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise DomainError(
                "INVALID", f"'{value}' is not an IP address or network.", f"ipAllowlist.{index}"
            ) from None
    return cleaned


def _templates(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    seen = set()
    for index, value in enumerate(values):
        field = f"whatsappTemplates.{index}"
        name = (value.get("name") or "").strip()
        if not _TEMPLATE_NAME.match(name):
            raise DomainError("INVALID", "A template name has lower-case letters, digits and _.", f"{field}.name")
        language = (value.get("language") or "").strip()
        if not _LANGUAGE.match(language):
            raise DomainError("INVALID", f"'{language}' is not a language code like en or en_US.", f"{field}.language")
        body = v.text(value.get("body"), f"{field}.body", max_length=1024, required=True) or ""
        if (name, language) in seen:
            raise DomainError("TAKEN", f"Template {name} ({language}) is listed twice.", f"{field}.name")
        seen.add((name, language))
        count = template_parameter_count(body)
        if sorted({int(n) for n in _PLACEHOLDER.findall(body)}) != list(range(1, count + 1)):
            raise DomainError("INVALID", "Placeholders must be numbered {{1}}, {{2}}, … without gaps.", f"{field}.body")
        cleaned.append(
            {
                "name": name,
                "language": language,
                "body": body,
                "category": (value.get("category") or "UTILITY").strip().upper()[:30],
                "content_sid": (value.get("content_sid") or None),
            }
        )
    return cleaned


def _numbers(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned, seen = [], set()
    for index, value in enumerate(values):
        number = v.phone(value.get("number"), f"phoneNumbers.{index}.number")
        if number is None:
            raise DomainError("INVALID", "The number is required.", f"phoneNumbers.{index}.number")
        if number in seen:
            raise DomainError("TAKEN", f"{number} is listed twice.", f"phoneNumbers.{index}.number")
        seen.add(number)
        channels = [Channel(getattr(c, "value", c)) for c in value.get("channels") or []]
        if not channels or any(c not in MESSAGING_CHANNELS for c in channels):
            raise DomainError(
                "INVALID", "Give the number's channels: WHATSAPP, SMS and/or VOICE.", f"phoneNumbers.{index}.channels"
            )
        label = v.text(value.get("label"), f"phoneNumbers.{index}.label", max_length=200)
        cleaned.append({"number": number, "channels": [c.value for c in dict.fromkeys(channels)], "label": label})
    return cleaned


# What the audit log shows of an integration's fields: these by value; the others (credentials, templates, numbers)
# as "changed" only
_AUDITED_VALUES = ("account_sid", "base_url", "ip_allowlist", "active")


def _audited(integration: Integration, names: Iterable[str], *, values: bool = True) -> dict[str, Any]:
    return {
        name: (getattr(integration, name) if name in _AUDITED_VALUES else "changed")
        for name in names
        if values or name in _AUDITED_VALUES
    }


async def integration_configure(ctx: Context, fields: dict[str, Any]) -> Integration:
    """Create or update the organization's integration of `type`; only the fields given change."""
    viewer = ctx.require(Permission.ORG_MANAGE)
    kind = IntegrationType(getattr(fields["type"], "value", fields["type"]))
    box = ctx.box
    values: dict[str, Any] = {}
    if fields.get("account_sid") is not None:
        values["account_sid"] = v.text(fields["account_sid"], "accountSid", max_length=100, required=True)
    if fields.get("api_key") is not None:
        values["api_key"] = v.text(fields["api_key"], "apiKey", max_length=200)
    api_token = None
    if fields.get("api_token") is not None:
        api_token = fields["api_token"].strip()
        if not api_token:
            raise DomainError("INVALID", "apiToken must not be empty.", "apiToken")
        values["api_token"] = box.encrypt(api_token)
    if fields.get("base_url") is not None:
        values["base_url"] = _base_url(fields["base_url"])
        if not ctx.settings.allow_private_provider_urls:
            await refuse_private_address(values["base_url"])
    if fields.get("ip_allowlist") is not None:
        values["ip_allowlist"] = _allowlist(fields["ip_allowlist"])
    if fields.get("whatsapp_templates") is not None:
        values["whatsapp_templates"] = _templates(fields["whatsapp_templates"])
    if fields.get("active") is not None:
        values["active"] = bool(fields["active"])
    numbers = _numbers(fields["phone_numbers"]) if fields.get("phone_numbers") is not None else None
    meta_values = meta_accounts.clean(kind, fields)  # META: app secret, verify token, Instagram account
    try:
        async with ctx.transaction() as session:
            integration = await session.scalar(select(Integration).where(Integration.type == kind).with_for_update())
            if integration is None:
                for name, field in (("account_sid", "accountSid"), ("api_token", "apiToken")):
                    if name not in values:
                        raise DomainError("INVALID", f"{field} is required.", field)
                if kind == IntegrationType.EXOTEL and not values.get("api_key"):
                    raise DomainError("INVALID", "apiKey is required for Exotel.", "apiKey")
                values.setdefault("base_url", providers.provider(kind).default_base_url)
                integration = Integration(
                    organization_id=viewer.organization_id,
                    type=kind,
                    webhook_token=secrets.token_urlsafe(32),
                    **values,
                )
                session.add(integration)
                await session.flush()
                if numbers is not None:
                    await _replace_numbers(session, integration, numbers)
                if kind == IntegrationType.META:
                    await meta_accounts.store(session, box, integration, meta_values, created=True)
                ctx.record(session, IntegrationConfigured(integration_id=integration.id))
                after = _audited(integration, [*values, *(["phone_numbers"] if numbers is not None else [])])
                await audit_change(
                    ctx,
                    session,
                    action="integrationConfigure",
                    target=to_global_id("Integration", integration.id),
                    after={"type": kind.value, **after},
                )
            else:
                if "base_url" in values and values["base_url"] != integration.base_url and api_token is None:
                    # the kept token goes wherever baseUrl points: moving it needs the token again (issue 16, item 7)
                    raise DomainError(
                        "INVALID",
                        "Changing baseUrl sends the API token to another host: give apiToken again.",
                        "apiToken",
                    )
                changed = []
                before = _audited(integration, values, values=False)
                for name, value in values.items():
                    same = (
                        box.decrypt(integration.api_token) == api_token  # a new ciphertext for the same token
                        if name == "api_token"
                        else getattr(integration, name) == value
                    )
                    if not same:
                        setattr(integration, name, value)
                        changed.append(name)
                if numbers is not None and await _replace_numbers(session, integration, numbers):
                    changed.append("phone_numbers")
                if kind == IntegrationType.META:
                    changed += await meta_accounts.store(session, box, integration, meta_values, created=False)
                if changed:
                    ctx.record(session, IntegrationUpdated(integration_id=integration.id, changed=changed))
                    await audit_change(
                        ctx,
                        session,
                        action="integrationConfigure",
                        target=to_global_id("Integration", integration.id),
                        before={name: before[name] for name in changed if name in before},
                        after=_audited(integration, changed),
                    )
    except IntegrityError:
        raise DomainError("TAKEN", "One of these numbers belongs to another integration.", "phoneNumbers") from None
    return integration


async def _replace_numbers(session: Any, integration: Integration, numbers: list[dict[str, Any]]) -> bool:
    """Make the integration's numbers exactly `numbers`, keeping the assignment of those that stay;
    whether anything changed."""
    existing = {
        row.number: row
        for row in await session.scalars(select(PhoneNumber).where(PhoneNumber.integration_id == integration.id))
    }
    wanted = {n["number"] for n in numbers}
    changed = False
    for number, row in existing.items():
        if number not in wanted:
            await session.delete(row)
            changed = True
    await session.flush()
    for item in numbers:
        row = existing.get(item["number"])
        if row is None:
            session.add(PhoneNumber(organization_id=integration.organization_id, integration_id=integration.id, **item))
            changed = True
        elif (row.channels, row.label) != (item["channels"], item["label"]):
            row.channels, row.label = item["channels"], item["label"]
            changed = True
    await session.flush()
    return changed


async def integration_rotate_webhook_token(ctx: Context, integration_id: uuid.UUID | None) -> Integration:
    """A new webhook token; the old one keeps working for PREVIOUS_TOKEN_VALID_FOR, so that the provider's
    console can be updated without losing a callback."""
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        integration = await get_or_error(session, Integration, integration_id, "id", lock=True, label="integration")
        integration.previous_webhook_token = integration.webhook_token
        integration.previous_webhook_token_expires_at = datetime.now(UTC) + PREVIOUS_TOKEN_VALID_FOR
        integration.webhook_token = secrets.token_urlsafe(32)
        changed = ["webhook_urls", "previous_webhook_token_expires_at"]
        ctx.record(session, IntegrationUpdated(integration_id=integration.id, changed=changed))
        await audit_change(
            ctx,
            session,
            action="integrationRotateWebhookToken",
            target=to_global_id("Integration", integration.id),
            after={"webhook_token": "changed"},
        )
    return integration


async def integration_test(ctx: Context, integration_id: uuid.UUID | None) -> tuple[bool, str]:
    """Call the provider with the stored credentials; (ok, what it said). The result is kept on the integration;
    INTEGRATION_UPDATED is recorded only when `last_error` changed (a test that says what the last one said is
    no news)."""
    ctx.require(Permission.ORG_MANAGE)
    integration = await get_or_error(ctx.db.session, Integration, integration_id, "id", label="integration")
    config = provider_config(integration, ctx.box, ctx.settings)
    try:
        ok, detail = True, await providers.provider(integration.type).test_credentials(config)
    except providers.ProviderError as exc:
        ok, detail = False, exc.detail
    async with ctx.transaction() as session:
        row = await get_or_error(session, Integration, integration_id, "id", lock=True, label="integration")
        row.last_tested_at = datetime.now(UTC)
        last_error = None if ok else detail
        if row.last_error != last_error:
            row.last_error = last_error
            ctx.record(session, IntegrationUpdated(integration_id=row.id, changed=["last_error", "last_tested_at"]))
    return ok, detail


async def integrations(ctx: Context) -> list[Integration]:
    ctx.require(Permission.ORG_MANAGE)
    return list(await ctx.db.scalars(select(Integration).order_by(Integration.created_at, Integration.id)))


async def phone_numbers(ctx: Context) -> list[PhoneNumber]:
    ctx.require(Permission.READ)
    return list(await ctx.db.scalars(select(PhoneNumber).order_by(PhoneNumber.number)))


async def phone_number_assign(ctx: Context, number_id: uuid.UUID | None, user_id: uuid.UUID | None) -> PhoneNumber:
    """Give a number to a user (their outbound messages and calls use it), or take it back (None); records
    INTEGRATION_UPDATED of the number's integration (changed `phone_numbers`) when the assignee changed."""
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        row = await get_or_error(session, PhoneNumber, number_id, "phoneNumberId", lock=True, label="phone number")
        if user_id is not None:
            await active_user(session, user_id, "userId")
        if row.assignee_id != user_id:
            row.assignee_id = user_id
            ctx.record(session, IntegrationUpdated(integration_id=row.integration_id, changed=["phone_numbers"]))
    return row


@dataclass(frozen=True)
class TemplateView:
    name: str
    language: str
    body: str
    category: str
    parameter_count: int
    provider: IntegrationType


async def whatsapp_templates(ctx: Context) -> list[TemplateView]:
    """The approved WhatsApp templates of the organization's active integrations."""
    ctx.require(Permission.READ)
    found = []
    for integration in await ctx.db.scalars(
        select(Integration).where(Integration.active.is_(True)).order_by(Integration.created_at)
    ):
        for t in integration.whatsapp_templates:
            parameters = template_parameter_count(t["body"])
            found.append(TemplateView(t["name"], t["language"], t["body"], t["category"], parameters, integration.type))
    return found


@dataclass(frozen=True)
class ChannelReadiness:
    channel: Channel
    ready: bool
    missing: list[str]


@dataclass(frozen=True)
class Gap:
    """Something a channel lacks: `blocks_sending` when without it nothing can be sent on the channel (no account,
    no number), not when it only keeps the channel from being fully ready (a failed test, no public URL)."""

    what: str
    blocks_sending: bool


async def channel_gaps(session: Any, settings: Settings, channels: Iterable[Channel]) -> dict[Channel, list[Gap]]:
    """What each of `channels` (EMAIL, WHATSAPP, SMS, VOICE) lacks: the one definition of "configured", behind
    `configuration_status` and messageSend's CHANNEL_NOT_CONFIGURED. `session` is scoped to the organization."""
    wanted = list(dict.fromkeys(channels))
    gaps: dict[Channel, list[Gap]] = {}
    if Channel.EMAIL in wanted:
        accounts = list(await session.scalars(select(EmailAccount).where(EmailAccount.active.is_(True))))
        email = [] if accounts else [Gap("an active email account (emailAccountCreate)", True)]
        email += [Gap(f"{a.email}: {a.last_error}", False) for a in accounts if a.last_error]
        gaps[Channel.EMAIL] = email
    if any(channel in MESSAGING_CHANNELS for channel in wanted):
        active = list(
            await session.scalars(
                select(Integration).where(Integration.active.is_(True), Integration.type != IntegrationType.META)
            )
        )
        numbers = list(await session.scalars(select(PhoneNumber)))
        active_ids = {i.id for i in active}
        for channel in (c for c in wanted if c in MESSAGING_CHANNELS):
            missing = []
            if not active:
                missing.append(Gap("an active Exotel or Twilio integration (integrationConfigure)", True))
            elif channel == Channel.VOICE and not any(providers.provider(i.type).calls for i in active):
                missing.append(Gap("an Exotel integration (calls are made through Exotel)", True))
            if not any(channel.value in n.channels and n.integration_id in active_ids for n in numbers):
                missing.append(Gap(f"a phone number for {channel.name} (phoneNumbers in integrationConfigure)", True))
            for integration in active:
                if integration.last_error:
                    what = f"{integration.type.name} credentials that work (last test: {integration.last_error})"
                    missing.append(Gap(what, False))
            if not settings.public_url:
                missing.append(Gap("BANXWAY_PUBLIC_URL, so that the provider can reach the webhooks", False))
            gaps[channel] = missing
    meta_wanted = [channel for channel in wanted if channel in meta_accounts.META_CHANNELS]
    if meta_wanted:  # Messenger and Instagram: a META integration
        for channel, found in (await meta_accounts.channel_gaps(session, settings.public_url, meta_wanted)).items():
            gaps[channel] = [Gap(what, blocks) for what, blocks in found]
    return {channel: gaps[channel] for channel in wanted if channel in gaps}


async def configuration_status(ctx: Context) -> list[ChannelReadiness]:
    """For each customer channel: can messages be sent and received on it, and if not, what is missing."""
    ctx.require(Permission.READ)
    gaps = await channel_gaps(ctx.db, ctx.settings, [Channel.EMAIL, *MESSAGING_CHANNELS, *meta_accounts.META_CHANNELS])
    return [ChannelReadiness(channel, not found, [gap.what for gap in found]) for channel, found in gaps.items()]


@functools.cache
def _ready(channel: Channel) -> Any:
    """SELECT EXISTS …: when true, `channel_gaps` finds nothing blocking `channel` (a sufficient condition, not the
    definition: when false, `channel_gaps` says what is missing). None where there is no such shortcut. Built once
    per channel (building it was a tenth of `messageSend`'s own time)."""
    if channel == Channel.EMAIL:
        return select(exists().where(EmailAccount.active.is_(True)))
    if channel in (Channel.WHATSAPP, Channel.SMS):
        return select(
            exists().where(
                PhoneNumber.channels.contains([channel.value]),
                Integration.id == PhoneNumber.integration_id,
                Integration.active.is_(True),
                Integration.type != IntegrationType.META,
            )
        )
    return None


async def require_configured(ctx: Context, channel: Channel) -> None:
    """CHANNEL_NOT_CONFIGURED (field `channel`) when nothing can be sent on `channel` for the viewer's organization
    (`channel_gaps`: no email account; no active integration or number), unless the development sink takes such
    messages (BANXWAY_DEV_SINK, never in production)."""
    if ctx.settings.dev_sink_enabled:
        return
    ready = _ready(channel)
    if ready is not None and await ctx.db.scalar(ready):
        return  # one EXISTS per message; what exactly is missing is worked out only when something is
    found = await channel_gaps(ctx.db, ctx.settings, [channel])
    blocking = [gap.what for gap in found.get(channel, []) if gap.blocks_sending]
    if blocking:
        raise DomainError(
            "CHANNEL_NOT_CONFIGURED",
            f"{channel.name} is not configured for this organization: it needs {' and '.join(blocking)} "
            "(configurationStatus says what each channel lacks).",
            "channel",
        )


async def integration(ctx: Context, integration_id: uuid.UUID | None) -> Integration | None:
    """The organization's integration with this id (admins), or None."""
    ctx.require(Permission.ORG_MANAGE)
    return await ctx.db.session.get(Integration, integration_id) if integration_id is not None else None


async def integration_for_webhook(ctx: SystemContext, kind: IntegrationType, token: str) -> Integration | None:
    """The active integration of `kind` whose webhook token (or previous one, until it expires) is `token`."""
    # across organizations (the token says which), on the reads engine: one round trip where a session's read is
    # three (BEGIN, the SELECT, ROLLBACK). That pool is shared with authentication and the compiled reads (20
    # connections, each lookup holds one for ~1 ms)
    return await read_object(
        ctx.state.sessionmaker,
        ctx.state.reads,
        select(Integration).where(
            Integration.type == kind,
            Integration.active.is_(True),
            or_(
                Integration.webhook_token == token,
                (Integration.previous_webhook_token == token)
                & (Integration.previous_webhook_token_expires_at > datetime.now(UTC)),
            ),
        ),
    )
