"""Starlette endpoints for providers: verify the caller, then dispatch what it reports into the resolvers."""

from __future__ import annotations

from starlette.routing import Route

from banxway.webhooks.messaging import webhook

ROUTES = [Route("/webhooks/{provider}/{token}/{kind}", webhook, methods=["POST"])]
