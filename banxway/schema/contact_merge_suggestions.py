"""Merge suggestions of the contact resolver: two contacts that share an address, to merge or dismiss."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from banxway.resolvers import contact_resolver as use_cases
from banxway.schema.contacts import Contact
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode
from banxway.schema.nodes import Ctx, _id_field

ContactMergeSuggestionError, ContactMergeSuggestionErrorCode = error_type(
    "ContactMergeSuggestion", ["INVALID", "NOT_FOUND", "INVALID_TRANSITION"]
)


@strawberry.enum(description="OPEN until a person accepts (the contacts are merged) or dismisses it.")
class ContactMergeSuggestionStatus(enum.Enum):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    DISMISSED = "DISMISSED"


@strawberry.type(description="Two contacts found to share an address (the same phone number or email).")
class ContactMergeSuggestion:
    id: strawberry.ID = _id_field("ContactMergeSuggestion")
    address: str = strawberry.field(description="The address both contacts have (E.164 number or email).")
    created_at: datetime
    resolved_at: datetime | None

    @strawberry.field
    def status(self) -> ContactMergeSuggestionStatus:
        return ContactMergeSuggestionStatus(self.status)  # type: ignore[arg-type]

    @strawberry.field(description="One of the two contacts (the older one is kept when the suggestion is accepted).")
    async def contact(self, info: Ctx) -> Contact | None:
        return await info.context.loaders.contact_by_id.load(self.contact_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The other contact.")
    async def other_contact(self, info: Ctx) -> Contact | None:
        return await info.context.loaders.contact_by_id.load(self.other_contact_id)  # type: ignore[attr-defined]


@strawberry.input
class ContactMergeSuggestionInput:
    id: strawberry.ID


@strawberry.type
class ContactMergeSuggestionPayload:
    suggestion: ContactMergeSuggestion | None = None
    kept_contact: Contact | None = None
    user_errors: list[ContactMergeSuggestionError]  # type: ignore[valid-type]


@strawberry.type
class ContactMergeSuggestionQuery:
    @strawberry.field(description="Contacts that share an address, to merge or dismiss; newest first (500 at most).")
    async def contact_merge_suggestions(
        self, info: Ctx, status: ContactMergeSuggestionStatus | None = ContactMergeSuggestionStatus.OPEN
    ) -> list[ContactMergeSuggestion]:
        rows = await use_cases.contact_merge_suggestions(info.context, status.value if status else None)
        return rows  # type: ignore[return-value]


@strawberry.type
class ContactMergeSuggestionMutation:
    @strawberry.mutation(
        description="Merge the two contacts of a suggestion (as contactMerge, the older kept; undo with "
        "contactUnmerge). CONTACT_MERGE permission."
    )
    async def contact_merge_suggestion_accept(
        self, info: Ctx, input: ContactMergeSuggestionInput
    ) -> ContactMergeSuggestionPayload:
        async def call() -> dict:
            suggestion_id = decode(input.id, "ContactMergeSuggestion", "id")
            suggestion, kept_id, _ = await use_cases.contact_merge_suggestion_accept(info.context, suggestion_id)
            return {"suggestion": suggestion, "kept_contact": await info.context.loaders.contact_by_id.load(kept_id)}

        return await mutate(
            ContactMergeSuggestionPayload, ContactMergeSuggestionError, ContactMergeSuggestionErrorCode, call
        )

    @strawberry.mutation(description="Dismiss a merge suggestion; the same pair is not suggested again.")
    async def contact_merge_suggestion_dismiss(
        self, info: Ctx, input: ContactMergeSuggestionInput
    ) -> ContactMergeSuggestionPayload:
        async def call() -> dict:
            suggestion_id = decode(input.id, "ContactMergeSuggestion", "id")
            return {"suggestion": await use_cases.contact_merge_suggestion_dismiss(info.context, suggestion_id)}

        return await mutate(
            ContactMergeSuggestionPayload, ContactMergeSuggestionError, ContactMergeSuggestionErrorCode, call
        )
