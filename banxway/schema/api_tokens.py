"""Personal API tokens: `apiTokens`, `apiTokenCreate` (the secret shown once) and `apiTokenRevoke`."""

from __future__ import annotations

from datetime import datetime

import strawberry

from banxway import db
from banxway.auth import ApiTokenScope
from banxway.resolvers import api_tokens as token_use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, related
from banxway.schema.pagination import Connection, connection
from banxway.schema.users import User

ApiTokenScope = strawberry.enum(
    ApiTokenScope,
    name="ApiTokenScope",
    description=(
        "What a personal API token may do, never more than its user's role: READ (queries and subscriptions), "
        "WRITE (mutations, but for writing to customers), SEND (messageSend on customer channels, callStart, "
        "attachment uploads)."
    ),
)
ApiTokenError, ApiTokenErrorCode = error_type("ApiToken", ["INVALID", "NOT_FOUND", "TOO_LONG", "TOO_MANY"])


@strawberry.type(
    description="A personal API token for scripts and agents (`Authorization: Bearer bxp_...`); its secret is "
    "shown once, by apiTokenCreate."
)
class ApiToken(Node):
    id: strawberry.ID = _id_field("ApiToken")
    name: str
    prefix: str = strawberry.field(description="The secret's first characters, to tell tokens apart.")
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = strawberry.field(description="Updated at most once a minute.")
    revoked_at: datetime | None

    is_type_of = _model_type_of(db.ApiToken)

    @strawberry.field(description="What the token may do, within its user's role.")
    def scopes(self) -> list[ApiTokenScope]:  # type: ignore[valid-type]
        return [ApiTokenScope[name] for name in self.scopes if name in ApiTokenScope.__members__]  # type: ignore[attr-defined]

    @strawberry.field(description="The user it acts as.")
    def user(self, info: Ctx) -> User:
        return related(self, info, "user", "user_by_id", self.user_id)  # type: ignore[attr-defined]


@strawberry.input
class ApiTokenCreateInput:
    name: str = strawberry.field(description="What the token is for, e.g. 'nightly tracking sync'.")
    scopes: list[ApiTokenScope]  # type: ignore[valid-type]
    expires_at: datetime | None = strawberry.field(
        default=None, description="Default: 90 days from now; at most 366 days."
    )


@strawberry.input
class ApiTokenRevokeInput:
    id: strawberry.ID


@strawberry.type
class ApiTokenCreatePayload:
    api_token: ApiToken | None = None
    secret: str | None = strawberry.field(
        default=None, description="The token itself (`bxp_...`): shown this once, never again; only a hash is kept."
    )
    user_errors: list[ApiTokenError]  # type: ignore[valid-type]


@strawberry.type
class ApiTokenPayload:
    api_token: ApiToken | None = None
    user_errors: list[ApiTokenError]  # type: ignore[valid-type]


@strawberry.type
class ApiTokenQuery:
    @strawberry.field(
        description="The viewer's personal API tokens, newest first (revoked and expired ones too); `all: true` "
        "lists every user's of the organization (admins)."
    )
    async def api_tokens(
        self,
        info: Ctx,
        all: bool = False,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ApiToken]:
        return connection(
            await token_use_cases.api_tokens_page(
                info.context, everyone=all, first=first, after=after, last=last, before=before
            )
        )


@strawberry.type
class ApiTokenMutation:
    @strawberry.mutation(
        description="Create a personal API token; the payload's `secret` is the only time it is shown. Needs a "
        "signed-in session (not an API token)."
    )
    async def api_token_create(self, info: Ctx, input: ApiTokenCreateInput) -> ApiTokenCreatePayload:
        async def call() -> dict:
            token, secret = await token_use_cases.api_token_create(
                info.context, name=input.name, scopes=list(input.scopes), expires_at=input.expires_at
            )
            return {"api_token": token, "secret": secret}

        return await mutate(ApiTokenCreatePayload, ApiTokenError, ApiTokenErrorCode, call)

    @strawberry.mutation(
        description="Revoke one of your API tokens (admins: anyone's in the organization); it stops working at once."
    )
    async def api_token_revoke(self, info: Ctx, input: ApiTokenRevokeInput) -> ApiTokenPayload:
        async def call() -> dict:
            return {
                "api_token": await token_use_cases.api_token_revoke(info.context, decode(input.id, "ApiToken", "id"))
            }

        return await mutate(ApiTokenPayload, ApiTokenError, ApiTokenErrorCode, call)
