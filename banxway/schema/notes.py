"""Internal notes on a thread, with @mentions."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from banxway import db
from banxway.resolvers import notes as note_use_cases
from banxway.schema.errors import THREAD_CODES, error_type, mutate
from banxway.schema.ids import decode
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.users import User

if TYPE_CHECKING:
    from banxway.schema.threads import Thread

ThreadRef = Annotated["Thread", strawberry.lazy("banxway.schema.threads")]

NoteError, NoteErrorCode = error_type("Note", THREAD_CODES)


@strawberry.type
class Note(Node):
    id: strawberry.ID = _id_field("Note")
    body: str
    created_at: datetime

    is_type_of = _model_type_of(db.Note)
    resolve_nodes = _node_resolver("note_by_id")

    @strawberry.field
    def thread(self, info: Ctx) -> ThreadRef:
        return related(self, info, "thread", "thread_by_id", self.thread_id)  # type: ignore[attr-defined]

    @strawberry.field
    def author(self, info: Ctx) -> User | None:
        return related(self, info, "author", "user_by_id", self.author_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Colleagues @mentioned in the note.")
    async def mentions(self, info: Ctx) -> list[User]:
        users = await info.context.loaders.user_by_id.load_many(self.mentioned_user_ids)  # type: ignore[attr-defined]
        return [user for user in users if user is not None]  # type: ignore[misc]


@strawberry.input
class NoteAddInput:
    thread_id: strawberry.ID
    body: str = strawberry.field(description="`@email` of a colleague mentions them.")
    mentioned_user_ids: list[strawberry.ID] | None = None


@strawberry.type
class NotePayload:
    note: Note | None = None
    user_errors: list[NoteError]  # type: ignore[valid-type]


@strawberry.type
class NoteMutation:
    @strawberry.mutation
    async def note_add(self, info: Ctx, input: NoteAddInput) -> NotePayload:
        async def call() -> dict:
            note = await note_use_cases.note_add(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                body=input.body,
                mentioned_user_ids=[
                    decode(u, "User", f"mentionedUserIds.{i}") for i, u in enumerate(input.mentioned_user_ids or [])
                ],
            )
            return {"note": note}

        return await mutate(NotePayload, NoteError, NoteErrorCode, call)
