"""Threads: the shared inbox (`threads`, with look-ahead prefetching), one thread, and the thread mutations."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import strawberry
from strawberry import UNSET

from banxway import db
from banxway.errors import DomainError
from banxway.resolvers import inbox as inbox_use_cases
from banxway.resolvers import teams as team_use_cases
from banxway.resolvers import threads as thread_use_cases
from banxway.resolvers.inbox import MESSAGES_ATTR, UNREAD_ATTR, MessageWindow, ThreadPrefetch
from banxway.schema import lookahead
from banxway.schema.actions import Action
from banxway.schema.analysis import Intent, Sentiment, ShipmentSuggestion
from banxway.schema.contacts import CONTACT_FIELD_COLUMNS, Contact
from banxway.schema.customers import CUSTOMER_FIELD_COLUMNS, Customer
from banxway.schema.enums import Channel, Priority, ThreadType
from banxway.schema.errors import THREAD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, filter_id, given, local_id
from banxway.schema.messages import MESSAGE_FIELD_COLUMNS, Message
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.notes import Note
from banxway.schema.pagination import Connection, connection
from banxway.schema.shipments import SHIPMENT_FIELD_COLUMNS, Shipment
from banxway.schema.sla import SlaPolicy, SlaStatus, SlaTarget
from banxway.schema.teams import AssignmentStrategy, Team
from banxway.schema.users import User

ThreadStatus = strawberry.enum(db.ThreadStatus)
ThreadError, ThreadErrorCode = error_type("Thread", THREAD_CODES)
ThreadBulkError, ThreadBulkErrorCode = error_type("ThreadBulk", [*THREAD_CODES, "FORBIDDEN"])


@strawberry.type
class Thread(Node):
    id: strawberry.ID = _id_field("Thread")
    reference: str = strawberry.field(description="BX-YYYY-NNNN, unique in the organization.")
    subject: str
    type: ThreadType
    status: ThreadStatus
    priority: Priority
    primary_channel: Channel
    tags: list[str]
    last_message_at: datetime | None
    snoozed_until: datetime | None = strawberry.field(
        description="Hidden from the default inbox until then (threadSnooze), or until the customer writes."
    )
    first_response_at: datetime | None
    sla_due_at: datetime | None = strawberry.field(
        description="When the nearest open SLA target is due; null without one, or while the thread is PENDING."
    )
    sla_status: SlaStatus | None = strawberry.field(description="Null when no SLA policy applies.")
    intent: Intent | None = strawberry.field(
        description="What the customer's latest analysed message asks for; null until one is analysed."
    )
    sentiment: Sentiment | None = strawberry.field(description="How the customer's latest analysed message sounds.")
    bot_suspended_until: datetime | None = strawberry.field(
        description="The AI agent does not answer on this thread until then (a person replied, or it handed the "
        "thread over); threadBotResume lifts it."
    )
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.Thread)
    resolve_nodes = _node_resolver("thread_by_id")

    @strawberry.field(
        description="Shipments the customer's messages named that the thread was not linked to (several matched, "
        "or it is linked to another); take one with shipmentSuggestionAccept."
    )
    async def shipment_suggestions(self, info: Ctx) -> list[ShipmentSuggestion]:
        return await info.context.loaders.suggestions_by_thread_id.load(self.id)  # type: ignore[return-value]

    @strawberry.field(description="The team the thread was given to (threadAssignTeam).")
    def team(self, info: Ctx) -> Team | None:
        return related(self, info, "team", "team_by_id", self.team_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The SLA policy the thread's targets come from.")
    def sla_policy(self, info: Ctx) -> SlaPolicy | None:
        return related(self, info, "sla_policy", "sla_policy_by_id", self.sla_policy_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Every SLA target of the thread, open and past, in the order they started.")
    async def sla_targets(self, info: Ctx) -> list[SlaTarget]:
        return await info.context.loaders.sla_targets_by_thread_id.load(self.id)  # type: ignore[return-value]

    @strawberry.field
    def customer(self, info: Ctx) -> Customer | None:
        return related(self, info, "customer", "customer_by_id", self.customer_id)  # type: ignore[attr-defined]

    @strawberry.field
    def contact(self, info: Ctx) -> Contact | None:
        return related(self, info, "contact", "contact_by_id", self.contact_id)  # type: ignore[attr-defined]

    @strawberry.field
    def shipment(self, info: Ctx) -> Shipment | None:
        return related(self, info, "shipment", "shipment_by_id", self.shipment_id)  # type: ignore[attr-defined]

    @strawberry.field
    def assignee(self, info: Ctx) -> User | None:
        return related(self, info, "assignee", "user_by_id", self.assignee_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Messages since the viewer last read the thread, not counting their own.")
    def unread_count(self, info: Ctx) -> int:
        prefetched = self.__dict__.get(UNREAD_ATTR)
        if prefetched is not None:
            return prefetched
        return info.context.loaders.unread_count_by_thread_id.load(self.id)  # type: ignore[return-value]

    @strawberry.field(description="Messages, oldest first. `last: 3` gives the three most recent.")
    def messages(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Message]:
        if after is None and before is None and (first is None) != (last is None):
            window = MessageWindow(size=min(first or last or 0, 100), from_end=last is not None)
            page = self.__dict__.get(MESSAGES_ATTR, {}).get(window.key)
            if page is not None:
                return connection(page)

        async def load() -> Connection[Message]:
            page = await inbox_use_cases.messages_page(
                info.context, self.id, first=first, after=after, last=last, before=before, count=True
            )
            return connection(page)

        return load()  # type: ignore[return-value]

    @strawberry.field(description="Internal notes, oldest first; deleted ones are left out.")
    async def notes(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Note]:
        return connection(await inbox_use_cases.notes_page(info.context, self.id, first=first, after=after))  # type: ignore[arg-type]

    @strawberry.field(description="Actions (tasks), oldest first.")
    async def actions(self, info: Ctx, first: int | None = None, after: str | None = None) -> Connection[Action]:
        return connection(await inbox_use_cases.actions_page(info.context, self.id, first=first, after=after))  # type: ignore[arg-type]


# -- the inbox query -----------------------------------------------------------------------


@strawberry.enum
class ThreadOrder(enum.Enum):
    LAST_ACTIVITY_DESC = "LAST_ACTIVITY_DESC"
    CREATED_DESC = "CREATED_DESC"
    PRIORITY = "PRIORITY"
    SLA_DUE = "SLA_DUE"


@strawberry.input(description="All given conditions must hold. Without `status`, archived threads are left out.")
class ThreadFilter:
    status: list[ThreadStatus] | None = None
    assignee_id: strawberry.ID | None = None
    assigned_to_me: bool | None = None
    unassigned: bool | None = None
    customer_id: strawberry.ID | None = None
    contact_id: strawberry.ID | None = None
    shipment_id: strawberry.ID | None = None
    channel: Channel | None = None
    type: ThreadType | None = None
    priority: Priority | None = None
    tag: str | None = None
    search: str | None = strawberry.field(
        default=None,
        description=(
            "Words a thread must match, each as a prefix (`contain` finds container, `MSCU12` the container "
            "MSCU1234567), all in one of: its subject or reference, a message, a note, its shipment's reference, "
            "container, BL, booking or AWB number, its customer's name or code, its contact's name. Text without "
            "a letter or digit filters nothing."
        ),
    )
    updated_since: datetime | None = None
    sla_status: list[SlaStatus] | None = strawberry.field(default=None, description="Any of these SLA statuses.")
    team_id: strawberry.ID | None = None
    snoozed: bool | None = strawberry.field(
        default=None, description="true: only threads snoozed now; otherwise they are left out."
    )
    intent: list[Intent] | None = strawberry.field(default=None, description="Any of these intents.")
    sentiment: list[Sentiment] | None = strawberry.field(default=None, description="Any of these sentiments.")


def thread_filter(where: ThreadFilter | None) -> thread_use_cases.ThreadFilter | None:
    if where is None:
        return None
    return thread_use_cases.ThreadFilter(
        status=where.status,
        assignee_id=filter_id(where.assignee_id, "User"),
        assigned_to_me=where.assigned_to_me,
        unassigned=where.unassigned,
        customer_id=filter_id(where.customer_id, "Customer"),
        contact_id=filter_id(where.contact_id, "Contact"),
        shipment_id=filter_id(where.shipment_id, "Shipment"),
        channel=where.channel,
        type=where.type,
        priority=where.priority,
        tag=where.tag,
        sla_status=where.sla_status,
        team_id=filter_id(where.team_id, "Team"),
        snoozed=where.snoozed,
        intent=where.intent,
        sentiment=where.sentiment,
        search=where.search,
        updated_since=where.updated_since,
    )


# The links a page of threads can join in, with the columns their types' other fields read
# (for look-ahead column loading, `lookahead.columns_for`).
_LINKS: tuple[tuple[str, type, dict[str, tuple[str, ...]]], ...] = (
    ("customer", db.Customer, CUSTOMER_FIELD_COLUMNS),
    ("contact", db.Contact, CONTACT_FIELD_COLUMNS),
    ("shipment", db.Shipment, SHIPMENT_FIELD_COLUMNS),
    ("assignee", db.User, {}),
)


def _thread_prefetch(info: Ctx) -> tuple[ThreadPrefetch, bool]:
    """What the selection under `threads` needs, and whether it asks for totalCount."""
    field = info.selected_fields[0]
    nodes = lookahead.connection_nodes(field)
    links = {}
    for name, model, extra in _LINKS:
        selected = lookahead.children(nodes, name)
        if selected:
            links[name] = lookahead.columns_for(model, selected, extra)
    windows = []
    for messages in lookahead.children(nodes, "messages"):
        args = messages.arguments
        first, last = lookahead.int_argument(args, "first"), lookahead.int_argument(args, "last")
        if args.get("after") is None and args.get("before") is None and (first is None) != (last is None):
            columns = lookahead.columns_for(db.Message, lookahead.connection_nodes(messages), MESSAGE_FIELD_COLUMNS)
            windows.append(MessageWindow(size=min(first or last or 0, 100), from_end=last is not None, columns=columns))
    prefetch = ThreadPrefetch(
        links=tuple(sorted(links.items())),
        unread=lookahead.selects(nodes, "unreadCount"),
        message_windows=tuple(dict.fromkeys(windows)),
    )
    return prefetch, lookahead.selects([field], "totalCount")


# -- mutations -----------------------------------------------------------------------------


def one_of(input: object, names: dict[str, str], type_name: str) -> tuple[uuid.UUID, str]:
    """The id given under exactly one of an input's names for it — the current one first, then deprecated ones
    that older clients still send (`{"thread_id": "threadId", "id": "id"}`) — and the name it came under.
    Neither, or more than one: INVALID, naming them all."""
    given_under = [(attr, field) for attr, field in names.items() if getattr(input, attr) not in (None, UNSET)]
    if len(given_under) != 1:
        current, *old = names.values()
        listed = " or ".join(f"`{name}`" for name in old)
        problem = "more than one was given" if given_under else "neither was given"
        raise DomainError(
            "INVALID", f"Give the {type_name.lower()} as `{current}` (or, deprecated, {listed}): {problem}.", current
        )
    attr, field = given_under[0]
    return decode(getattr(input, attr), type_name, field), field


@strawberry.input
class ThreadCreateInput:
    subject: str
    type: ThreadType | None = None
    primary_channel: Channel | None = None
    priority: Priority | None = None
    customer_id: strawberry.ID | None = None
    contact_id: strawberry.ID | None = None
    shipment_id: strawberry.ID | None = None
    tags: list[str] | None = None


@strawberry.input(description="The thread (`threadId`) and the fields to change; fields left out stay as they are.")
class ThreadUpdateInput:
    thread_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Required (or, from older clients, `id`)."
    )
    id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, deprecation_reason="Use `threadId`, as every other thread mutation does."
    )
    subject: str | None = strawberry.UNSET
    type: ThreadType | None = strawberry.UNSET
    status: ThreadStatus | None = strawberry.UNSET
    priority: Priority | None = strawberry.UNSET
    primary_channel: Channel | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    customer_id: strawberry.ID | None = strawberry.UNSET
    contact_id: strawberry.ID | None = strawberry.UNSET
    shipment_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class ThreadAssignTeamInput:
    thread_id: strawberry.ID
    team_id: strawberry.ID
    strategy: AssignmentStrategy = team_use_cases.Strategy.ROUND_ROBIN  # type: ignore[valid-type]


@strawberry.input
class ThreadAssignInput:
    thread_id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(default=None, description="null unassigns.")


@strawberry.input
class ThreadArchiveInput:
    thread_id: strawberry.ID


@strawberry.input
class ThreadMarkReadInput:
    thread_id: strawberry.ID


@strawberry.input
class ThreadSnoozeInput:
    thread_id: strawberry.ID
    until: datetime | None = strawberry.field(description="Within a year; null shows the thread again now.")


@strawberry.input
class ThreadMarkUnreadInput:
    thread_id: strawberry.ID


@strawberry.input(description="The changes threadsBulkUpdate makes to every thread; fields left out stay as they are.")
class ThreadsBulkUpdateInput:
    thread_ids: list[strawberry.ID] = strawberry.field(description="1 to 100 threads.")
    status: ThreadStatus | None = None
    priority: Priority | None = None
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null unassigns; left out, the assignees stay."
    )
    archive: bool | None = strawberry.field(default=None, description="true archives (as threadArchive).")


@strawberry.type
class ThreadPayload:
    thread: Thread | None = None
    user_errors: list[ThreadError]  # type: ignore[valid-type]


@strawberry.type
class ThreadsBulkUpdatePayload:
    threads: list[Thread] = strawberry.field(description="The threads that changed (or needed no change), in order.")
    user_errors: list[ThreadBulkError] = strawberry.field(  # type: ignore[valid-type]
        description='Per thread that was left as it was, `field: ["threadIds", "<index>"]`; or about the whole input.'
    )


@strawberry.type
class ThreadQuery:
    @strawberry.field(description="The shared inbox: threads the viewer may see, most recent activity first.")
    async def threads(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ThreadFilter | None = None,
        order_by: ThreadOrder = ThreadOrder.LAST_ACTIVITY_DESC,
    ) -> Connection[Thread]:
        prefetch, count = _thread_prefetch(info)
        page = await inbox_use_cases.threads_page(
            info.context,
            thread_filter(filter),
            order_by.value,
            first=first,
            after=after,
            last=last,
            before=before,
            prefetch=prefetch,
            count=count,
        )
        return connection(page)

    @strawberry.field(description="A thread by id; null if it does not exist or is not yours.")
    def thread(self, info: Ctx, id: strawberry.ID) -> Thread | None:
        thread_id = local_id(id, "Thread")
        info.context.viewer  # noqa: B018 - authentication required
        return info.context.loaders.thread_by_id.load(thread_id) if thread_id else None  # type: ignore[return-value]

    @strawberry.field(description="A thread by its reference (BX-2026-0042).")
    async def thread_by_reference(self, info: Ctx, reference: str) -> Thread | None:
        return await thread_use_cases.thread_by_reference(info.context, reference)  # type: ignore[return-value]


@strawberry.type
class ThreadMutation:
    @strawberry.mutation
    async def thread_create(self, info: Ctx, input: ThreadCreateInput) -> ThreadPayload:
        async def call() -> dict:
            thread = await thread_use_cases.thread_create(
                info.context,
                subject=input.subject,
                type=input.type,
                primary_channel=input.primary_channel,
                priority=input.priority,
                customer_id=decode_optional(input.customer_id, "Customer", "customerId"),
                contact_id=decode_optional(input.contact_id, "Contact", "contactId"),
                shipment_id=decode_optional(input.shipment_id, "Shipment", "shipmentId"),
                tags=input.tags,
            )
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_update(self, info: Ctx, input: ThreadUpdateInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id, thread_field = one_of(input, {"thread_id": "threadId", "id": "id"}, "Thread")
            values = changes(
                input,
                {
                    "subject": "subject",
                    "type": "type",
                    "status": "status",
                    "priority": "priority",
                    "primary_channel": "primary_channel",
                    "tags": "tags",
                },
            )
            for attr, type_name, field in (
                ("customer_id", "Customer", "customerId"),
                ("contact_id", "Contact", "contactId"),
                ("shipment_id", "Shipment", "shipmentId"),
            ):
                if given(getattr(input, attr)):
                    values[attr] = decode_optional(getattr(input, attr), type_name, field)
            return {"thread": await thread_use_cases.thread_update(info.context, thread_id, values, field=thread_field)}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_assign(self, info: Ctx, input: ThreadAssignInput) -> ThreadPayload:
        async def call() -> dict:
            thread = await thread_use_cases.thread_assign(
                info.context,
                decode(input.thread_id, "Thread", "threadId"),
                decode_optional(input.assignee_id, "User", "assigneeId"),
            )
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation(
        description="Give a thread to a team: one of its members, round-robin (default) or the one with the fewest "
        "open threads, skipping those away, deactivated or at capacity; when none can take it the thread waits "
        "in the team's queue, unassigned. Needs THREAD_ASSIGN_ANY."
    )
    async def thread_assign_team(self, info: Ctx, input: ThreadAssignTeamInput) -> ThreadPayload:
        async def call() -> dict:
            thread = await team_use_cases.thread_assign_team(
                info.context,
                decode(input.thread_id, "Thread", "threadId"),
                decode(input.team_id, "Team", "teamId"),
                input.strategy,
            )
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_archive(self, info: Ctx, input: ThreadArchiveInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            return {"thread": await thread_use_cases.thread_archive(info.context, thread_id)}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation(
        description="Hide a thread from the default inbox until a time; a customer's message wakes it earlier. "
        "`threads(filter: {snoozed: true})` lists the snoozed ones."
    )
    async def thread_snooze(self, info: Ctx, input: ThreadSnoozeInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            return {"thread": await thread_use_cases.thread_snooze(info.context, thread_id, input.until)}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation
    async def thread_mark_read(self, info: Ctx, input: ThreadMarkReadInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            thread = await thread_use_cases.thread_mark_read(info.context, thread_id)
            info.context.loaders.unread_count_by_thread_id._cache.pop(thread.id, None)
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation(
        description="The viewer's read position moves to just before the last message someone else wrote, so the "
        "thread counts at least one unread message."
    )
    async def thread_mark_unread(self, info: Ctx, input: ThreadMarkUnreadInput) -> ThreadPayload:
        async def call() -> dict:
            thread_id = decode(input.thread_id, "Thread", "threadId")
            thread = await thread_use_cases.thread_mark_unread(info.context, thread_id)
            info.context.loaders.unread_count_by_thread_id._cache.pop(thread.id, None)
            return {"thread": thread}

        return await mutate(ThreadPayload, ThreadError, ThreadErrorCode, call)

    @strawberry.mutation(
        description="The same changes to up to 100 threads in one transaction, each with the rules and events of "
        "threadUpdate, threadAssign and threadArchive. Permissions are checked once for the batch; a thread that "
        "cannot take the changes is left as it was and named in userErrors, the others all change."
    )
    async def threads_bulk_update(self, info: Ctx, input: ThreadsBulkUpdateInput) -> ThreadsBulkUpdatePayload:
        try:
            changes = thread_use_cases.BulkChanges(
                status=input.status,
                priority=input.priority,
                add_tags=input.add_tags,
                remove_tags=input.remove_tags,
                assign=given(input.assignee_id),
                assignee_id=decode_optional(input.assignee_id, "User", "assigneeId"),
                archive=input.archive,
            )
            thread_ids = [decode(value, "Thread", f"threadIds.{i}") for i, value in enumerate(input.thread_ids)]
            threads, errors = await thread_use_cases.threads_bulk_update(info.context, thread_ids, changes)
        except DomainError as exc:
            errors, threads = [exc], []
        user_errors = [
            ThreadBulkError(field=error.field, message=error.message, code=ThreadBulkErrorCode(error.code))
            for error in errors
        ]
        return ThreadsBulkUpdatePayload(threads=threads, user_errors=user_errors)  # type: ignore[arg-type]
