"""Users and their organization: `me`, `organization`, `users`, and user management (admins); administration:
`organizationUpdate`, `meUpdate`, invitations (`userInvite`, `invitations`, `invitationRevoke`,
`invitationAccept`) and `userDeactivate` / `userReactivate` (banxway.resolvers.administration)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from banxway import db
from banxway.db.models import Invitation as InvitationRow
from banxway.resolvers import administration as admin_use_cases
from banxway.resolvers import users as user_use_cases
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.pagination import Connection, connection

if TYPE_CHECKING:
    from banxway.schema.messages import Attachment
    from banxway.schema.sla import BusinessHours, BusinessHoursInput

Role = strawberry.enum(db.Role, description="What a user may do; see the README's permission matrix.")
UserManagementError, UserManagementErrorCode = error_type("UserManagement", ["INVALID", "NOT_FOUND", "TAKEN"])
OrganizationError, OrganizationErrorCode = error_type("Organization", RECORD_CODES)
ProfileError, ProfileErrorCode = error_type("Profile", ["INVALID", "NOT_FOUND"])
InvitationError, InvitationErrorCode = error_type("Invitation", ["INVALID", "NOT_FOUND", "TAKEN", "INVALID_TOKEN"])
_NotificationType = strawberry.enum(db.NotificationType)


@strawberry.enum(description="PENDING until accepted or revoked; EXPIRED once past its expiry (7 days).")
class InvitationStatus(enum.Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


@strawberry.type
class Organization(Node):
    id: strawberry.ID = _id_field("Organization")
    name: str
    slug: str
    timezone: str = strawberry.field(description="The organization's IANA time zone, e.g. Asia/Kolkata.")
    signature: str | None = strawberry.field(
        description="The default email signature; a mailbox's own signature wins over it."
    )
    created_at: datetime

    is_type_of = _model_type_of(db.Organization)

    @strawberry.field(description="Its business hours (the SLA calendar: businessHoursSet); null: around the clock.")
    def business_hours(self, info: Ctx) -> Annotated[BusinessHours, strawberry.lazy("banxway.schema.sla")] | None:
        from banxway.calendar import BusinessCalendar
        from banxway.schema.sla import _business_hours

        data = self.business_hours  # type: ignore[attr-defined]
        return _business_hours(BusinessCalendar.from_dict(data)) if data else None

    @strawberry.field(description="The logo: an image attachment (organizationUpdate's logoAttachmentId).")
    async def logo(self, info: Ctx) -> Annotated[Attachment, strawberry.lazy("banxway.schema.messages")] | None:
        return await admin_use_cases.organization_logo(info.context, self.logo_attachment_id)  # type: ignore[attr-defined,return-value]

    @classmethod
    async def resolve_nodes(cls, *, info: Ctx, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        """Only the viewer's own organization; any other is as absent as a missing one."""
        own = str(info.context.viewer.organization_id)
        return [
            await info.context.loaders.organization_by_id.load(info.context.viewer.organization_id)
            if i == own
            else None
            for i in node_ids
        ]


@strawberry.type
class User(Node):
    id: strawberry.ID = _id_field("User")
    email: str
    name: str
    role: Role
    active: bool
    max_open_threads: int | None = strawberry.field(
        description="Team assignment skips the user at this many open threads (NEW, OPEN, PENDING); null: no cap."
    )
    available: bool = strawberry.field(description="Team assignment skips the user while false (away).")
    created_at: datetime

    is_type_of = _model_type_of(db.User)
    resolve_nodes = _node_resolver("user_by_id")

    @strawberry.field
    def organization(self, info: Ctx) -> Organization:
        return related(self, info, "organization", "organization_by_id", self.organization_id)  # type: ignore[attr-defined]

    @strawberry.field(
        description="In app and by email, for every notification type; only for yourself (null for others)."
    )
    def notification_preferences(self, info: Ctx) -> list[NotificationPreference] | None:
        if self.id != info.context.viewer.user_id:
            return None
        return [
            NotificationPreference(type=kind, in_app=in_app, email=email)
            for kind, in_app, email in admin_use_cases.notification_preferences(self)  # type: ignore[arg-type]
        ]

    @strawberry.field(description="When no notification email is sent; only for yourself (null for others).")
    def quiet_hours(self, info: Ctx) -> QuietHours | None:
        value = self.quiet_hours  # type: ignore[attr-defined]
        if self.id != info.context.viewer.user_id or not value:
            return None
        return QuietHours(start=value["start"], end=value["end"], timezone=value["timezone"])


@strawberry.type
class NotificationPreference:
    type: _NotificationType  # type: ignore[valid-type]
    in_app: bool = strawberry.field(description="Listed in notifications (and counted unread).")
    email: bool = strawberry.field(description="Mailed through the organization's first email account.")


@strawberry.type(description="Local times HH:MM in a time zone; may span midnight (22:00 to 07:00).")
class QuietHours:
    start: str
    end: str
    timezone: str


@strawberry.type(description="An invitation to join the organization; admins only (USER_MANAGE).")
class Invitation(Node):
    id: strawberry.ID = _id_field("Invitation")
    email: str
    name: str
    role: Role
    expires_at: datetime
    emailed_at: datetime | None = strawberry.field(description="When the invitation email went out.")
    accepted_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    is_type_of = _model_type_of(InvitationRow)

    @strawberry.field
    def status(self) -> InvitationStatus:
        return InvitationStatus(admin_use_cases.invitation_status(self))  # type: ignore[arg-type]

    @strawberry.field(description="The admin who invited.")
    def invited_by(self, info: Ctx) -> User | None:
        return related(self, info, "invited_by", "user_by_id", self.invited_by_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The user who accepted it.")
    def user(self, info: Ctx) -> User | None:
        return related(self, info, "user", "user_by_id", self.user_id)  # type: ignore[attr-defined]


@strawberry.input
class UserCreateInput:
    email: str
    name: str
    role: Role
    password: str


@strawberry.input
class UserUpdateInput:
    id: strawberry.ID
    name: str | None = None
    role: Role | None = None
    active: bool | None = None
    password: str | None = None


@strawberry.type
class UserPayload:
    user: User | None = None
    user_errors: list[UserManagementError]  # type: ignore[valid-type]


@strawberry.input
class UserIdInput:
    id: strawberry.ID


@strawberry.input(description="Fields left out stay as they are; null clears signature, logo and business hours.")
class OrganizationUpdateInput:
    name: str | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    business_hours: Annotated[BusinessHoursInput, strawberry.lazy("banxway.schema.sla")] | None = strawberry.UNSET
    signature: str | None = strawberry.UNSET
    logo_attachment_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class OrganizationPayload:
    organization: Organization | None = None
    user_errors: list[OrganizationError]  # type: ignore[valid-type]


@strawberry.input
class NotificationPreferenceInput:
    type: _NotificationType  # type: ignore[valid-type]
    in_app: bool = True
    email: bool = False


@strawberry.input
class QuietHoursInput:
    start: str = strawberry.field(description="HH:MM")
    end: str = strawberry.field(description="HH:MM")
    timezone: str


@strawberry.input(description="Fields left out stay as they are. A new password needs the current one.")
class MeUpdateInput:
    name: str | None = strawberry.UNSET
    current_password: str | None = strawberry.UNSET
    new_password: str | None = strawberry.UNSET
    notification_preferences: list[NotificationPreferenceInput] | None = strawberry.field(
        default=strawberry.UNSET, description="The types given change; the others stay as they are."
    )
    quiet_hours: QuietHoursInput | None = strawberry.field(default=strawberry.UNSET, description="null: none.")


@strawberry.type
class MeUpdatePayload:
    user: User | None = None
    access_token: str | None = strawberry.field(
        default=None, description="After a password change: your new access token (the old ones stop working)."
    )
    refresh_token: str | None = strawberry.field(default=None, description="After a password change, likewise.")
    user_errors: list[ProfileError]  # type: ignore[valid-type]


@strawberry.input
class UserInviteInput:
    email: str
    name: str
    role: Role


@strawberry.type
class UserInvitePayload:
    invitation: Invitation | None = None
    token: str | None = strawberry.field(
        default=None,
        description="The invitation's token, shown this once (it is also emailed to the invited address).",
    )
    user_errors: list[InvitationError]  # type: ignore[valid-type]


@strawberry.input
class InvitationRevokeInput:
    id: strawberry.ID


@strawberry.type
class InvitationPayload:
    invitation: Invitation | None = None
    user_errors: list[InvitationError]  # type: ignore[valid-type]


@strawberry.input
class InvitationAcceptInput:
    token: str
    password: str
    name: str | None = strawberry.field(default=None, description="Your name; default: the one you were invited as.")


@strawberry.type
class InvitationAcceptPayload:
    access_token: str | None = None
    refresh_token: str | None = None
    user: User | None = None
    user_errors: list[InvitationError]  # type: ignore[valid-type]


@strawberry.type
class UserQuery:
    @strawberry.field(description="The signed-in user.")
    def me(self, info: Ctx) -> User:
        return info.context.loaders.user_by_id.load(info.context.viewer.user_id)  # type: ignore[return-value]

    @strawberry.field(description="The signed-in user's organization.")
    def organization(self, info: Ctx) -> Organization:
        return info.context.loaders.organization_by_id.load(info.context.viewer.organization_id)  # type: ignore[return-value]

    @strawberry.field(description="Users of the organization, oldest first.")
    async def users(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[User]:
        return connection(
            await user_use_cases.users_page(info.context, first=first, after=after, last=last, before=before)
        )

    @strawberry.field(description="The organization's invitations, newest first (admins).")
    async def invitations(self, info: Ctx, status: InvitationStatus | None = None) -> list[Invitation]:
        return await admin_use_cases.invitations(info.context, status.value if status else None)  # type: ignore[return-value]


@strawberry.type
class UserMutation:
    @strawberry.mutation(description="Create a user in your organization (admin).")
    async def user_create(self, info: Ctx, input: UserCreateInput) -> UserPayload:
        async def call() -> dict:
            user = await user_use_cases.user_create(
                info.context,
                email=input.email,
                name=input.name,
                role=input.role,
                password=input.password,
            )
            return {"user": user}

        return await mutate(UserPayload, UserManagementError, UserManagementErrorCode, call)

    @strawberry.mutation(description="Change a user's name, role, password or active flag (admin).")
    async def user_update(self, info: Ctx, input: UserUpdateInput) -> UserPayload:
        async def call() -> dict:
            user_id = decode(input.id, "User", "id")
            user = await user_use_cases.user_update(
                info.context,
                user_id,
                name=input.name,
                role=input.role,
                active=input.active,
                password=input.password,
            )
            return {"user": user}

        return await mutate(UserPayload, UserManagementError, UserManagementErrorCode, call)

    @strawberry.mutation(description="Deactivate a user: signed out everywhere; not yourself, not the last admin.")
    async def user_deactivate(self, info: Ctx, input: UserIdInput) -> UserPayload:
        async def call() -> dict:
            user = await admin_use_cases.user_deactivate(info.context, decode(input.id, "User", "id"))
            return {"user": user}

        return await mutate(UserPayload, UserManagementError, UserManagementErrorCode, call)

    @strawberry.mutation(description="Let a deactivated user sign in again (admin).")
    async def user_reactivate(self, info: Ctx, input: UserIdInput) -> UserPayload:
        async def call() -> dict:
            user = await admin_use_cases.user_reactivate(info.context, decode(input.id, "User", "id"))
            return {"user": user}

        return await mutate(UserPayload, UserManagementError, UserManagementErrorCode, call)

    @strawberry.mutation(description="Change the organization's settings (admin); audited.")
    async def organization_update(self, info: Ctx, input: OrganizationUpdateInput) -> OrganizationPayload:
        async def call() -> dict:
            values = changes(input, {"name": "name", "timezone": "timezone", "signature": "signature"})
            if given(input.business_hours):
                from banxway.schema.sla import _calendar_data

                data = input.business_hours
                values["business_hours"] = _calendar_data(data) if data is not None else None  # type: ignore[arg-type]
            if given(input.logo_attachment_id):
                values["logo_attachment_id"] = decode_optional(
                    input.logo_attachment_id, "Attachment", "logoAttachmentId"
                )
            return {"organization": await admin_use_cases.organization_update(info.context, values)}

        return await mutate(OrganizationPayload, OrganizationError, OrganizationErrorCode, call)

    @strawberry.mutation(description="Change your own name, password, notification preferences and quiet hours.")
    async def me_update(self, info: Ctx, input: MeUpdateInput) -> MeUpdatePayload:
        async def call() -> dict:
            values = changes(
                input,
                {
                    "name": "name",
                    "current_password": "current_password",
                    "new_password": "new_password",
                    "quiet_hours": "quiet_hours",
                },
            )
            if values.get("quiet_hours") is not None:
                hours = values["quiet_hours"]
                values["quiet_hours"] = {"start": hours.start, "end": hours.end, "timezone": hours.timezone}
            if given(input.notification_preferences) and input.notification_preferences is not None:
                values["notification_preferences"] = [
                    {"type": p.type, "in_app": p.in_app, "email": p.email} for p in input.notification_preferences
                ]
            user, tokens = await admin_use_cases.me_update(info.context, values)
            if tokens is None:
                return {"user": user}
            await info.context.sign_in(user)  # the rest of the operation reads as the new session
            return {"user": user, "access_token": tokens.access_token, "refresh_token": tokens.refresh_token}

        return await mutate(MeUpdatePayload, ProfileError, ProfileErrorCode, call)

    @strawberry.mutation(description="Invite someone to the organization by email (admin); valid 7 days, single use.")
    async def user_invite(self, info: Ctx, input: UserInviteInput) -> UserInvitePayload:
        async def call() -> dict:
            invitation, token = await admin_use_cases.user_invite(
                info.context, email=input.email, name=input.name, role=input.role
            )
            return {"invitation": invitation, "token": token}

        return await mutate(UserInvitePayload, InvitationError, InvitationErrorCode, call)

    @strawberry.mutation(description="Revoke a pending invitation (admin): its token stops working.")
    async def invitation_revoke(self, info: Ctx, input: InvitationRevokeInput) -> InvitationPayload:
        async def call() -> dict:
            invitation_id = decode(input.id, "Invitation", "id")
            return {"invitation": await admin_use_cases.invitation_revoke(info.context, invitation_id)}

        return await mutate(InvitationPayload, InvitationError, InvitationErrorCode, call)

    @strawberry.mutation(
        description="Accept an invitation (no sign-in needed): creates your user and signs you in, like authLogin."
    )
    async def invitation_accept(self, info: Ctx, input: InvitationAcceptInput) -> InvitationAcceptPayload:
        async def call() -> dict:
            result = await admin_use_cases.invitation_accept(info.context, input.token, input.password, input.name)
            return {"access_token": result.access_token, "refresh_token": result.refresh_token, "user": result.user}

        return await mutate(InvitationAcceptPayload, InvitationError, InvitationErrorCode, call)
