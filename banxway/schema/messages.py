"""Messages of a thread on every channel, their attachments and calls, sending one (files too, as multipart
uploads), and editing or cancelling a scheduled one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.file_uploads import Upload

from banxway import db
from banxway.errors import DomainError
from banxway.resolvers import attachments as attachment_use_cases
from banxway.resolvers import inbox as inbox_use_cases
from banxway.resolvers import messages as message_use_cases
from banxway.resolvers import outbound as outbound_use_cases
from banxway.resolvers import retries as retry_use_cases
from banxway.schema.analysis import MessageAnalysis
from banxway.schema.contacts import Contact
from banxway.schema.enums import Channel
from banxway.schema.errors import THREAD_CODES, error_type, mutate
from banxway.schema.ids import decode, to_global_id
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.users import User

if TYPE_CHECKING:
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]

Direction = strawberry.enum(db.Direction)
MessageStatus = strawberry.enum(db.MessageStatus)
MessageError, MessageErrorCode = error_type(
    "Message",
    [*THREAD_CODES, "THREAD_CHANGED", "WINDOW_CLOSED", "CHANNEL_NOT_CONFIGURED", "TOO_LARGE", "NOT_SCHEDULED"],
)
AttachmentError, AttachmentErrorCode = error_type("Attachment", ["INVALID", "TOO_LARGE"])


@strawberry.type
class Message(Node):
    id: strawberry.ID = _id_field("Message")
    channel: Channel
    direction: Direction
    status: MessageStatus
    send_at: datetime | None = strawberry.field(description="A scheduled send: when it goes (or went).")
    body: str
    subject: str | None
    html: str | None
    sender: str | None
    recipients: list[str]
    error: str | None = strawberry.field(description="Why delivery failed, in the provider's words.")
    segments: int | None = strawberry.field(
        description="SMS: the segments the body is sent in (GSM-7: 160, then 153 each; UCS-2: 70, then 67)."
    )
    created_at: datetime

    is_type_of = _model_type_of(db.Message)
    resolve_nodes = _node_resolver("message_by_id")

    @strawberry.field
    def thread(self, info: Ctx) -> ThreadRef:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def author(self, info: Ctx) -> User | None:
        return related(self, info, "author", "user_by_id", self.author_id)  # type: ignore[attr-defined]

    @strawberry.field
    def contact(self, info: Ctx) -> Contact | None:
        return related(self, info, "contact", "contact_by_id", self.contact_id)  # type: ignore[attr-defined]

    @strawberry.field(
        description="Sent by an AI agent (its answer to the customer's message), not by a person; `author` is the "
        "user the agent acts as."
    )
    def sent_by_agent(self) -> bool:
        return (self.idempotency_key or "").startswith("aiagent:")  # type: ignore[attr-defined]

    @strawberry.field(
        description="What analysis found in an inbound message (language, sentiment, intent, freight entities); null "
        "until it is analysed, a few seconds after it arrives, and for outbound messages."
    )
    async def analysis(self, info: Ctx) -> MessageAnalysis | None:
        return await info.context.loaders.analysis_by_message_id.load(self.id)  # type: ignore[attr-defined,return-value]

    @strawberry.field(description="Files of the message.")
    async def attachments(self, info: Ctx) -> list[Attachment]:
        return await info.context.loaders.attachments_by_message_id.load(self.id)  # type: ignore[attr-defined,return-value]

    @strawberry.field(description="An inbound email's whole text, quoted history included (`body` is the reply).")
    async def full_body(self, info: Ctx) -> str | None:
        return await inbox_use_cases.message_full_body(info.context, self.id)  # type: ignore[arg-type]

    @strawberry.field(description="A VOICE message's call: status, length, recording and transcript.")
    async def call(self, info: Ctx) -> Call | None:
        if self.channel != db.Channel.VOICE:  # type: ignore[comparison-overlap]
            return None
        headers = await info.context.loaders.headers_by_message_id.load(self.id)  # type: ignore[attr-defined]
        if headers is None:
            return Call(status=None, duration_seconds=None, recorded=False, transcript=None, transcript_error=None)
        return Call(
            status=headers.call_status,
            duration_seconds=headers.duration,
            recorded=bool(headers.recording_url),
            transcript=headers.transcript,
            transcript_error=headers.transcript_error,
        )


# Columns read by Message's fields that are not simply a column or a link's key (`lookahead.columns_for`):
# none are listed, so a selection with `attachments`, `fullBody` or `call` loads the whole row.
MESSAGE_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {}


@strawberry.type(description="What the provider reported about a call.")
class Call:
    status: str | None = strawberry.field(description="The provider's word: in-progress, completed, busy, ….")
    duration_seconds: int | None
    recorded: bool
    transcript: str | None
    transcript_error: str | None = strawberry.field(description="Why there is no transcript.")


@strawberry.type(
    description="A file to send or attached to a message: download it from `url` with the access token, or from "
    "`downloadUrl` without one (`<img src>`, `<a href>`)."
)
class Attachment(Node):
    id: strawberry.ID = _id_field("Attachment")
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool
    content_id: str | None

    is_type_of = _model_type_of(db.Attachment)

    @strawberry.field(
        description="The download path, relative to the API's origin; needs `Authorization: Bearer <token>`."
    )
    def url(self) -> str:
        return f"/attachments/{to_global_id('Attachment', self.id)}"  # type: ignore[attr-defined]

    @strawberry.field(
        description="A signed download path, relative to the API's origin, that needs no Authorization header "
        "(for `<img src>` and `<a href>`): valid for this file only, for BANXWAY_ATTACHMENT_URL_TTL seconds (at least "
        "two thirds of it); then 403, and a new one is asked for."
    )
    def download_url(self, info: Ctx) -> str:
        query = attachment_use_cases.signed_query(info.context, self)  # type: ignore[arg-type]
        return f"/attachments/{to_global_id('Attachment', self.id)}?{query}"  # type: ignore[attr-defined]


async def read_upload(value: object, field: str, limit: int) -> attachment_use_cases.FileUpload:
    """An uploaded file (a part of a multipart request) read into memory: at most one byte past `limit`, which is
    enough for the use-case to say it is too large."""
    read = getattr(value, "read", None)
    if not callable(read):
        raise DomainError(
            "INVALID",
            "Send the file as a part of a multipart request (the GraphQL multipart request spec), not as a value.",
            field,
        )
    data = await read(limit + 1)
    # browsers (WHATWG's multipart/form-data) and httpx write a `"` of a file's name as %22
    name = (getattr(value, "filename", None) or "").replace("%22", '"')
    return attachment_use_cases.FileUpload(name, getattr(value, "content_type", None) or "", data)


@strawberry.input(description="An approved WhatsApp template and its parameters ({{1}}, {{2}}, …).")
class TemplateSendInput:
    name: str
    language: str
    parameters: list[str] = strawberry.field(default_factory=list)

    def choice(self) -> outbound_use_cases.TemplateChoice:
        return outbound_use_cases.TemplateChoice(self.name, self.language, list(self.parameters))


@strawberry.input
class MessageCancelScheduledInput:
    message_id: strawberry.ID


@strawberry.input
class MessageRetryInput:
    message_id: strawberry.ID


@strawberry.input(description="What to change of a scheduled message; what is left out stays.")
class MessageUpdateScheduledInput:
    message_id: strawberry.ID
    body: str | None = None
    subject: str | None = None
    html: str | None = strawberry.field(
        default=None, description="Required with a new body when the message has an HTML part."
    )
    send_at: datetime | None = strawberry.field(
        default=None, description="A new time (in the future, within a year); the message goes then."
    )


@strawberry.input(description="A file to upload: a part of a multipart request (the GraphQL multipart request spec).")
class AttachmentUploadInput:
    file: Upload


@strawberry.type
class AttachmentPayload:
    attachment: Attachment | None = None
    user_errors: list[AttachmentError]  # type: ignore[valid-type]


@strawberry.input
class MessageSendInput:
    thread_id: strawberry.ID
    channel: Channel
    body: str = strawberry.field(default="", description="Required unless a WhatsApp template is sent.")
    subject: str | None = None
    html: str | None = None
    to: list[str] | None = strawberry.field(
        default=None, description="Recipients; default: the thread contact's address on the channel."
    )
    attachment_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Files uploaded before (attachmentUpload, POST /attachments). EMAIL only."
    )
    files: list[Upload] | None = strawberry.field(
        default=None,
        description="Files uploaded with the send, as parts of a multipart request (the GraphQL multipart request "
        "spec); a bad one fails the send naming files.<index>. EMAIL only.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key returns the first message instead of sending twice."
    )
    based_on_cursor: str | None = strawberry.field(
        default=None,
        description="The cursor of the last InboxEvent the writer saw: if someone else added a message to the "
        "thread since, the send fails with THREAD_CHANGED (collision guard).",
    )
    force: bool = strawberry.field(default=False, description="Send even if the thread changed (see basedOnCursor).")
    template: TemplateSendInput | None = strawberry.field(
        default=None,
        description="WhatsApp: send an approved template (the only thing allowed outside the 24-hour window).",
    )
    send_at: datetime | None = strawberry.field(
        default=None,
        description="Send later (within a year): the message is SCHEDULED until then, cancellable with "
        "messageCancelScheduled; it counts as the reply (first response, SLA) when it goes.",
    )
    message_tag: str | None = strawberry.field(
        default=None,
        description="MESSENGER/INSTAGRAM: the message tag (ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE, "
        "POST_PURCHASE_UPDATE, HUMAN_AGENT) that allows a send outside the 24-hour window.",
    )


@strawberry.type
class MessagePayload:
    message: Message | None = None
    user_errors: list[MessageError]  # type: ignore[valid-type]


@strawberry.type
class MessageMutation:
    @strawberry.mutation(
        description="Send a message: QUEUED for its channel, or SENT at once when INTERNAL. A channel the "
        "organization has not configured (configurationStatus) fails at once with CHANNEL_NOT_CONFIGURED."
    )
    async def message_send(self, info: Ctx, input: MessageSendInput) -> MessagePayload:
        async def call() -> dict:
            limit = info.context.settings.attachment_max_bytes
            files = [await read_upload(f, f"files.{i}", limit) for i, f in enumerate(input.files or [])]
            message = await message_use_cases.message_send(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                channel=input.channel,
                body=input.body,
                subject=input.subject,
                html=input.html,
                to=input.to,
                attachment_ids=[decode(a, "Attachment", "attachmentIds") for a in input.attachment_ids or []],
                files=files,
                idempotency_key=input.idempotency_key,
                based_on_cursor=input.based_on_cursor,
                force=input.force,
                template=input.template.choice() if input.template is not None else None,
                send_at=input.send_at,
                message_tag=input.message_tag,
            )
            return {"message": message}

        return await mutate(MessagePayload, MessageError, MessageErrorCode, call)

    @strawberry.mutation(
        description="Send a FAILED outbound message again (e.g. after a provider outage): QUEUED, then delivered "
        "as any message; INVALID_TRANSITION for a message that did not fail."
    )
    async def message_retry(self, info: Ctx, input: MessageRetryInput) -> MessagePayload:
        async def call() -> dict:
            message_id = decode(input.message_id, "Message", "messageId")
            return {"message": await retry_use_cases.message_retry(info.context, message_id)}

        return await mutate(MessagePayload, MessageError, MessageErrorCode, call)

    @strawberry.mutation(description="Cancel a scheduled message that has not gone yet; it stays, CANCELLED.")
    async def message_cancel_scheduled(self, info: Ctx, input: MessageCancelScheduledInput) -> MessagePayload:
        async def call() -> dict:
            message_id = decode(input.message_id, "Message", "messageId")
            return {"message": await message_use_cases.message_cancel_scheduled(info.context, message_id)}

        return await mutate(MessagePayload, MessageError, MessageErrorCode, call)

    @strawberry.mutation(
        description="Edit a scheduled message that has not gone yet (its text, or when it goes); NOT_SCHEDULED once "
        "it was released or cancelled. Allowed to whoever may cancel it."
    )
    async def message_update_scheduled(self, info: Ctx, input: MessageUpdateScheduledInput) -> MessagePayload:
        async def call() -> dict:
            message = await message_use_cases.message_update_scheduled(
                info.context,
                decode(input.message_id, "Message", "messageId"),
                body=input.body,
                subject=input.subject,
                html=input.html,
                send_at=input.send_at,
            )
            return {"message": message}

        return await mutate(MessagePayload, MessageError, MessageErrorCode, call)

    @strawberry.mutation(
        description="Upload a file to send (messageSend's attachmentIds) as a multipart request (the GraphQL "
        "multipart request spec): what POST /attachments does. For users who may send messages."
    )
    async def attachment_upload(self, info: Ctx, input: AttachmentUploadInput) -> AttachmentPayload:
        async def call() -> dict:
            upload = await read_upload(input.file, "file", info.context.settings.attachment_max_bytes)
            row = await attachment_use_cases.attachment_upload(
                info.context,
                filename=upload.filename,
                content_type=upload.content_type,
                data=upload.data,
                field="file",
            )
            return {"attachment": row}

        return await mutate(AttachmentPayload, AttachmentError, AttachmentErrorCode, call)
