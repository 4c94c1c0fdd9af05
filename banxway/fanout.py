"""Live events, fanned out multiplexed: each event is resolved once per group of alike subscribers.

One `Hub` per process (`hub(state)`), one `Channel` per organization that has subscribers here. A channel
reads each event the relay publishes once (one Redis subscription per process, `Broadcast`), loads what it
is about once (a burst of events together: `EventObjects.get_many`) and hands it to its subscribers.

The `inboxEvents` / `threadEvents` operations of a WebSocket (the handlers in app.py open a `Sink`) are put
in groups: subscribers whose payload cannot differ — the same document, operation name and variables read
below the root field, organization and role, and the same user when the selection reads a per-viewer field
(Thread.unreadCount, a Notification) — share a `Group`. A group executes its selection once per event
(graphql-core, with a context of one of its members; as the event's user for a private event) and
serialises it once; each member gets the same string, framed with its own operation id by string
concatenation. Hasura multiplexes its live queries this way. The channel writes the frame to each idle member
itself, straight to its socket where the server allows (`banxway.wsframes`), 128 members per turn of the event
loop (requests run in between); a member whose socket is full gets a task that writes what it has buffered. The
mutation that published the event waits for none of this: it only published to Redis.

What stays per subscriber is cheap and exact: the thread of `threadEvents`, event types, administration
events only for roles with the permission (roles re-read every second, in one query per channel; a
deactivated user's subscriptions end), private events only for their user, dedupe of event ids, resume with
`after` (replayed from the events table, then live), and a bounded buffer: a subscriber that stops reading
is ended alone (`SubscriberTooSlow`), the others go on. After a Redis reconnect (`Signal.RESYNC`), or when
the channel itself falls behind, the channel reads what it missed from the events table, once for all.

Other subscriptions (notificationReceived) and subscriptions outside a WebSocket get the built event
object (built once per event) and are executed per subscriber by Strawberry as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    Visitor,
    get_named_type,
    visit,
)
from graphql.execution import execute_subscription_event
from strawberry.extensions import MaskErrors

from banxway import broadcast, events
from banxway.auth import allows
from banxway.broadcast import Signal, SubscriberTooSlow
from banxway.context import Context, Viewer, api_tokens_in_force, operation_scope
from banxway.logs import get_logger
from banxway.resolvers import inbox_events
from banxway.state import AppState

log = get_logger("banxway.fanout")

# Fields whose value depends on who reads them, not only on role and organization: a selection that reads
# one is grouped per user.
VIEWER_FIELDS = frozenset({("Thread", "unreadCount")})
VIEWER_TYPES = frozenset({"Notification"})  # only its user may read a notification
PAYLOAD_CACHE = 4096  # serialised payloads the process keeps (per group and event), for members that resume
RECENT_IDS = 10_000  # event ids a channel remembers, to drop an event published twice
CHANNEL_QUEUE = 10_000  # published events a channel may hold unread; past it, it catches up from the log
BURST = 256  # published events handled together (their objects loaded together)
WRITE_CHUNK = 128  # subscribers written to per turn of the event loop (~10 µs each: requests wait ~1.5 ms at most)

Loaded = dict[str, Any]
Entry = tuple[int, Any, Loaded]  # (seq, the payload string or the event object, what the event is about)
BuildEvent = Callable[[dict[str, Any], Loaded], Any]


class SubscriberDeactivated(Exception):
    """The subscriber's user was deactivated (or left the organization) while subscribed."""


# -- the WebSocket side: where an operation's frames go -----------------------------------------


@dataclass(slots=True)
class Sink:
    """A WebSocket operation's output: `send(prefix + payload + "}")` is one protocol message. `write`, when the
    connection has one (`banxway.wsframes`), writes such a message's UTF-8 at once and says whether it could."""

    prefix: str
    send: Callable[[str], Awaitable[None]]
    variables: dict[str, Any]
    write: Callable[[bytes], bool] | None = None

    def frame(self, payload: str) -> str:
        return self.prefix + payload + "}"


_SINK: ContextVar[Sink | None] = ContextVar("banxway_live_sink", default=None)


@contextlib.contextmanager
def operation_sink(
    message_type: str,
    operation_id: str,
    send: Callable[[str], Awaitable[None]],
    variables: dict[str, Any] | None,
    write: Callable[[bytes], bool] | None = None,
) -> Iterator[None]:
    """Within a WebSocket operation's task: its results are `message_type` messages ("next" for
    graphql-transport-ws, "data" for graphql-ws) of `operation_id`, written with `send` (or `write`, when it can)."""
    # the keys in the order Strawberry writes them: {"id", "type", "payload"} and {"type", "id", "payload"}
    head = (
        {"id": operation_id, "type": message_type}
        if message_type == "next"
        else {"type": message_type, "id": operation_id}
    )
    prefix = orjson.dumps(head).decode()[:-1] + ',"payload":'
    token = _SINK.set(Sink(prefix, send, dict(variables or {}), write))
    try:
        yield
    finally:
        _SINK.reset(token)


def current_sink() -> Sink | None:
    return _SINK.get()


def prime(loaders: Any, loaded: Loaded) -> None:
    """Put what an event is about into a set of loaders, so that its fields resolve without a query."""
    for loader_name, obj in (loaded["thread"], loaded["message"], loaded["node"], loaded["actor"], *loaded["related"]):
        if obj is not None:
            getattr(loaders, loader_name).prime(obj.id, obj)


# -- what a selection depends on --------------------------------------------------------------


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


@dataclass(frozen=True, slots=True)
class Selection:
    """What a subscription operation's payload depends on, besides the event."""

    document: DocumentNode
    operation_name: str | None
    variables: tuple[str, ...]  # read below the root field (the root field's own arguments are filters)
    per_viewer: bool


def analyse(
    schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> Selection:
    """The `Selection` of a validated subscription operation."""
    root = operation.selection_set.selections[0]
    assert isinstance(root, FieldNode), "a subscription selects one root field"
    subscription_type = schema.subscription_type
    assert subscription_type is not None
    root_type = get_named_type(subscription_type.fields[root.name.value].type)
    used: dict[str, FragmentDefinitionNode] = {}
    per_viewer = _reads_viewer(schema, root_type, root.selection_set, fragments, used)
    variables = _Variables()
    for node in (root.selection_set, *(root.directives or ()), *used.values()):
        if node is not None:
            visit(node, variables)
    return Selection(
        document=DocumentNode(definitions=(operation, *fragments.values())),
        operation_name=operation.name.value if operation.name else None,
        variables=tuple(sorted(variables.names)),
        per_viewer=per_viewer,
    )


def _reads_viewer(
    schema: GraphQLSchema,
    type_: GraphQLNamedType,
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    used: dict[str, FragmentDefinitionNode],
) -> bool:
    if selection_set is None:
        return False
    found = type_.name in VIEWER_TYPES
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if (type_.name, name) in VIEWER_FIELDS:
                found = True
            fields = type_.fields if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType) else {}
            if name in fields:
                found |= _reads_viewer(
                    schema, get_named_type(fields[name].type), selection.selection_set, fragments, used
                )
        elif isinstance(selection, InlineFragmentNode):
            condition = schema.get_type(selection.type_condition.name.value) if selection.type_condition else type_
            found |= _reads_viewer(schema, condition or type_, selection.selection_set, fragments, used)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None and fragment.name.value not in used:
                used[fragment.name.value] = fragment
                condition = schema.get_type(fragment.type_condition.name.value) or type_
                found |= _reads_viewer(schema, condition, fragment.selection_set, fragments, used)
    return found


# -- groups: one execution per event ---------------------------------------------------------


class Group:
    """Subscribers whose payloads are the same bytes: executed once per event, serialised once."""

    def __init__(
        self, hub: Hub, key: tuple[Any, ...], strawberry_schema: Any, selection: Selection, sink: Sink, viewer: Viewer
    ) -> None:
        self.hub = hub
        self.key = key
        self.members: dict[Subscriber, None] = {}
        self._schema = strawberry_schema
        self._context = Context(hub.state, viewer_or_none=viewer)  # one member's: same organization and role
        built = strawberry_schema.execution_context_class.build(
            strawberry_schema._schema,
            selection.document,
            context_value=self._context,
            raw_variable_values=sink.variables,
            operation_name=selection.operation_name,
        )
        if isinstance(built, list):  # the operation was validated and its variables coerced already
            raise built[0]
        self._executor = built
        self._mask = next((e for e in strawberry_schema.get_extensions() if isinstance(e, MaskErrors)), None)

    async def payload(self, row: dict[str, Any], event: Any, loaded: Loaded, viewer: Viewer | None) -> str:
        """The serialised `{"data": …}` of the event for this group (as `viewer`, for a private event)."""
        payloads = self.hub.payloads
        key = (self.key, row["id"], viewer.user_id if viewer is not None else None)
        cached = payloads.get(key)
        if cached is not None:
            return cached
        payload = await self._execute(event, loaded, viewer)
        payloads[key] = payload
        if len(payloads) > PAYLOAD_CACHE:
            payloads.popitem(last=False)
        return payload

    async def _execute(self, event: Any, loaded: Loaded, viewer: Viewer | None) -> str:
        context = self._context if viewer is None else Context(self.hub.state, viewer_or_none=viewer)
        self.hub.executions += 1
        async with operation_scope(context):
            prime(context.loaders, loaded)
            executor = self._executor.build_per_event_executor(event)
            executor.context_value = context
            try:
                result = execute_subscription_event(executor)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:  # not a field's error (those are in the result): fail this payload only
                log.exception("live event execution failed", error=str(exc))
                result = None
                errors = [GraphQLError(str(exc), original_error=exc)]
            else:
                errors = list(result.errors or [])
        body: dict[str, Any] = {"data": result.data if result is not None else None}
        if errors:
            self._schema.process_errors(errors, None)
            if self._mask is not None:
                errors = [self._mask.anonymise_error(e) if self._mask.should_mask_error(e) else e for e in errors]
            body["errors"] = [error.formatted for error in errors]
        return orjson.dumps(body).decode()


# -- subscribers ------------------------------------------------------------------------------


class Subscriber:
    """One subscription: its filters, its place in the event stream, and a bounded buffer of entries.

    A WebSocket subscriber (with a `Sink`) that is live and idle is written to by the channel itself, at
    once (`deliver`); its operation's task only replays, and then waits for the end. Entries that come while
    it replays, or while a write to it waits for the socket, are buffered and written in order afterwards."""

    __slots__ = (
        "buffer",
        "channel",
        "ended",
        "floor",
        "group",
        "joined",
        "limit",
        "live",
        "replayed_through",
        "role",
        "sending",
        "sink",
        "skip_id",
        "thread_id",
        "types",
        "user",
        "viewer",
        "waiter",
    )

    def __init__(
        self,
        channel: Channel,
        viewer: Viewer,
        thread_id: uuid.UUID | None,
        types: frozenset[str] | None,
        start: tuple[int, int] | None,
        group: Group | None,
        sink: Sink | None,
    ) -> None:
        self.channel = channel
        self.viewer = viewer
        self.user = str(viewer.user_id)
        self.role = viewer.role  # as it is now: refreshed by the channel every second
        self.thread_id = str(thread_id) if thread_id is not None else None
        self.types = types
        self.floor = start[0] if start is not None else None  # it has every event up to this seq
        self.skip_id = start[1] if start is not None else None  # the cursor's own event (it may be published again)
        self.group = group
        self.sink = sink  # with a group: payloads are written to it; without: event objects are yielded
        self.joined = channel.counter  # it was here for the channel's events after this count
        self.replayed_through = 0  # its own replay read the log up to this seq
        self.limit = broadcast.QUEUE_SIZE
        self.buffer: deque[Entry] = deque()
        self.live = False  # replayed, and the buffer written: the channel may write to it directly
        self.sending: asyncio.Task[None] | None = None  # writing what waited for the socket
        self.waiter: asyncio.Future[None] | None = None
        self.ended: BaseException | None = None

    def wants(
        self, row: dict[str, Any], event_type: type[events.DomainEvent], first: int | None, catch_up: bool
    ) -> bool:
        if first is not None and first > self.joined:  # published again: it was here the first time
            return False
        if row["id"] == self.skip_id:
            return False
        if catch_up and self.floor is not None and row["seq"] <= self.floor:
            return False
        return self.visible(row, event_type)

    def visible(self, row: dict[str, Any], event_type: type[events.DomainEvent]) -> bool:
        if self.thread_id is not None and row["thread_id"] != self.thread_id:
            return False
        if self.types is not None and row["type"] not in self.types:
            return False
        # administration events (integrations, email accounts) reach only the roles that may administer
        if event_type.permission is not None and not allows(self.role, self.viewer.scopes, event_type.permission):
            return False
        # read positions and notifications are private to their user
        return not (event_type.private and row["payload"].get("user_id") != self.user)

    # -- from the channel ---------------------------------------------------------------------

    def deliver(self, entry: Entry) -> None:
        """Write an entry now if the subscriber is live and idle; else buffer it (a full buffer ends it)."""
        if self.ended is not None or entry[0] <= self.replayed_through:  # (its replay sent that one)
            return
        if self.sink is not None and self.live and self.sending is None and not self.buffer:
            self._write(entry[1])
        elif len(self.buffer) >= self.limit:  # it stopped reading: end it, keep the rest
            self.channel.end(self, SubscriberTooSlow("the subscriber fell too far behind"))
        else:
            self.buffer.append(entry)
            if self.sink is None:
                self.wake()

    def _write(self, payload: str) -> None:
        """Write the frame straight to the socket when it can take it; else run the ASGI send until it would wait
        for the socket (as an eager task), and a task finishes it from there."""
        sink = self.sink
        assert sink is not None
        text = sink.frame(payload)
        try:
            if sink.write is not None and sink.write(text.encode()):
                return
            write = sink.send(text)
            waiting = write.send(None)
        except StopIteration:
            return
        except Exception as exc:  # the socket is gone
            self.channel.end(self, exc)
            return
        self.sending = asyncio.ensure_future(self._finish(write, waiting))

    async def _finish(self, write: Any, waiting: Any) -> None:
        try:
            await _resume(write, waiting)
            while self.buffer and self.ended is None:
                payload = self.buffer.popleft()[1]
                await self.sink.send(self.sink.frame(payload))  # type: ignore[union-attr]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket is gone
            self.channel.end(self, exc)
        finally:
            self.sending = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- in the subscription's task -----------------------------------------------------------

    async def _wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def next(self) -> Entry:
        while not self.buffer:
            if self.ended is not None:
                raise self.ended
            await self._wait()
        return self.buffer.popleft()

    async def _replay(self) -> AsyncIterator[tuple[Any, Loaded]]:
        """The events after the cursor, from the log (or, without a cursor, where the stream starts now)."""
        channel = self.channel
        state = channel.hub.state
        if self.floor is None:
            self.floor = await inbox_events.position(state, channel.organization_id)
            return
        position = self.floor
        thread_id = uuid.UUID(self.thread_id) if self.thread_id else None
        while True:
            page = await inbox_events.replay(state, channel.organization_id, position, thread_id)
            wanted = []
            for row in map(_row, page):
                position = max(position, row["seq"])
                event_type = events.EVENT_TYPES.get(row["type"])
                if row["id"] != self.skip_id and event_type is not None and self.visible(row, event_type):
                    wanted.append(row)
            loaded = await inbox_events.event_objects(state).get_many(channel.organization_id, wanted)
            for row, objects in zip(wanted, loaded, strict=True):
                yield await channel.value(self, row, objects), objects
            self.replayed_through = position
            if len(page) < inbox_events.REPLAY_PAGE:
                return

    async def serve(self) -> None:
        """With a sink: write the replay, then what came meanwhile; from then on the channel writes. Returns
        never: raises why the subscription ended (or is cancelled with its operation)."""
        sink = self.sink
        assert sink is not None
        try:
            async for payload, _ in self._replay():
                await sink.send(sink.frame(payload))
            while self.buffer and self.ended is None:
                seq, payload, _ = self.buffer.popleft()
                if seq > self.replayed_through:
                    await sink.send(sink.frame(payload))
            self.live = True
            while self.ended is None:
                await self._wait()
            raise self.ended
        finally:
            self.live = False
            if self.sending is not None:
                self.sending.cancel()

    async def entries(self) -> AsyncIterator[tuple[Any, Loaded]]:
        """Without a sink: (event, what it is about), first those after the cursor from the log, then live ones."""
        async for item in self._replay():
            yield item
        self.live = True
        while True:
            seq, value, objects = await self.next()
            if seq > self.replayed_through:
                yield value, objects


async def _resume(coroutine: Any, waiting: Any) -> None:
    """Drive a coroutine that was started outside a task and suspended on `waiting`, to its end: what
    `asyncio.Task` does for a coroutine it starts itself (Python 3.12's eager tasks start them this way)."""
    loop = asyncio.get_running_loop()
    while True:
        if waiting is None:  # a bare yield (asyncio.sleep(0))
            await asyncio.sleep(0)
        else:
            waiting._asyncio_future_blocking = False
            done = loop.create_future()
            waiting.add_done_callback(lambda _, done=done: done.done() or done.set_result(None))
            try:
                await done
            except asyncio.CancelledError:
                with contextlib.suppress(BaseException):
                    coroutine.throw(asyncio.CancelledError())
                coroutine.close()
                raise
        try:
            waiting = coroutine.send(None)
        except StopIteration:
            return


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """An event as published (JSON) or replayed (`events.envelope_fields`), in one shape."""
    for key in ("thread_id", "actor_id"):
        if row[key] is not None:
            row[key] = str(row[key])
    if isinstance(row["created_at"], str):
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


# -- channels: one Redis subscription per organization per process ------------------------------------


class Channel:
    def __init__(self, hub: Hub, organization_id: uuid.UUID) -> None:
        self.hub = hub
        self.organization_id = organization_id
        self.subscribers: dict[Subscriber, None] = {}
        self.groups: dict[tuple[Any, ...], Group] = {}
        self.holders = 0  # subscriptions inside `Hub.subscribe` (joined, or about to)
        self.counter = 0  # events handled
        self.position = 0  # the last seq handled: after a lost connection, the log is read from here
        self.recent: OrderedDict[int, int] = OrderedDict()  # event id → its count when first handled
        self.checked_at = time.monotonic()
        self._subscription: contextlib.AbstractAsyncContextManager[broadcast.Subscriber] | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        state = self.hub.state
        self._subscription = state.broadcast.subscribe(
            events.channel(self.organization_id), size=CHANNEL_QUEUE, resync_on_overflow=True
        )
        source = await self._subscription.__aenter__()
        try:
            self.position = await inbox_events.position(state, self.organization_id)
        except BaseException:
            await self._subscription.__aexit__(None, None, None)
            raise
        self._task = asyncio.create_task(self._run(source.queue))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscription is not None:
            await self._subscription.__aexit__(None, None, None)

    def join(self, subscriber: Subscriber) -> None:
        self.subscribers[subscriber] = None
        if subscriber.group is not None:
            subscriber.group.members[subscriber] = None

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.pop(subscriber, None)
        group = subscriber.group
        if group is not None:
            group.members.pop(subscriber, None)
            if not group.members and self.groups.get(group.key) is group:
                del self.groups[group.key]

    def end(self, subscriber: Subscriber, reason: BaseException) -> None:
        """Stop sending to a subscriber: it raises `reason` when it next reads (what it had buffered is dropped)."""
        self.leave(subscriber)
        subscriber.buffer.clear()
        subscriber.ended = reason
        subscriber.wake()

    async def value(self, subscriber: Subscriber, row: dict[str, Any], loaded: Loaded) -> Any:
        """What a subscriber is sent for an event: its group's payload, or the event object."""
        event = self.hub.build(row, loaded)
        if subscriber.group is None:
            return event
        private = events.EVENT_TYPES[row["type"]].private
        return await subscriber.group.payload(row, event, loaded, subscriber.viewer if private else None)

    async def _run(self, queue: asyncio.Queue[str | Signal]) -> None:
        while True:
            items = [await queue.get()]
            while len(items) < BURST and not queue.empty():
                items.append(queue.get_nowait())
            rows: list[dict[str, Any]] = []
            for item in items:
                if item is Signal.RESYNC:  # Redis came back, or this channel fell behind: read what was missed
                    await self._handle(rows, catch_up=False)
                    rows = []
                    await self._catch_up()
                elif isinstance(item, str):
                    rows.append(_row(orjson.loads(item)))
            await self._handle(rows, catch_up=False)

    async def _catch_up(self) -> None:
        self.hub.catch_ups += 1
        while True:
            page = await self._retrying(inbox_events.replay, self.hub.state, self.organization_id, self.position, None)
            if page is None:
                return
            await self._handle([_row(row) for row in page], catch_up=True)
            if len(page) < inbox_events.REPLAY_PAGE:
                return

    async def _handle(self, rows: list[dict[str, Any]], *, catch_up: bool) -> None:
        """Hand a burst of events to the subscribers that may see them, in order: first what may fail and be
        tried again (reading users and objects), then the handing, which happens once."""
        if not rows:
            return
        loaded = await self._retrying(self._prepare, rows)
        if loaded is None:
            return
        deliveries: list[tuple[dict[str, Any], Loaded, list[Subscriber]]] = []
        for row, objects in zip(rows, loaded, strict=True):
            self.counter += 1
            self.position = max(self.position, row["seq"])
            first = self.recent.get(row["id"])
            if first is None:
                self.recent[row["id"]] = self.counter
                if len(self.recent) > RECENT_IDS:
                    self.recent.popitem(last=False)
            event_type = events.EVENT_TYPES.get(row["type"])
            if event_type is None:
                continue
            takers = [s for s in self.subscribers if s.wants(row, event_type, first, catch_up)]
            if takers:
                deliveries.append((row, objects, takers))
        written = 0
        for row, objects, takers in deliveries:
            event = self.hub.build(row, objects)
            private = events.EVENT_TYPES[row["type"]].private
            shared: dict[Any, Entry | None] = {}
            for subscriber in takers:
                if subscriber.ended is not None:
                    continue
                group = subscriber.group
                key = (group, subscriber.user if private else None) if group is not None else None
                if key not in shared:
                    shared[key] = await self._entry(row, event, objects, group, subscriber.viewer if private else None)
                entry = shared[key]
                if entry is None:  # its payload failed: end the group's members (they resume from their cursor)
                    self.end(subscriber, RuntimeError("the event could not be sent"))
                    continue
                subscriber.deliver(entry)
                written += 1
                if written % WRITE_CHUNK == 0:
                    await asyncio.sleep(0)  # let requests run in between

    async def _prepare(self, rows: list[dict[str, Any]]) -> list[Loaded]:
        if time.monotonic() - self.checked_at > inbox_events.ACTIVE_CHECK_SECONDS:
            await self._check_users()
        return await inbox_events.event_objects(self.hub.state).get_many(self.organization_id, rows)

    async def _entry(
        self, row: dict[str, Any], event: Any, objects: Loaded, group: Group | None, viewer: Viewer | None
    ) -> Entry | None:
        if group is None:
            return (row["seq"], event, objects)
        try:
            return (row["seq"], await group.payload(row, event, objects, viewer), objects)
        except Exception as exc:
            log.exception("live event payload failed", error=str(exc), event_id=row["id"])
            return None

    async def _retrying(self, step: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """A step's result; while the database is unreachable it is tried again, a few times, and then the
        channel's subscribers are ended (they resume from their last cursor) and None is returned."""
        delay = 0.1
        for attempt in range(6):
            try:
                return await step(*args)
            except Exception as exc:
                if attempt == 5:
                    log.exception("live fan-out failed; ending the channel's subscriptions", error=str(exc))
                    for subscriber in list(self.subscribers):
                        self.end(subscriber, exc)
                    return None
                log.warning("live fan-out failed; trying again", error=str(exc))
                await asyncio.sleep(delay)
                delay *= 2
        return None

    async def _check_users(self) -> None:
        """Every second: each subscriber's role now; a user who may no longer receive events (deactivated, or signed
        out everywhere since the subscriber's token was issued) is ended."""
        self.checked_at = time.monotonic()
        users = {subscriber.viewer.user_id for subscriber in self.subscribers}
        roles = await inbox_events.current_roles(self.hub.state, self.organization_id, users)
        # a subscriber that came with a personal API token: the token, not the session version, must still hold
        tokens = {s.viewer.api_token_id for s in self.subscribers if s.viewer.api_token_id is not None}
        in_force = await api_tokens_in_force(self.hub.state, self.organization_id, tokens) if tokens else set()
        for subscriber in list(self.subscribers):
            now = roles.get(subscriber.viewer.user_id)
            token = subscriber.viewer.api_token_id
            if now is None or (now[1] != subscriber.viewer.session_version if token is None else token not in in_force):
                self.end(subscriber, SubscriberDeactivated("the user was deactivated or signed out"))
            else:
                subscriber.role = now[0]


# -- the hub ------------------------------------------------------------------------------------------


class Hub:
    """The process's channels. `executions` counts group executions (one per event per group), `catch_ups`
    the times a channel read the log for events it may have missed."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.channels: dict[uuid.UUID, Channel] = {}
        self.executions = 0
        self.catch_ups = 0  # reads of the log by a channel that may have missed events (Redis reconnect, overflow)
        self.payloads: OrderedDict[tuple[Any, ...], str] = OrderedDict()  # (group key, event id, user) → payload
        self.build: BuildEvent = _unset_build
        self._lock = asyncio.Lock()

    def subscribers(self, organization_id: uuid.UUID) -> set[Subscriber]:
        channel = self.channels.get(organization_id)
        return set(channel.subscribers) if channel is not None else set()

    def groups(self, organization_id: uuid.UUID) -> list[Group]:
        channel = self.channels.get(organization_id)
        return list(channel.groups.values()) if channel is not None else []

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        viewer: Viewer,
        build: BuildEvent,
        *,
        thread_id: uuid.UUID | None = None,
        types: set[str] | None = None,
        start: tuple[int, int] | None = None,
        info: Any = None,
    ) -> AsyncIterator[Subscriber]:
        """Join the organization's channel; with `info` (the subscription's Strawberry Info) inside a WebSocket
        operation (`operation_sink`), as a member of the group its payloads are shared with."""
        self.build = build
        organization_id = viewer.organization_id
        sink = current_sink() if info is not None else None
        async with self._lock:
            channel = self.channels.get(organization_id)
            if channel is None:
                channel = Channel(self, organization_id)
                await channel.open()
                self.channels[organization_id] = channel
            channel.holders += 1
        try:
            group = self._group(channel, viewer, info, sink) if sink is not None else None
            subscriber = Subscriber(
                channel, viewer, thread_id, frozenset(types) if types else None, start, group, sink if group else None
            )
            channel.join(subscriber)
            try:
                yield subscriber
            finally:
                channel.leave(subscriber)
        finally:
            async with self._lock:
                channel.holders -= 1
                if channel.holders == 0 and self.channels.get(organization_id) is channel:
                    del self.channels[organization_id]
                    await channel.close()

    def _group(self, channel: Channel, viewer: Viewer, info: Any, sink: Sink) -> Group:
        raw = info._raw_info
        selection = analyse(raw.schema, raw.operation, raw.fragments)
        variables = orjson.dumps({name: sink.variables.get(name) for name in selection.variables}).decode()
        key = (
            info.query,
            selection.operation_name,
            variables,
            viewer.organization_id,
            viewer.role,
            viewer.scopes,  # an API token's: what its members may see is the role's within them
            viewer.user_id if selection.per_viewer else None,
        )
        group = channel.groups.get(key)
        if group is None:
            group = channel.groups[key] = Group(self, key, info.schema, selection, sink, viewer)
        return group


def _unset_build(row: dict[str, Any], loaded: Loaded) -> Any:  # pragma: no cover - set by the first subscriber
    raise RuntimeError("no event builder")


def hub(state: AppState) -> Hub:
    """The process's `Hub` (in `state.shared`)."""
    found = state.shared.get("fanout")
    if found is None:
        found = state.shared["fanout"] = Hub(state)
    return found
