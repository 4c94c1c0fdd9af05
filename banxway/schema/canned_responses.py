"""Canned responses (banxway.resolvers.canned_responses)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from banxway import db
from banxway.resolvers import canned_responses as canned_use_cases
from banxway.schema.enums import Channel
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional
from banxway.schema.nodes import Ctx, _id_field, _model_type_of

CannedResponseError, CannedResponseErrorCode = error_type("CannedResponse", RECORD_CODES)
_VARIABLES = ", ".join(f"`{{{{{name}}}}}`" for name in canned_use_cases.VARIABLES)


@strawberry.type(
    description=f"A saved reply: shared by the organization or personal. Its body may use {_VARIABLES} "
    "(cannedResponseRender fills them in)."
)
class CannedResponse:
    id: strawberry.ID = _id_field("CannedResponse")
    name: str
    shortcut: str | None = strawberry.field(description="e.g. /quote; unique among the shared or one's own.")
    body: str
    channel: Channel | None = strawberry.field(description="Only offered on this channel; null: on every channel.")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.CannedResponse)

    @strawberry.field(description="true: the organization's (ADMIN and MANAGER manage it); false: the viewer's own.")
    def shared(self) -> bool:
        return self.owner_id is None  # type: ignore[attr-defined]


@strawberry.input
class CannedResponseCreateInput:
    name: str
    body: str
    shortcut: str | None = None
    channel: Channel | None = None
    personal: bool = strawberry.field(
        default=False, description="true: only the viewer sees it; false (default): shared, ADMIN and MANAGER only."
    )


@strawberry.input(description="Fields left out stay as they are; null clears shortcut and channel.")
class CannedResponseUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    body: str | None = strawberry.UNSET
    shortcut: str | None = strawberry.UNSET
    channel: Channel | None = strawberry.UNSET


@strawberry.type
class CannedResponsePayload:
    canned_response: CannedResponse | None = None
    user_errors: list[CannedResponseError]  # type: ignore[valid-type]


@strawberry.type
class CannedResponseDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[CannedResponseError]  # type: ignore[valid-type]


_FIELDS = {"name": "name", "body": "body", "shortcut": "shortcut", "channel": "channel"}


@strawberry.type
class CannedResponseQuery:
    @strawberry.field(
        description="The organization's shared canned responses and the viewer's own, by name; `search` matches "
        "name, shortcut and body; `channel` keeps those offered on it."
    )
    async def canned_responses(
        self, info: Ctx, search: str | None = None, channel: Channel | None = None
    ) -> list[CannedResponse]:
        return await canned_use_cases.canned_responses(info.context, search, channel)  # type: ignore[return-value]

    @strawberry.field(
        description="The response's body with its variables filled from the thread (and the viewer, for "
        "{{agent.name}}); a variable without a value becomes empty. Null when the response or the thread is not "
        "found."
    )
    async def canned_response_render(
        self, info: Ctx, id: strawberry.ID, thread_id: strawberry.ID | None = None
    ) -> str | None:
        return await canned_use_cases.canned_response_render(
            info.context, decode(id, "CannedResponse", "id"), decode_optional(thread_id, "Thread", "threadId")
        )


@strawberry.type
class CannedResponseMutation:
    @strawberry.mutation(
        description="Shared (the default): ADMIN and MANAGER. Personal: anyone who sends messages or adds notes."
    )
    async def canned_response_create(self, info: Ctx, input: CannedResponseCreateInput) -> CannedResponsePayload:
        async def call() -> dict:
            values = {name: getattr(input, name) for name in _FIELDS}
            row = await canned_use_cases.canned_response_create(info.context, values, personal=input.personal)
            return {"canned_response": row}

        return await mutate(CannedResponsePayload, CannedResponseError, CannedResponseErrorCode, call)

    @strawberry.mutation(description="A shared one: ADMIN and MANAGER; a personal one: its owner.")
    async def canned_response_update(self, info: Ctx, input: CannedResponseUpdateInput) -> CannedResponsePayload:
        async def call() -> dict:
            response_id = decode(input.id, "CannedResponse", "id")
            row = await canned_use_cases.canned_response_update(info.context, response_id, changes(input, _FIELDS))
            return {"canned_response": row}

        return await mutate(CannedResponsePayload, CannedResponseError, CannedResponseErrorCode, call)

    @strawberry.mutation(description="A shared one: ADMIN and MANAGER; a personal one: its owner.")
    async def canned_response_delete(self, info: Ctx, id: strawberry.ID) -> CannedResponseDeletePayload:
        async def call() -> dict:
            await canned_use_cases.canned_response_delete(info.context, decode(id, "CannedResponse", "id"))
            return {"deleted_id": id}

        return await mutate(CannedResponseDeletePayload, CannedResponseError, CannedResponseErrorCode, call)
