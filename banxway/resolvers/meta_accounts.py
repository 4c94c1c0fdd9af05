"""A META integration's own settings (`MetaAccount`): the app secret that signs webhooks and the verify token of
the subscription handshake (both encrypted), the Instagram account id. `integration_configure` validates them with
`clean` before its transaction and stores them with `store` inside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from banxway.auth import Permission
from banxway.db.models import Integration, MetaAccount
from banxway.enums import Channel, IntegrationType
from banxway.errors import DomainError
from banxway.resolvers import validation as v

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context
    from banxway.secrets import SecretBox

_FIELDS = {"app_secret": "appSecret", "verify_token": "verifyToken", "instagram_account_id": "instagramAccountId"}


def clean(kind: IntegrationType, fields: dict[str, Any]) -> dict[str, Any]:
    """The META-only fields given, validated; INVALID when they are given for another provider."""
    given = {name: fields[name] for name in _FIELDS if fields.get(name) is not None}
    if given and kind != IntegrationType.META:
        name = next(iter(given))
        raise DomainError("INVALID", f"{_FIELDS[name]} is for META integrations only.", _FIELDS[name])
    values: dict[str, Any] = {}
    for name in ("app_secret", "verify_token"):
        if name in given:
            value = str(given[name]).strip()
            if not value or len(value) > 500:
                raise DomainError("INVALID", f"{_FIELDS[name]} must have 1 to 500 characters.", _FIELDS[name])
            values[name] = value
    if "instagram_account_id" in given:
        value = v.text(given["instagram_account_id"], "instagramAccountId", max_length=100)
        if value is not None and not value.isdigit():
            raise DomainError(
                "INVALID", "instagramAccountId is the Instagram account's numeric id.", "instagramAccountId"
            )
        values["instagram_account_id"] = value
    return values


async def store(
    session: AsyncSession, box: SecretBox, integration: Integration, values: dict[str, Any], *, created: bool
) -> list[str]:
    """Create or change the integration's MetaAccount; the names of the fields that changed."""
    account = await session.scalar(
        select(MetaAccount).where(MetaAccount.integration_id == integration.id).with_for_update()
    )
    if account is None:
        for name in ("app_secret", "verify_token"):
            if name not in values:
                raise DomainError("INVALID", f"{_FIELDS[name]} is required for META.", _FIELDS[name])
        if not integration.api_key:
            raise DomainError("INVALID", "apiKey (the Meta app id) is required for META.", "apiKey")
        account = MetaAccount(
            organization_id=integration.organization_id,
            integration_id=integration.id,
            app_secret=box.encrypt(values["app_secret"]),
            verify_token=box.encrypt(values["verify_token"]),
            instagram_account_id=values.get("instagram_account_id"),
        )
        session.add(account)
        await session.flush()
        return [] if created else list(values)
    changed = []
    for name, value in values.items():
        current = getattr(account, name)
        if name in ("app_secret", "verify_token"):
            if box.decrypt(current) != value:
                setattr(account, name, box.encrypt(value))
                changed.append(name)
        elif current != value:
            setattr(account, name, value)
            changed.append(name)
    return changed


async def account_of(session: AsyncSession, integration_id: Any) -> MetaAccount | None:
    return await session.scalar(select(MetaAccount).where(MetaAccount.integration_id == integration_id))


async def meta_settings(ctx: Context, integration_id: Any) -> MetaAccount | None:
    """A META integration's own settings (admins): the Instagram account and the page token's state."""
    ctx.require(Permission.ORG_MANAGE)
    return await account_of(ctx.db, integration_id)


META_CHANNELS = (Channel.MESSENGER, Channel.INSTAGRAM)


async def channel_gaps(
    session: AsyncSession, public_url: str | None, channels: list[Channel]
) -> dict[Channel, list[tuple[str, bool]]]:
    """What MESSENGER and INSTAGRAM lack, as (what, whether it blocks sending) for `integrations.channel_gaps`."""
    row = (
        await session.execute(
            select(Integration, MetaAccount)
            .join(MetaAccount, MetaAccount.integration_id == Integration.id)
            .where(Integration.type == IntegrationType.META, Integration.active.is_(True))
        )
    ).first()
    found: dict[Channel, list[tuple[str, bool]]] = {}
    for channel in channels:
        missing: list[tuple[str, bool]] = []
        if row is None:
            missing.append(("an active META integration (integrationConfigure)", True))
        else:
            integration, account = row
            if channel == Channel.INSTAGRAM and not account.instagram_account_id:
                missing.append(("the Instagram account id of the META integration (instagramAccountId)", True))
            if account.token_error:
                missing.append((f"a page token that can be renewed (last renewal: {account.token_error})", False))
            if integration.last_error:
                missing.append((f"META credentials that work (last test: {integration.last_error})", False))
        if not public_url:
            missing.append(("BANXWAY_PUBLIC_URL, so that Meta can reach the webhook", False))
        found[channel] = missing
    return found
