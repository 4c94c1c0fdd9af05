"""Meta's webhook for Facebook Messenger and Instagram: `/webhooks/meta/{token}/events`.

`GET` is the subscription handshake: `hub.mode=subscribe` and the integration's `hub.verify_token` are answered
with `hub.challenge` as plain text, anything else 403. `POST` carries `X-Hub-Signature-256: sha256=<HMAC-SHA256 of
the raw body keyed with the app secret>`; a missing or wrong one is 403 before anything is parsed or written. Then
every entry for this integration's page (`object: page`) or Instagram account (`object: instagram`) goes into the
resolvers in one transaction (`banxway.resolvers.meta.receive_events`); entries for other accounts are ignored.
`{token}` is the integration's webhook token, as for Exotel and Twilio, so an organization's callbacks can only land
in that organization.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from banxway.context import SystemContext
from banxway.enums import IntegrationType
from banxway.integrations.messaging import BadPayload, provider
from banxway.integrations.messaging import meta as graph
from banxway.logs import get_logger
from banxway.resolvers import meta
from banxway.state import AppState

log = get_logger("banxway.webhooks.meta")


def _error(status: int, text: str) -> Response:
    return JSONResponse({"error": text}, status_code=status)


async def meta_webhook(request: Request) -> Response:
    state: AppState = request.state.app
    ctx = SystemContext(state)
    account = await meta.account_for_webhook(ctx, request.path_params["token"])
    if account is None:
        return _error(403, "Unknown or expired webhook token.")
    if request.method == "GET":
        params = request.query_params
        token = params.get("hub.verify_token") or ""
        if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            token.encode(), account.verify_token.encode()
        ):
            return _error(403, "hub.mode must be subscribe and hub.verify_token the integration's verify token.")
        return PlainTextResponse(params.get("hub.challenge") or "")
    body = await request.body()  # at most BANXWAY_MAX_BODY_BYTES (banxway.middleware.BodyLimitMiddleware)
    adapter = provider(IntegrationType.META)
    header = adapter.signature_header or "X-Hub-Signature-256"
    if not adapter.verify_webhook(account.app_secret, str(request.url), body, request.headers.get(header)):
        log.warning("bad webhook signature", integration=str(account.integration.id))
        return _error(403, f"The {header} does not match.")
    try:
        items = graph.parse_events(body)
    except (BadPayload, orjson.JSONDecodeError) as exc:
        return _error(400, f"Not a Messenger or Instagram callback: {exc}")
    async with ctx.for_organization(account.integration.organization_id).transaction() as session:
        await meta.receive_events(session, account, items)
    return JSONResponse({"ok": True})
