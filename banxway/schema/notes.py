"""Internal notes on a thread, with @mentions: noteAdd, noteUpdate (the author), noteDelete (the author, or
NOTE_MODERATE)."""

from __future__ import annotations

import uuid
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
    edited_at: datetime | None = strawberry.field(description="When the author last changed the text; null: never.")

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


@strawberry.input
class NoteUpdateInput:
    note_id: strawberry.ID
    body: str = strawberry.field(description="The whole new text; `@email` of a colleague mentions them.")
    mentioned_user_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Mentions besides the body's `@email`s; left out: those the note was given before.",
    )


@strawberry.input
class NoteDeleteInput:
    note_id: strawberry.ID


@strawberry.type
class NotePayload:
    note: Note | None = None
    user_errors: list[NoteError]  # type: ignore[valid-type]


@strawberry.type
class NoteDeletePayload:
    deleted_id: strawberry.ID | None = None
    thread: ThreadRef | None = None
    user_errors: list[NoteError]  # type: ignore[valid-type]


def _mentioned(ids: list[strawberry.ID] | None) -> list[uuid.UUID]:
    return [decode(u, "User", f"mentionedUserIds.{i}") for i, u in enumerate(ids or [])]


@strawberry.type
class NoteMutation:
    @strawberry.mutation
    async def note_add(self, info: Ctx, input: NoteAddInput) -> NotePayload:
        async def call() -> dict:
            note = await note_use_cases.note_add(
                info.context,
                thread_id=decode(input.thread_id, "Thread", "threadId"),
                body=input.body,
                mentioned_user_ids=_mentioned(input.mentioned_user_ids),
            )
            return {"note": note}

        return await mutate(NotePayload, NoteError, NoteErrorCode, call)

    @strawberry.mutation(
        description="Change the text of one's own note; its mentions are read again, and only colleagues it did "
        "not mention before are notified. Sets `editedAt`."
    )
    async def note_update(self, info: Ctx, input: NoteUpdateInput) -> NotePayload:
        async def call() -> dict:
            note = await note_use_cases.note_update(
                info.context,
                note_id=decode(input.note_id, "Note", "noteId"),
                body=input.body,
                mentioned_user_ids=None if input.mentioned_user_ids is None else _mentioned(input.mentioned_user_ids),
            )
            return {"note": note}

        return await mutate(NotePayload, NoteError, NoteErrorCode, call)

    @strawberry.mutation(
        description="Delete a note: one's own, or anyone's with NOTE_MODERATE (ADMIN, MANAGER). It leaves the "
        "thread's notes and `node`; its text is erased."
    )
    async def note_delete(self, info: Ctx, input: NoteDeleteInput) -> NoteDeletePayload:
        async def call() -> dict:
            note = await note_use_cases.note_delete(info.context, note_id=decode(input.note_id, "Note", "noteId"))
            thread = await info.context.loaders.thread_by_id.load(note.thread_id)
            return {"deleted_id": input.note_id, "thread": thread}

        return await mutate(NoteDeletePayload, NoteError, NoteErrorCode, call)
