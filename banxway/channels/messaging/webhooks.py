"""The providers' webhooks: `/webhooks/exotel/{token}/whatsapp|sms|voice` and
`/webhooks/twilio/{token}/messages|status|voice`.

`{token}` is the integration's unguessable webhook token (the previous one keeps working for a while after a
rotation). Twilio's `X-Twilio-Signature` is verified over the public URL and the form; Exotel signs nothing, so
the token is its proof, plus the integration's optional IP allow-list. A bad token, address or signature is
answered 403 before anything is read or written. The work is one short transaction through the same use
cases as the mutations (`banxway.resolvers.messaging`); downloads and transcription go to actors.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import or_, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from banxway import events
from banxway.channels.messaging import providers
from banxway.db.models import Integration, Message
from banxway.db.session import system_session, tenant_session
from banxway.enums import IntegrationType
from banxway.logs import get_logger
from banxway.secrets import SecretBox

log = get_logger("banxway.webhooks")

MAX_BODY = 1024 * 1024
KINDS = {"exotel": {"whatsapp", "sms", "voice"}, "twilio": {"messages", "status", "voice"}}
_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _error(status: int, text: str) -> Response:
    return JSONResponse({"error": text}, status_code=status)


async def _integration(request: Request, provider: str, token: str) -> Integration | None:
    state = request.state.app
    kind = IntegrationType(provider.upper())
    async with system_session(state.sessionmaker) as session:
        integration = await session.scalar(
            select(Integration).where(
                Integration.type == kind,
                Integration.active.is_(True),
                or_(
                    Integration.webhook_token == token,
                    (Integration.previous_webhook_token == token)
                    & (Integration.previous_webhook_token_expires_at > datetime.now(UTC)),
                ),
            )
        )
        if integration is not None:
            session.expunge(integration)
        return integration


def _allowed(integration: Integration, request: Request) -> bool:
    if not integration.ip_allowlist:
        return True
    host = request.client.host if request.client else None
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in integration.ip_allowlist)


def _public_url(request: Request) -> str:
    """The URL the provider requested, as it knows it (BANXWAY_PUBLIC_URL behind a proxy)."""
    base = request.state.app.settings.public_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"


async def webhook(request: Request) -> Response:
    provider = request.path_params["provider"]
    kind = request.path_params["kind"]
    if kind not in KINDS.get(provider, set()):
        return _error(404, "No such webhook.")
    integration = await _integration(request, provider, request.path_params["token"])
    if integration is None:
        return _error(403, "Unknown or expired webhook token.")
    if not _allowed(integration, request):
        log.warning("webhook from an address not allowed", integration=str(integration.id), client=request.client)
        return _error(403, "This address may not call the webhook.")
    body = await request.body()
    if len(body) > MAX_BODY:
        return _error(413, "The request body is too large.")
    state = request.state.app
    try:
        if provider == "exotel" and kind == "whatsapp":
            items: list[Any] = providers.parse_exotel_whatsapp(orjson.loads(body))
        else:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            if provider == "twilio":
                token = SecretBox(state.secret_key).decrypt(integration.api_token)
                signature = request.headers.get("x-twilio-signature")
                if not providers.twilio_signature_valid(token, _public_url(request), form, signature):
                    log.warning("bad Twilio signature", integration=str(integration.id), url=_public_url(request))
                    return _error(403, "The X-Twilio-Signature does not match.")
            if kind == "voice":
                items = [providers.parse_call(form)]
            elif provider == "exotel":
                items = [providers.parse_exotel_sms(form)]
            else:
                items = [providers.parse_twilio_message(form)]
    except (providers.BadPayload, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"Not a {provider} {kind} callback: {exc}")
    media, recordings = await handle(state, integration, items)
    await _enqueue(media, recordings)
    if provider == "twilio" and kind in ("messages", "voice"):
        return Response(_TWIML_EMPTY, media_type="text/xml")
    return JSONResponse({"ok": True})


async def handle(state: Any, integration: Integration, items: list[Any]) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Store what a callback reports, in one transaction; (messages with media to fetch, calls to transcribe)."""
    from banxway.resolvers import messaging

    media: list[uuid.UUID] = []
    recordings: list[uuid.UUID] = []
    async with tenant_session(state.sessionmaker, integration.organization_id) as session:
        async with session.begin():
            for item in items:
                if isinstance(item, providers.Inbound):
                    message, new = await messaging.receive(session, integration, item)
                    if new and item.media:
                        media.append(message.id)
                elif isinstance(item, providers.StatusUpdate):
                    await messaging.status_update(session, integration, item)
                else:
                    call: Message | None = await messaging.call_update(session, integration, item)
                    if call is not None and item.recording_url and item.status == "completed":
                        recordings.append(call.id)
        await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(session))
    return media, recordings


async def _enqueue(media: list[uuid.UUID], recordings: list[uuid.UUID]) -> None:
    from banxway.tasks import enqueue
    from banxway.tasks.actors import fetch_message_media, transcribe_call

    for message_id in media:
        await enqueue(fetch_message_media, str(message_id))
    for message_id in recordings:
        await enqueue(transcribe_call, str(message_id))
