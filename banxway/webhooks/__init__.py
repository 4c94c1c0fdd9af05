"""Starlette endpoints for providers: verify the caller, then dispatch what it reports into the resolvers."""

from __future__ import annotations

from starlette.routing import Route

from banxway.webhooks.email_oauth import email_oauth_callback
from banxway.webhooks.messaging import webhook
from banxway.webhooks.meta import meta_webhook

ROUTES = [
    # Meta's callback URL answers the GET handshake too; listed first, so the generic POST route never sees it
    Route("/webhooks/meta/{token}/events", meta_webhook, methods=["GET", "POST"]),
    Route("/webhooks/{provider}/{token}/{kind}", webhook, methods=["POST"]),
    Route("/oauth/{provider}/callback", email_oauth_callback, methods=["GET"]),
]
