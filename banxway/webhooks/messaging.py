"""The messaging providers' webhooks: `/webhooks/exotel/{token}/whatsapp|sms|voice` and
`/webhooks/twilio/{token}/messages|status|voice`.

`{token}` is the integration's unguessable webhook token (the previous one keeps working for a while after a
rotation). The provider verifies its own signature (Twilio's `X-Twilio-Signature` over the public URL and the
form; Exotel signs nothing, so the token is its proof, plus the integration's optional IP allow-list). A bad
token, address or signature is answered 403 before anything is read or written. What the callback reports goes
through a dispatch table into the same resolvers as everything else, in one transaction of a `SystemContext`;
downloads and transcription follow from the events it records (`banxway.tasks.consequences`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from banxway.context import SystemContext
from banxway.enums import IntegrationType
from banxway.integrations.messaging import BadPayload, CallUpdate, Inbound, StatusUpdate, provider
from banxway.logs import get_logger
from banxway.resolvers import calls, inbound, receipts
from banxway.resolvers.integrations import integration_for_webhook
from banxway.state import AppState

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.db.models import Integration

log = get_logger("banxway.webhooks")

_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

Handler = Callable[["AsyncSession", "Integration", Any], Awaitable[object]]
HANDLERS: dict[type, Handler] = {
    Inbound: inbound.receive,
    StatusUpdate: receipts.status_update,
    CallUpdate: calls.call_update,
}


def _error(status: int, text: str) -> Response:
    return JSONResponse({"error": text}, status_code=status)


def _allowed(integration: Integration, request: Request) -> bool:
    if not integration.ip_allowlist:
        return True
    host = request.client.host if request.client else None
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in integration.ip_allowlist)


def _public_url(request: Request, state: AppState) -> str:
    """The URL the provider requested, as it knows it (BANXWAY_PUBLIC_URL behind a proxy)."""
    base = state.settings.public_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"


async def webhook(request: Request) -> Response:
    name = request.path_params["provider"]
    kind = request.path_params["kind"]
    try:
        integration_type = IntegrationType(name.upper())
    except ValueError:
        return _error(404, "No such webhook.")
    adapter = provider(integration_type)
    if kind not in {path for _, path in adapter.webhook_paths}:
        return _error(404, "No such webhook.")
    state: AppState = request.state.app
    ctx = SystemContext(state)
    integration = await integration_for_webhook(ctx, integration_type, request.path_params["token"])
    if integration is None:
        return _error(403, "Unknown or expired webhook token.")
    if not _allowed(integration, request):
        log.warning("webhook from an address not allowed", integration=str(integration.id), client=request.client)
        return _error(403, "This address may not call the webhook.")
    body = await request.body()  # at most BANXWAY_MAX_BODY_BYTES (banxway.middleware.BodyLimitMiddleware)
    try:
        header = adapter.signature_header
        if header is not None and not adapter.verify_webhook(
            state.box.decrypt(integration.api_token), _public_url(request, state), body, request.headers.get(header)
        ):
            log.warning("bad webhook signature", integration=str(integration.id), url=_public_url(request, state))
            return _error(403, f"The {header} does not match.")
        items = adapter.parse_webhook(kind, body)
    except (BadPayload, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"Not a {name} {kind} callback: {exc}")
    async with ctx.for_organization(integration.organization_id).transaction() as session:
        for item in items:
            await HANDLERS[type(item)](session, integration, item)
    if integration_type == IntegrationType.TWILIO and kind in ("messages", "voice"):
        return Response(_TWIML_EMPTY, media_type="text/xml")
    return JSONResponse({"ok": True})
