"""Facebook Messenger and Instagram (a META integration): the webhook's account lookup and dispatch, the 24-hour
window of outbound messages (message tags outside it), watermark receipts, and the long-lived page token's refresh.

Inbound messages go through the same `inbound.receive` as WhatsApp and SMS (the contact by the sender's PSID or
IGSID on the channel, an advisory lock and the (integration, provider id) uniqueness per `mid`), delivery receipts
with message ids through `receipts.status_update`; outbound messages through the same delivery state machine
(`messaging_delivery`), so a Meta outage leaves them FAILED with Meta's words after the retries, and `messageRetry`
sends them again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from banxway.db.models import Integration, Message, MetaAccount, User
from banxway.enums import Channel, Direction, IntegrationType, MessageStatus, NotificationType, Role
from banxway.errors import DomainError
from banxway.events import IntegrationUpdated
from banxway.integrations import messaging as providers
from banxway.integrations.messaging import meta as graph
from banxway.logs import get_logger
from banxway.resolvers import inbound, receipts
from banxway.resolvers.integrations import integration_for_webhook, provider_config
from banxway.resolvers.meta_accounts import account_of
from banxway.resolvers.notifications import notify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import SystemContext

log = get_logger("banxway.meta")

MESSAGING_WINDOW = timedelta(hours=24)
REFRESH_BEFORE = timedelta(days=10)  # a token expiring sooner than this is exchanged for a new one


@dataclass(frozen=True)
class WebhookAccount:
    integration: Integration
    app_secret: str
    verify_token: str
    instagram_account_id: str | None


async def account_for_webhook(ctx: SystemContext, token: str) -> WebhookAccount | None:
    """The active META integration whose webhook token is `token`, with its decrypted secrets."""
    integration = await integration_for_webhook(ctx, IntegrationType.META, token)
    if integration is None:
        return None
    async with ctx.for_organization(integration.organization_id).session() as session:
        account = await account_of(session, integration.id)
    if account is None:
        return None
    return WebhookAccount(
        integration,
        ctx.box.decrypt(account.app_secret),
        ctx.box.decrypt(account.verify_token),
        account.instagram_account_id,
    )


async def receive_events(
    session: AsyncSession,
    account: WebhookAccount,
    items: list[tuple[str, providers.Inbound | providers.StatusUpdate | graph.Watermark]],
) -> int:
    """Apply what a webhook POST reports, in the webhook's transaction; how many items were for this account.
    An entry for another page or Instagram account (another organization's) is ignored."""
    integration = account.integration
    ours = {Channel.MESSENGER: integration.account_sid, Channel.INSTAGRAM: account.instagram_account_id}
    applied = 0
    for entry_id, item in items:
        channel = item.channel if not isinstance(item, providers.StatusUpdate) else None
        if channel is not None and ours.get(channel) != entry_id:
            log.warning("webhook entry for another account", integration=str(integration.id), entry=entry_id)
            continue
        if channel is None and entry_id not in {ours[Channel.MESSENGER], ours[Channel.INSTAGRAM]}:
            log.warning("webhook entry for another account", integration=str(integration.id), entry=entry_id)
            continue
        applied += 1
        if isinstance(item, providers.Inbound):
            await inbound.receive(session, integration, item)
        elif isinstance(item, providers.StatusUpdate):
            await receipts.status_update(session, integration, item)
        else:
            await apply_watermark(session, integration, item)
    return applied


async def apply_watermark(session: AsyncSession, integration: Integration, mark: graph.Watermark) -> int:
    """Every outbound message to the customer on the channel sent up to the watermark (or the one Instagram names)
    is DELIVERED or READ; how many changed."""
    query = select(Message).where(
        Message.integration_id == integration.id,
        Message.channel == mark.channel,
        Message.direction == Direction.OUTBOUND,
        Message.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED]),
    )
    if mark.provider_id is not None:
        query = query.where(Message.provider_message_id == mark.provider_id)
    else:
        # a read watermark covers what Meta accepted: a message it refused (no mid) stays FAILED, retryable
        query = query.where(
            Message.recipients.contains([mark.customer]),
            Message.created_at <= mark.at,
            Message.provider_message_id.is_not(None),
        )
    changed = 0
    for message in await session.scalars(query.order_by(Message.created_at).with_for_update()):
        changed += receipts.apply_status(session, message, mark.status, None)
    return changed


async def meta_outbound(
    session: AsyncSession, channel: Channel, body: str, message_tag: str | None, recipient: str
) -> dict[str, Any]:
    """Message columns for an outbound Messenger/Instagram message: the integration and the page (or Instagram
    account) it leaves from; RESPONSE inside the 24-hour window since the customer's last message, a message tag
    outside it (WINDOW_CLOSED naming `messageTag` without one)."""
    integration = await session.scalar(
        select(Integration).where(Integration.type == IntegrationType.META, Integration.active.is_(True))
    )
    account = await account_of(session, integration.id) if (integration is not None) else None
    if integration is None or account is None:
        raise DomainError(
            "CHANNEL_NOT_CONFIGURED",
            f"{channel.name} is not configured for this organization: it needs an active META integration "
            "(integrationConfigure).",
            "channel",
        )
    sender = integration.account_sid if channel == Channel.MESSENGER else account.instagram_account_id
    if not sender:
        raise DomainError(
            "CHANNEL_NOT_CONFIGURED",
            "INSTAGRAM needs the Instagram account id of the META integration (instagramAccountId).",
            "channel",
        )
    tag = message_tag.strip().upper() if message_tag and message_tag.strip() else None
    if tag is not None and tag not in graph.MESSAGE_TAGS:
        raise DomainError(
            "INVALID", f"'{message_tag}' is not a message tag: {', '.join(graph.MESSAGE_TAGS)}.", "messageTag"
        )
    last = await session.scalar(
        select(func.max(Message.created_at)).where(
            Message.sender == recipient, Message.direction == Direction.INBOUND, Message.channel == channel
        )
    )
    closes = last + MESSAGING_WINDOW if last is not None else None
    headers: dict[str, Any] = {"provider": IntegrationType.META.value}
    if closes is not None and closes > datetime.now(UTC):
        tag = None  # inside the window every message is a RESPONSE
    elif tag is None:
        since = f"since {closes:%Y-%m-%d %H:%M} UTC" if closes else "(the customer has not written on it)"
        raise DomainError(
            "WINDOW_CLOSED",
            f"The 24-hour {channel.name.title()} window is closed {since}: give a messageTag "
            f"({', '.join(graph.MESSAGE_TAGS)}) to send outside it.",
            "messageTag",
        )
    else:
        headers["message_tag"] = tag
    return {"integration_id": integration.id, "sender": sender, "headers": headers}


# -- long-lived page tokens ----------------------------------------------------------------------------------


async def tokens_to_refresh(ctx: SystemContext) -> list[uuid.UUID]:
    """The active META integrations whose token expires within REFRESH_BEFORE (or whose expiry is unknown)."""
    soon = datetime.now(UTC) + REFRESH_BEFORE
    async with ctx.session() as session:
        return list(
            await session.scalars(
                select(Integration.id)
                .join(MetaAccount, MetaAccount.integration_id == Integration.id)
                .where(
                    Integration.type == IntegrationType.META,
                    Integration.active.is_(True),
                    (MetaAccount.token_expires_at.is_(None)) | (MetaAccount.token_expires_at < soon),
                )
            )
        )


async def refresh_page_token(ctx: SystemContext, integration_id: uuid.UUID) -> bool:
    """Exchange the integration's page token for a new long-lived one and store it with its expiry; on failure keep
    the old one, store the reason and notify the organization's admins (once per new reason). Whether it worked."""
    async with ctx.session() as session:
        integration = await session.get(Integration, integration_id)
        if integration is None or integration.type != IntegrationType.META:
            return False
        account = await account_of(session, integration.id)
        if account is None:
            return False
        organization_id = integration.organization_id
        config = provider_config(integration, ctx.box, ctx.settings)
        app_id, app_secret = integration.api_key or "", ctx.box.decrypt(account.app_secret)
    adapter = providers.provider(IntegrationType.META)
    assert isinstance(adapter, graph.Meta)
    token: graph.Token | None = None
    error = None
    try:
        token = await adapter.exchange_token(config, app_id, app_secret)
    except providers.ProviderError as exc:
        error = exc.detail
    scoped = ctx.for_organization(organization_id)
    async with scoped.transaction() as session:
        integration = await session.get(Integration, integration_id, with_for_update=True)
        account = await session.scalar(
            select(MetaAccount).where(MetaAccount.integration_id == integration_id).with_for_update()
        )
        assert integration is not None and account is not None
        if token is not None:
            integration.api_token = ctx.box.encrypt(token.access_token)
            account.token_expires_at = token.expires_at
            account.token_refreshed_at = datetime.now(UTC)
            account.token_error = None
            scoped.record(session, IntegrationUpdated(integration_id=integration.id, changed=["api_token"]))
            log.info("meta token refreshed", integration=str(integration_id), expires_at=str(token.expires_at))
            return True
        news = account.token_error != error
        account.token_error = error
        if news:
            admins = await session.scalars(select(User.id).where(User.role == Role.ADMIN, User.active.is_(True)))
            await notify(
                session,
                None,
                list(admins),
                NotificationType.INTEGRATION_TOKEN_FAILED,
                f"The Facebook/Instagram page token could not be refreshed: {error} "
                "Configure a new page access token (integrationConfigure, apiToken).",
                actor_id=None,
                organization_id=organization_id,
            )
        log.warning("meta token refresh failed", integration=str(integration_id), error=error)
        return False
