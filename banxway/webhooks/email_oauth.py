"""`GET /oauth/{provider}/callback`: where Google or Microsoft sends the admin's browser back after consent, with
`code` and `state` (banxway.resolvers.email_oauth.oauth_callback). A small HTML page either way: 200 naming the
mailbox that was connected, or 400 naming why nothing was (unknown, expired or used state, another provider's
state, a refused code, a mailbox the organization already has by password, ...). The page is public: the `state`
is what authenticates the callback (random, single-use, bound to the organization and the admin who started it)."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from banxway.logs import get_logger
from banxway.resolvers.email_oauth import CallbackRefused, oauth_callback
from banxway.state import AppState

log = get_logger("banxway.webhooks.oauth")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="referrer" content="no-referrer"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>{title}</h1><p>{text}</p></body></html>
"""
# the page carries nothing to cache and must not leak the code in a Referer
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(status: int, title: str, text: str) -> Response:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


async def email_oauth_callback(request: Request) -> Response:
    state: AppState = request.state.app
    provider = request.path_params["provider"]
    try:
        account = await oauth_callback(state, provider, dict(request.query_params))
    except CallbackRefused as exc:
        log.warning("OAuth callback refused", provider=provider, reason=str(exc))
        return _page(400, "The mailbox was not connected", str(exc))
    return _page(
        200,
        "Mailbox connected",
        f"{account.email} is connected to Banxway; its mail will appear in the inbox shortly. "
        "You can close this window.",
    )
