"""Outbound webhooks: endpoints the organization's events are POSTed to (signed), and their delivery log. ADMIN."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from banxway.db.models import WebhookDelivery as WebhookDeliveryRow
from banxway.db.models import WebhookDeliveryStatus as DeliveryStatus
from banxway.db.models import WebhookEndpoint as WebhookEndpointRow
from banxway.resolvers import webhook_endpoints as use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of
from banxway.schema.pagination import Connection, connection

WebhookDeliveryStatus = strawberry.enum(
    DeliveryStatus,
    description="PENDING (not tried yet, or asked again) → SUCCEEDED, or RETRYING (back-off) → … → FAILED.",
)
WebhookError, WebhookErrorCode = error_type("Webhook", ["INVALID", "NOT_FOUND", "TOO_LONG", "INVALID_TRANSITION"])


@strawberry.type(description="A URL the organization's events are POSTed to, signed with its secret (never shown).")
class WebhookEndpoint(Node):
    id: strawberry.ID = _id_field("WebhookEndpoint")
    url: str
    description: str | None
    event_types: list[str] = strawberry.field(description="The event types sent to it (see webhookEventTypes).")
    enabled: bool
    disabled_reason: str | None = strawberry.field(description="Why it was disabled (failing for too long).")
    disabled_at: datetime | None
    failing_since: datetime | None = strawberry.field(
        description="Its first failed delivery since the last success; null while it succeeds."
    )
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(WebhookEndpointRow)

    @strawberry.field(description="Deliveries still to be sent (PENDING or RETRYING).")
    async def pending_deliveries(self, info: Ctx) -> int:
        return await info.context.loaders.open_delivery_count_by_endpoint_id.load(self.id)  # type: ignore[arg-type,return-value]


@strawberry.type(description="One event sent (or to be sent) to one webhook endpoint.")
class WebhookDelivery(Node):
    id: strawberry.ID = _id_field("WebhookDelivery")
    attempts: int
    event_type: str
    response_status: int | None = strawberry.field(description="The HTTP status of the last attempt's answer.")
    response_body: str | None = strawberry.field(description="The first 1 KB of the last attempt's answer.")
    duration_ms: int | None = strawberry.field(description="How long the last attempt took.")
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = strawberry.field(description="When it is tried again (RETRYING).")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(WebhookDeliveryRow)

    @strawberry.field
    def status(self) -> WebhookDeliveryStatus:  # type: ignore[valid-type]
        return DeliveryStatus(self.status)  # type: ignore[arg-type]

    @strawberry.field(description="The event's id, as the body's `id` and the Banxway-Event-Id header give it.")
    def event_id(self) -> str:
        return str(self.event_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The JSON body sent (the same at every attempt; signed anew each time).")
    def body(self) -> str:
        return self.body  # type: ignore[attr-defined,return-value]


@strawberry.input(description="ADMIN: register a URL to POST events to.")
class WebhookEndpointCreateInput:
    url: str = strawberry.field(description="https:// (http:// and private addresses only in development).")
    event_types: list[str] = strawberry.field(description="Event types to send (see webhookEventTypes).")
    description: str | None = None
    enabled: bool | None = strawberry.field(default=None, description="Default true.")


@strawberry.input(description="ADMIN: change the fields given. enabled: true again clears disabledReason.")
class WebhookEndpointUpdateInput:
    id: strawberry.ID
    url: str | None = strawberry.UNSET
    event_types: list[str] | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET


@strawberry.input
class WebhookEndpointIdInput:
    id: strawberry.ID


@strawberry.input
class WebhookDeliveryRetryInput:
    id: strawberry.ID


@strawberry.input(description="ADMIN: send again every subscribed event after a cursor (at most 1,000).")
class WebhookEndpointReplayInput:
    endpoint_id: strawberry.ID
    after: str | None = strawberry.field(
        default=None,
        description="An event cursor (a delivery body's `cursor`, or inboxEvents'); null: every event still kept.",
    )


@strawberry.type
class WebhookEndpointSecretPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(
        default=None, description="The signing secret (whsec_…): shown this once, never readable again."
    )
    user_errors: list[WebhookError]  # type: ignore[valid-type]


@strawberry.type
class WebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    user_errors: list[WebhookError]  # type: ignore[valid-type]


@strawberry.type
class WebhookEndpointDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[WebhookError]  # type: ignore[valid-type]


@strawberry.type
class WebhookDeliveryPayload:
    webhook_delivery: WebhookDelivery | None = None
    user_errors: list[WebhookError]  # type: ignore[valid-type]


@strawberry.type
class WebhookEndpointReplayPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    queued: int = strawberry.field(default=0, description="How many events were queued.")
    has_more: bool = strawberry.field(
        default=False, description="More events followed: replay again after `lastCursor`."
    )
    last_cursor: str | None = strawberry.field(default=None, description="The cursor of the last event queued.")
    user_errors: list[WebhookError]  # type: ignore[valid-type]


_FIELDS = ("url", "event_types", "description", "enabled")


def _given(input: Any) -> dict[str, Any]:
    return {name: getattr(input, name) for name in _FIELDS if given(getattr(input, name))}


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="ADMIN: the organization's outbound webhook endpoints, oldest first.")
    async def webhook_endpoints(self, info: Ctx) -> list[WebhookEndpoint]:
        return await use_cases.webhook_endpoints(info.context)  # type: ignore[return-value]

    @strawberry.field(description="ADMIN: an endpoint's delivery log, newest first.")
    async def webhook_deliveries(
        self,
        info: Ctx,
        endpoint_id: strawberry.ID,
        status: WebhookDeliveryStatus | None = None,  # type: ignore[valid-type]
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[WebhookDelivery]:
        page = await use_cases.webhook_deliveries_page(
            info.context,
            decode(endpoint_id, "WebhookEndpoint", "endpointId"),
            status.value if status is not None else None,
            first=first,
            after=after,
        )
        return connection(page)

    @strawberry.field(description="The event types an endpoint may subscribe to.")
    def webhook_event_types(self) -> list[str]:
        return use_cases.subscribable_types()


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="ADMIN: register an endpoint; the payload shows its secret once.")
    async def webhook_endpoint_create(
        self, info: Ctx, input: WebhookEndpointCreateInput
    ) -> WebhookEndpointSecretPayload:
        async def call() -> dict:
            fields = {name: value for name, value in _given(input).items() if value is not None}
            endpoint, secret = await use_cases.webhook_endpoint_create(info.context, fields)
            return {"webhook_endpoint": endpoint, "secret": secret}

        return await mutate(WebhookEndpointSecretPayload, WebhookError, WebhookErrorCode, call)

    @strawberry.mutation(description="ADMIN: change an endpoint.")
    async def webhook_endpoint_update(self, info: Ctx, input: WebhookEndpointUpdateInput) -> WebhookEndpointPayload:
        async def call() -> dict:
            endpoint_id = decode(input.id, "WebhookEndpoint", "id")
            endpoint = await use_cases.webhook_endpoint_update(info.context, endpoint_id, _given(input))
            return {"webhook_endpoint": endpoint}

        return await mutate(WebhookEndpointPayload, WebhookError, WebhookErrorCode, call)

    @strawberry.mutation(description="ADMIN: delete an endpoint and its delivery log.")
    async def webhook_endpoint_delete(self, info: Ctx, input: WebhookEndpointIdInput) -> WebhookEndpointDeletePayload:
        async def call() -> dict:
            await use_cases.webhook_endpoint_delete(info.context, decode(input.id, "WebhookEndpoint", "id"))
            return {"deleted_id": input.id}

        return await mutate(WebhookEndpointDeletePayload, WebhookError, WebhookErrorCode, call)

    @strawberry.mutation(description="ADMIN: a new signing secret, shown once; the old one stops at once.")
    async def webhook_endpoint_rotate_secret(
        self, info: Ctx, input: WebhookEndpointIdInput
    ) -> WebhookEndpointSecretPayload:
        async def call() -> dict:
            endpoint_id = decode(input.id, "WebhookEndpoint", "id")
            endpoint, secret = await use_cases.webhook_endpoint_rotate_secret(info.context, endpoint_id)
            return {"webhook_endpoint": endpoint, "secret": secret}

        return await mutate(WebhookEndpointSecretPayload, WebhookError, WebhookErrorCode, call)

    @strawberry.mutation(description="ADMIN: send a delivery again now (the same event id and body).")
    async def webhook_delivery_retry(self, info: Ctx, input: WebhookDeliveryRetryInput) -> WebhookDeliveryPayload:
        async def call() -> dict:
            delivery_id = decode(input.id, "WebhookDelivery", "id")
            return {"webhook_delivery": await use_cases.webhook_delivery_retry(info.context, delivery_id)}

        return await mutate(WebhookDeliveryPayload, WebhookError, WebhookErrorCode, call)

    @strawberry.mutation(description="ADMIN: send again every subscribed event after a cursor (at most 1,000).")
    async def webhook_endpoint_replay(
        self, info: Ctx, input: WebhookEndpointReplayInput
    ) -> WebhookEndpointReplayPayload:
        async def call() -> dict:
            endpoint_id = decode(input.endpoint_id, "WebhookEndpoint", "endpointId")
            replay = await use_cases.webhook_endpoint_replay(info.context, endpoint_id, input.after)
            return {
                "webhook_endpoint": replay.endpoint,
                "queued": replay.queued,
                "has_more": replay.has_more,
                "last_cursor": replay.last_cursor,
            }

        return await mutate(WebhookEndpointReplayPayload, WebhookError, WebhookErrorCode, call)
