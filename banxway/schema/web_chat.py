"""The web chat widget: `chatWidgets` and their mutations (ADMIN), and what a visitor may do with a visitor token
(`visitorMessageSend`, `visitorMessages`, `visitorMessageAck`, subscription `visitorEvents`). A visitor token opens
nothing else (every other field needs an access token), and an access token is not a visitor token."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry

from banxway.db.models import ChatWidget as ChatWidgetRow
from banxway.db.models import Message as MessageRow
from banxway.enums import Direction
from banxway.errors import AuthenticationRequired, PermissionDenied
from banxway.resolvers import web_chat as use_cases
from banxway.resolvers import web_chat_files
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode, given, local_id, to_global_id
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of

ChatWidgetError, ChatWidgetErrorCode = error_type("ChatWidget", ["INVALID", "NOT_FOUND", "TOO_LONG"])
VisitorError, VisitorErrorCode = error_type("Visitor", ["INVALID", "TOO_LONG", "RATE_LIMITED"])


@strawberry.enum(description="Whether the widget asks for a field before the chat starts.")
class PreChatFieldMode(enum.Enum):
    OFF = "OFF"
    OPTIONAL = "OPTIONAL"
    REQUIRED = "REQUIRED"


@strawberry.type(description="Which fields the widget asks for before the chat starts.")
class PreChatFields:
    name: PreChatFieldMode
    email: PreChatFieldMode


@strawberry.type(description="An embeddable chat widget: the snippet names it by `widgetKey` (public).")
class ChatWidget(Node):
    id: strawberry.ID = _id_field("ChatWidget")
    name: str
    widget_key: str = strawberry.field(description="Public: the snippet's data-widget-key.")
    allowed_origins: list[str] = strawberry.field(
        description="Origins allowed to open visitor sessions: exact (https://shop.example.com) or "
        "https://*.example.com for any subdomain."
    )
    greeting: str | None
    primary_color: str = strawberry.field(description="#rrggbb")
    business_hours_message: str | None
    ai_agent_first: bool = strawberry.field(description="Whether the AI agent answers first (the agent reads it).")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(ChatWidgetRow)

    @strawberry.field
    def pre_chat_fields(self) -> PreChatFields:
        return PreChatFields(
            name=PreChatFieldMode(self.pre_chat_name),  # type: ignore[attr-defined]
            email=PreChatFieldMode(self.pre_chat_email),  # type: ignore[attr-defined]
        )

    @strawberry.field(
        description="The HTML to paste into a page to embed the widget (with its SRI hash); the server is "
        "BANXWAY_PUBLIC_URL, else the address this request came to."
    )
    def snippet(self, info: Ctx) -> str:
        request = info.context.request
        base = info.context.settings.public_url or (str(request.base_url) if hasattr(request, "base_url") else "")
        base = base.rstrip("/")
        return use_cases.snippet(base, self.widget_key)  # type: ignore[arg-type]


@strawberry.input
class PreChatFieldsInput:
    name: PreChatFieldMode | None = None
    email: PreChatFieldMode | None = None


@strawberry.input(description="ADMIN: a new chat widget.")
class ChatWidgetCreateInput:
    name: str
    allowed_origins: list[str]
    greeting: str | None = None
    primary_color: str | None = strawberry.field(default=None, description="#rrggbb; default #1f6feb.")
    business_hours_message: str | None = None
    ai_agent_first: bool | None = strawberry.field(default=None, description="Default false.")
    pre_chat_fields: PreChatFieldsInput | None = strawberry.field(default=None, description="Default OPTIONAL.")


@strawberry.input(description="ADMIN: change the fields given.")
class ChatWidgetUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    allowed_origins: list[str] | None = strawberry.UNSET
    greeting: str | None = strawberry.UNSET
    primary_color: str | None = strawberry.UNSET
    business_hours_message: str | None = strawberry.UNSET
    ai_agent_first: bool | None = strawberry.UNSET
    pre_chat_fields: PreChatFieldsInput | None = strawberry.UNSET


@strawberry.input
class ChatWidgetDeleteInput:
    id: strawberry.ID


@strawberry.type
class ChatWidgetPayload:
    chat_widget: ChatWidget | None = None
    user_errors: list[ChatWidgetError]  # type: ignore[valid-type]


@strawberry.type
class ChatWidgetDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[ChatWidgetError]  # type: ignore[valid-type]


_FIELDS = ("name", "allowed_origins", "greeting", "primary_color", "business_hours_message", "ai_agent_first")


def _fields(input: Any) -> dict[str, Any]:
    fields = {name: getattr(input, name) for name in _FIELDS if given(getattr(input, name))}
    pre_chat = getattr(input, "pre_chat_fields", None)
    if given(pre_chat) and pre_chat is not None:
        if pre_chat.name is not None:
            fields["pre_chat_name"] = pre_chat.name.value
        if pre_chat.email is not None:
            fields["pre_chat_email"] = pre_chat.email.value
    return fields


@strawberry.type
class ChatWidgetQuery:
    @strawberry.field(description="ADMIN: the organization's chat widgets, oldest first.")
    async def chat_widgets(self, info: Ctx) -> list[ChatWidget]:
        return await use_cases.chat_widgets(info.context)  # type: ignore[return-value]


@strawberry.type
class ChatWidgetMutation:
    @strawberry.mutation(description="ADMIN: a new chat widget (its widgetKey is generated).")
    async def chat_widget_create(self, info: Ctx, input: ChatWidgetCreateInput) -> ChatWidgetPayload:
        async def call() -> dict:
            fields = {name: value for name, value in _fields(input).items() if value is not None}
            fields.setdefault("allowed_origins", input.allowed_origins)
            return {"chat_widget": await use_cases.chat_widget_create(info.context, fields)}

        return await mutate(ChatWidgetPayload, ChatWidgetError, ChatWidgetErrorCode, call)

    @strawberry.mutation(description="ADMIN: change a chat widget.")
    async def chat_widget_update(self, info: Ctx, input: ChatWidgetUpdateInput) -> ChatWidgetPayload:
        async def call() -> dict:
            widget_id = decode(input.id, "ChatWidget", "id")
            return {"chat_widget": await use_cases.chat_widget_update(info.context, widget_id, _fields(input))}

        return await mutate(ChatWidgetPayload, ChatWidgetError, ChatWidgetErrorCode, call)

    @strawberry.mutation(description="ADMIN: delete a chat widget; its snippet and visitor tokens stop working.")
    async def chat_widget_delete(self, info: Ctx, input: ChatWidgetDeleteInput) -> ChatWidgetDeletePayload:
        async def call() -> dict:
            await use_cases.chat_widget_delete(info.context, decode(input.id, "ChatWidget", "id"))
            return {"deleted_id": input.id}

        return await mutate(ChatWidgetDeletePayload, ChatWidgetError, ChatWidgetErrorCode, call)


# -- the visitor's API --------------------------------------------------------------------------------------------


def _visitor(info: Ctx) -> use_cases.VisitorClaims:
    """The visitor of the request's `Authorization: Bearer <visitor token>` (HTTP) or of the WebSocket's
    connection_init payload; UNAUTHENTICATED otherwise (an access token included)."""
    ctx = info.context
    params = ctx.connection_params
    if isinstance(params, dict):
        authorization = params.get("authorization") or params.get("Authorization")
    else:
        request = ctx.request
        authorization = request.headers.get("authorization") if request is not None else None
    claims = use_cases.visitor_claims_of(
        ctx.state.secret_key, authorization if isinstance(authorization, str) else None
    )
    if claims is None and ctx.viewer_or_none is not None:
        raise PermissionDenied("An access token is not a visitor token: these fields are for web chat visitors.")
    if claims is None:
        raise AuthenticationRequired("This needs a valid web chat visitor token (POST /widget/<key>/session).")
    return claims


def _address(info: Ctx) -> str | None:
    request = info.context.request
    client = getattr(request, "client", None)
    return client.host if client else None


@strawberry.enum
class VisitorMessageAuthor(enum.Enum):
    VISITOR = "VISITOR"
    AGENT = "AGENT"


@strawberry.type(description="A file an agent sent the visitor.")
class VisitorAttachment:
    id: strawberry.ID
    filename: str
    content_type: str
    size: int = strawberry.field(description="Bytes.")
    inline: bool = strawberry.field(
        description="An image the widget shows in the page (png, jpeg, gif, webp); anything else downloads."
    )
    url: str = strawberry.field(
        description="Where this visitor downloads it (no header needed): a link signed for this visitor and file, "
        "valid for BANXWAY_ATTACHMENT_URL_TTL (ask visitorMessages again for a new one). With the visitor token "
        "(Authorization: Bearer), the same path without its query works too."
    )


@strawberry.type(description="A message of the visitor's own conversation.")
class VisitorMessage:
    id: strawberry.ID
    body: str
    author: VisitorMessageAuthor
    status: str = strawberry.field(description="Agents' messages: SENT, DELIVERED or READ; the visitor's: RECEIVED.")
    created_at: datetime
    attachments: list[VisitorAttachment] = strawberry.field(description="Files an agent sent with this message.")

    @staticmethod
    def of(row: MessageRow, files: list[VisitorAttachment] | None = None) -> VisitorMessage:
        return VisitorMessage(
            id=strawberry.ID(to_global_id("Message", row.id)),
            body=row.body or "",
            author=VisitorMessageAuthor.VISITOR if row.direction == Direction.INBOUND else VisitorMessageAuthor.AGENT,
            status=row.status.name,
            created_at=row.created_at,
            attachments=files or [],
        )


async def _visitor_messages(info: Ctx, claims: use_cases.VisitorClaims, rows: list[MessageRow]) -> list[VisitorMessage]:
    """The rows as the visitor sees them, with the files of the agents' replies (one lookup for all of them)."""
    outbound = [row.id for row in rows if row.direction == Direction.OUTBOUND]
    files = await web_chat_files.visitor_files(info.context.state, claims, outbound) if outbound else {}
    settings = info.context.settings
    request = info.context.request
    base = settings.public_url or (str(request.base_url) if hasattr(request, "base_url") else "")
    base = base.rstrip("/").replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    return [
        VisitorMessage.of(
            row,
            [
                VisitorAttachment(
                    id=strawberry.ID(file.id),
                    filename=file.filename,
                    content_type=file.content_type,
                    size=file.size,
                    inline=file.inline,
                    url=base + file.path,
                )
                for file in files.get(row.id, [])
            ],
        )
        for row in rows
    ]


@strawberry.type
class VisitorPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class VisitorMessageConnection:
    nodes: list[VisitorMessage]
    page_info: VisitorPageInfo


@strawberry.type(description="Something new in the visitor's conversation.")
class VisitorEvent:
    type: str = strawberry.field(
        description="MESSAGE (a new message: an agent's reply, or the visitor's own from another tab), STATUS "
        "(an agent message's status changed), THREAD_STATUS (the conversation was resolved, reopened, ...)."
    )
    message: VisitorMessage | None
    status: str | None


@strawberry.input
class VisitorMessageSendInput:
    body: str


@strawberry.input
class VisitorMessageAckInput:
    message_ids: list[strawberry.ID] = strawberry.field(description="Ids of agents' messages (visitorMessages).")
    read: bool = strawberry.field(default=False, description="true: displayed (READ); false: received (DELIVERED).")


@strawberry.type
class VisitorMessagePayload:
    message: VisitorMessage | None = None
    user_errors: list[VisitorError]  # type: ignore[valid-type]


@strawberry.type
class VisitorMessageAckPayload:
    messages: list[VisitorMessage] = strawberry.field(default_factory=list)
    user_errors: list[VisitorError]  # type: ignore[valid-type]


def _refused(exc: use_cases.InvalidVisitorToken) -> AuthenticationRequired:
    return AuthenticationRequired(str(exc))


@strawberry.type
class VisitorQuery:
    @strawberry.field(description="VISITOR TOKEN: the visitor's conversation, oldest first.")
    async def visitor_messages(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> VisitorMessageConnection:
        claims = _visitor(info)
        try:
            page = await use_cases.visitor_messages(info.context.state, claims, first, after)
        except use_cases.InvalidVisitorToken as exc:
            raise _refused(exc) from None
        return VisitorMessageConnection(
            nodes=await _visitor_messages(info, claims, page.messages),
            page_info=VisitorPageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type
class VisitorMutation:
    @strawberry.mutation(description="VISITOR TOKEN: write to the organization (the first message opens a thread).")
    async def visitor_message_send(self, info: Ctx, input: VisitorMessageSendInput) -> VisitorMessagePayload:
        claims = _visitor(info)

        async def call() -> dict:
            state = info.context.state
            try:
                row = await use_cases.visitor_message_send(state, claims, input.body, _address(info))
            except use_cases.InvalidVisitorToken as exc:
                raise _refused(exc) from None
            return {"message": VisitorMessage.of(row)}

        return await mutate(VisitorMessagePayload, VisitorError, VisitorErrorCode, call)

    @strawberry.mutation(description="VISITOR TOKEN: the client received (DELIVERED) or displayed (READ) messages.")
    async def visitor_message_ack(self, info: Ctx, input: VisitorMessageAckInput) -> VisitorMessageAckPayload:
        claims = _visitor(info)

        async def call() -> dict:
            ids = [local_id(value, "Message") for value in input.message_ids]
            wanted = [value for value in ids if isinstance(value, uuid.UUID)]
            try:
                rows = await use_cases.visitor_message_ack(info.context.state, claims, wanted, input.read)
            except use_cases.InvalidVisitorToken as exc:
                raise _refused(exc) from None
            return {"messages": await _visitor_messages(info, claims, rows)}

        return await mutate(VisitorMessageAckPayload, VisitorError, VisitorErrorCode, call)


@strawberry.type
class VisitorSubscription:
    @strawberry.subscription(description="VISITOR TOKEN: new messages and status changes of the conversation.")
    async def visitor_events(self, info: Ctx) -> AsyncGenerator[VisitorEvent, None]:
        claims = _visitor(info)
        try:
            async for event in use_cases.visitor_events(info.context.state, claims):
                message = event.message
                yield VisitorEvent(
                    type=event.type,
                    message=(await _visitor_messages(info, claims, [message]))[0] if message is not None else None,
                    status=event.status,
                )
        except use_cases.InvalidVisitorToken as exc:
            raise _refused(exc) from None
