"""Per-request loaders, one class per relation, named for its key.

A loader batches every `load(key)` made in the same event-loop tick into one
query and caches results for the rest of the request. Loaders are built per
request in `banxway.context.Context` and never shared between requests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, func, or_, select

from banxway.db.headers import MessageHeaders
from banxway.db.models import (
    Action,
    AgentConnection,
    AgentTask,
    Attachment,
    ComposeSession,
    Contact,
    ContactIdentity,
    Customer,
    Document,
    EmailAccount,
    Integration,
    Invitation,
    KnowledgeChunk,
    Message,
    MessageAnalysis,
    Note,
    Notification,
    Organization,
    PhoneNumber,
    Shipment,
    ShipmentMilestone,
    ShipmentSuggestion,
    SlaPolicy,
    SlaTarget,
    Team,
    Thread,
    ThreadRead,
    User,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    Workflow,
    WorkflowInstance,
    WorkflowStepRun,
)
from banxway.db.session import SerialSession

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DataLoader(Generic[K, V]):
    """Batch and cache loads of `V` by key `K`; subclasses implement `batch_load`."""

    def __init__(self, db: SerialSession) -> None:
        self.db = db
        self._cache: dict[K, asyncio.Future[V | None]] = {}
        self._queue: list[K] = []

    async def batch_load(self, keys: Sequence[K]) -> Sequence[V | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, key: K) -> asyncio.Future[V | None]:
        if key in self._cache:
            return self._cache[key]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._cache[key] = future
        if not self._queue:
            loop.call_soon(lambda: asyncio.ensure_future(self._dispatch()))
        self._queue.append(key)
        return future

    async def load_many(self, keys: Iterable[K]) -> list[V | None]:
        return list(await asyncio.gather(*(self.load(key) for key in keys)))

    def prime(self, key: K, value: V | None) -> None:
        if key not in self._cache:
            future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._cache[key] = future

    async def _dispatch(self) -> None:
        keys, self._queue = self._queue, []
        try:
            values = await self.batch_load(keys)
        except Exception as exc:
            for key in keys:
                if not self._cache[key].done():
                    self._cache[key].set_exception(exc)
                self._cache.pop(key, None)
            return
        for key, value in zip(keys, values, strict=True):
            if not self._cache[key].done():
                self._cache[key].set_result(value)


class _ByIdLoader(DataLoader[uuid.UUID, Any]):
    model: Any

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[Any]:
        rows = await self.db.scalars(select(self.model).where(self.model.id.in_(keys)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]


class UserByIdLoader(_ByIdLoader):
    model = User


class OrganizationByIdLoader(_ByIdLoader):
    model = Organization


class CustomerByIdLoader(_ByIdLoader):
    model = Customer


class ContactByIdLoader(_ByIdLoader):
    model = Contact


class ShipmentByIdLoader(_ByIdLoader):
    model = Shipment


class ThreadByIdLoader(_ByIdLoader):
    model = Thread


class MessageByIdLoader(_ByIdLoader):
    model = Message


class NoteByIdLoader(_ByIdLoader):
    """A deleted note is gone for clients (None), though its row stays."""

    model = Note

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[Any]:
        rows = await self.db.scalars(select(Note).where(Note.id.in_(keys), Note.deleted_at.is_(None)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]


class ActionByIdLoader(_ByIdLoader):
    model = Action


class TeamByIdLoader(_ByIdLoader):
    model = Team


class SlaPolicyByIdLoader(_ByIdLoader):
    model = SlaPolicy


class WorkflowByIdLoader(_ByIdLoader):
    model = Workflow


class WorkflowInstanceByIdLoader(_ByIdLoader):
    model = WorkflowInstance


class EmailAccountByIdLoader(_ByIdLoader):
    model = EmailAccount


class IntegrationByIdLoader(_ByIdLoader):
    model = Integration


class AgentConnectionByIdLoader(_ByIdLoader):
    model = AgentConnection


class AgentTaskByIdLoader(_ByIdLoader):
    model = AgentTask


class InvitationByIdLoader(_ByIdLoader):
    model = Invitation


class WebhookEndpointByIdLoader(_ByIdLoader):
    model = WebhookEndpoint


class HeadersByMessageIdLoader(DataLoader[uuid.UUID, MessageHeaders | None]):
    """A message's (deferred) provider headers, typed: a call's status, length, recording and transcript."""

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[MessageHeaders | None]:
        rows = await self.db.execute(select(Message.id, Message.headers).where(Message.id.in_(keys)))
        by_id = {row[0]: MessageHeaders.of(row[1]) for row in rows}
        return [by_id.get(key) for key in keys]


class NotificationByIdLoader(DataLoader[uuid.UUID, Any]):
    """The viewer's own notifications only: another user's is None, as if it did not exist."""

    def __init__(self, db: SerialSession, viewer_id: uuid.UUID) -> None:
        super().__init__(db)
        self.viewer_id = viewer_id

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[Any]:
        rows = await self.db.scalars(
            select(Notification).where(Notification.id.in_(keys), Notification.user_id == self.viewer_id)
        )
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]


class ComposeSessionByIdLoader(NotificationByIdLoader):
    """The viewer's own compose sessions only: another user's is None, as if it did not exist."""

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[Any]:
        rows = await self.db.scalars(
            select(ComposeSession).where(ComposeSession.id.in_(keys), ComposeSession.user_id == self.viewer_id)
        )
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]


class ShipmentSuggestionByIdLoader(_ByIdLoader):
    model = ShipmentSuggestion


class AnalysisByMessageIdLoader(DataLoader[uuid.UUID, Any]):
    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[Any]:
        rows = await self.db.scalars(select(MessageAnalysis).where(MessageAnalysis.message_id.in_(keys)))
        by_id = {row.message_id: row for row in rows}
        return [by_id.get(key) for key in keys]


class _ManyByKeyLoader(DataLoader[uuid.UUID, list[Any]]):
    """One-to-many: rows whose `key_column` is in the keys, `[]` for a key with none."""

    model: Any
    key_column: str

    def order_by(self) -> tuple[Any, ...]:
        return (self.model.created_at, self.model.id)

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[list[Any]]:
        column = getattr(self.model, self.key_column)
        rows = await self.db.scalars(select(self.model).where(column.in_(keys)).order_by(*self.order_by()))
        grouped: dict[uuid.UUID, list[Any]] = {key: [] for key in keys}
        for row in rows:
            grouped[getattr(row, self.key_column)].append(row)
        return [grouped[key] for key in keys]


class _CountByKeyLoader(DataLoader[uuid.UUID, int]):
    """How many rows have each key in `key_column` (and meet `where`), one grouped count for a whole list."""

    model: Any
    key_column: str

    def where(self) -> tuple[Any, ...]:
        return ()

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[int]:
        column = getattr(self.model, self.key_column)
        rows = await self.db.execute(
            select(column, func.count()).where(column.in_(keys), *self.where()).group_by(column)
        )
        counts = {key: count for key, count in rows}
        return [counts.get(key, 0) for key in keys]


class ChunkCountBySourceIdLoader(_CountByKeyLoader):
    model = KnowledgeChunk
    key_column = "source_id"


class OpenDeliveryCountByEndpointIdLoader(_CountByKeyLoader):
    """Deliveries still to be sent (PENDING or RETRYING)."""

    model = WebhookDelivery
    key_column = "endpoint_id"

    def where(self) -> tuple[Any, ...]:
        return (
            WebhookDelivery.status.in_((WebhookDeliveryStatus.PENDING.value, WebhookDeliveryStatus.RETRYING.value)),
        )


class IdentitiesByContactIdLoader(_ManyByKeyLoader):
    model = ContactIdentity
    key_column = "contact_id"


class AttachmentsByMessageIdLoader(_ManyByKeyLoader):
    model = Attachment
    key_column = "message_id"


class SlaTargetsByThreadIdLoader(_ManyByKeyLoader):
    model = SlaTarget
    key_column = "thread_id"

    def order_by(self) -> tuple[Any, ...]:
        return (SlaTarget.started_at, SlaTarget.created_at, SlaTarget.id)


class StepRunsByInstanceIdLoader(_ManyByKeyLoader):
    model = WorkflowStepRun
    key_column = "instance_id"

    def order_by(self) -> tuple[Any, ...]:
        return (WorkflowStepRun.step_index, WorkflowStepRun.attempt)


class SuggestionsByThreadIdLoader(_ManyByKeyLoader):
    """The shipment suggestions of a thread that nobody has acted on yet."""

    model = ShipmentSuggestion
    key_column = "thread_id"

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[list[Any]]:
        rows = await self.db.scalars(
            select(ShipmentSuggestion)
            .where(ShipmentSuggestion.thread_id.in_(keys), ShipmentSuggestion.resolved_at.is_(None))
            .order_by(ShipmentSuggestion.created_at, ShipmentSuggestion.id)
        )
        grouped: dict[uuid.UUID, list[Any]] = {key: [] for key in keys}
        for row in rows:
            grouped[row.thread_id].append(row)
        return [grouped[key] for key in keys]


class PhoneNumbersByIntegrationIdLoader(_ManyByKeyLoader):
    model = PhoneNumber
    key_column = "integration_id"

    def order_by(self) -> tuple[Any, ...]:
        return (PhoneNumber.number,)


class MilestonesByShipmentIdLoader(_ManyByKeyLoader):
    model = ShipmentMilestone
    key_column = "shipment_id"

    def order_by(self) -> tuple[Any, ...]:
        """In the order they happen(ed): actual time, else planned time."""
        return (func.coalesce(ShipmentMilestone.actual_at, ShipmentMilestone.planned_at), ShipmentMilestone.created_at)


# -- shipment documents ----------------------------------------------------------------------------------------


class DocumentByIdLoader(_ByIdLoader):
    model = Document


class AttachmentByIdLoader(_ByIdLoader):
    model = Attachment


class DocumentsByShipmentIdLoader(_ManyByKeyLoader):
    """A shipment's current documents (not superseded), oldest first."""

    model = Document
    key_column = "shipment_id"

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[list[Any]]:
        rows = await self.db.scalars(
            select(Document)
            .where(Document.shipment_id.in_(keys), Document.superseded_by_id.is_(None))
            .order_by(Document.created_at, Document.id)
        )
        grouped: dict[uuid.UUID, list[Any]] = {key: [] for key in keys}
        for row in rows:
            grouped[row.shipment_id].append(row)
        return [grouped[key] for key in keys]


class DocumentsByLineageIdLoader(_ManyByKeyLoader):
    """Every version of a document, first version first."""

    model = Document
    key_column = "lineage_id"

    def order_by(self) -> tuple[Any, ...]:
        return (Document.version, Document.created_at)


class DocumentTextByIdLoader(DataLoader[uuid.UUID, str | None]):
    """A document's (deferred) extracted text."""

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[str | None]:
        rows = await self.db.execute(select(Document.id, Document.extracted_text).where(Document.id.in_(keys)))
        by_id = {row[0]: row[1] for row in rows}
        return [by_id.get(key) for key in keys]


class UnreadCountByThreadIdLoader(DataLoader[uuid.UUID, int]):
    """Messages in a thread after the viewer's read position, not written by the viewer."""

    def __init__(self, db: SerialSession, viewer_id: uuid.UUID) -> None:
        super().__init__(db)
        self.viewer_id = viewer_id

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[int]:
        counts = await unread_counts(self.db, keys, self.viewer_id)
        return [counts.get(key, 0) for key in keys]


async def unread_counts(
    db: SerialSession, thread_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID
) -> dict[uuid.UUID, int]:
    statement = (
        select(Message.thread_id, func.count())
        .join(
            ThreadRead,
            and_(ThreadRead.thread_id == Message.thread_id, ThreadRead.user_id == viewer_id),
            isouter=True,
        )
        .where(
            Message.thread_id.in_(thread_ids),
            or_(ThreadRead.read_at.is_(None), Message.created_at > ThreadRead.read_at),
            Message.author_id.is_distinct_from(viewer_id),
        )
        .group_by(Message.thread_id)
    )
    return {thread_id: count for thread_id, count in (await db.execute(statement)).all()}


@dataclass
class Loaders:
    db: SerialSession
    viewer_id: uuid.UUID
    user_by_id: UserByIdLoader = field(init=False)
    organization_by_id: OrganizationByIdLoader = field(init=False)
    customer_by_id: CustomerByIdLoader = field(init=False)
    contact_by_id: ContactByIdLoader = field(init=False)
    shipment_by_id: ShipmentByIdLoader = field(init=False)
    thread_by_id: ThreadByIdLoader = field(init=False)
    message_by_id: MessageByIdLoader = field(init=False)
    note_by_id: NoteByIdLoader = field(init=False)
    action_by_id: ActionByIdLoader = field(init=False)
    notification_by_id: NotificationByIdLoader = field(init=False)
    email_account_by_id: EmailAccountByIdLoader = field(init=False)
    integration_by_id: IntegrationByIdLoader = field(init=False)
    agent_connection_by_id: AgentConnectionByIdLoader = field(init=False)
    agent_task_by_id: AgentTaskByIdLoader = field(init=False)
    invitation_by_id: InvitationByIdLoader = field(init=False)
    webhook_endpoint_by_id: WebhookEndpointByIdLoader = field(init=False)
    identities_by_contact_id: IdentitiesByContactIdLoader = field(init=False)
    milestones_by_shipment_id: MilestonesByShipmentIdLoader = field(init=False)
    attachments_by_message_id: AttachmentsByMessageIdLoader = field(init=False)
    headers_by_message_id: HeadersByMessageIdLoader = field(init=False)
    phone_numbers_by_integration_id: PhoneNumbersByIntegrationIdLoader = field(init=False)
    unread_count_by_thread_id: UnreadCountByThreadIdLoader = field(init=False)
    sla_policy_by_id: SlaPolicyByIdLoader = field(init=False)
    team_by_id: TeamByIdLoader = field(init=False)
    workflow_by_id: WorkflowByIdLoader = field(init=False)
    workflow_instance_by_id: WorkflowInstanceByIdLoader = field(init=False)
    step_runs_by_instance_id: StepRunsByInstanceIdLoader = field(init=False)
    sla_targets_by_thread_id: SlaTargetsByThreadIdLoader = field(init=False)
    compose_session_by_id: ComposeSessionByIdLoader = field(init=False)
    analysis_by_message_id: AnalysisByMessageIdLoader = field(init=False)
    suggestions_by_thread_id: SuggestionsByThreadIdLoader = field(init=False)
    shipment_suggestion_by_id: ShipmentSuggestionByIdLoader = field(init=False)
    document_by_id: DocumentByIdLoader = field(init=False)
    attachment_by_id: AttachmentByIdLoader = field(init=False)
    documents_by_shipment_id: DocumentsByShipmentIdLoader = field(init=False)
    documents_by_lineage_id: DocumentsByLineageIdLoader = field(init=False)
    document_text_by_id: DocumentTextByIdLoader = field(init=False)
    chunk_count_by_source_id: ChunkCountBySourceIdLoader = field(init=False)
    open_delivery_count_by_endpoint_id: OpenDeliveryCountByEndpointIdLoader = field(init=False)

    def __post_init__(self) -> None:
        db = self.db
        self.user_by_id = UserByIdLoader(db)
        self.organization_by_id = OrganizationByIdLoader(db)
        self.customer_by_id = CustomerByIdLoader(db)
        self.contact_by_id = ContactByIdLoader(db)
        self.shipment_by_id = ShipmentByIdLoader(db)
        self.thread_by_id = ThreadByIdLoader(db)
        self.message_by_id = MessageByIdLoader(db)
        self.note_by_id = NoteByIdLoader(db)
        self.action_by_id = ActionByIdLoader(db)
        self.notification_by_id = NotificationByIdLoader(db, self.viewer_id)
        self.email_account_by_id = EmailAccountByIdLoader(db)
        self.integration_by_id = IntegrationByIdLoader(db)
        self.agent_connection_by_id = AgentConnectionByIdLoader(db)
        self.agent_task_by_id = AgentTaskByIdLoader(db)
        self.invitation_by_id = InvitationByIdLoader(db)
        self.webhook_endpoint_by_id = WebhookEndpointByIdLoader(db)
        self.identities_by_contact_id = IdentitiesByContactIdLoader(db)
        self.milestones_by_shipment_id = MilestonesByShipmentIdLoader(db)
        self.attachments_by_message_id = AttachmentsByMessageIdLoader(db)
        self.headers_by_message_id = HeadersByMessageIdLoader(db)
        self.phone_numbers_by_integration_id = PhoneNumbersByIntegrationIdLoader(db)
        self.unread_count_by_thread_id = UnreadCountByThreadIdLoader(db, self.viewer_id)
        self.sla_policy_by_id = SlaPolicyByIdLoader(db)
        self.team_by_id = TeamByIdLoader(db)
        self.workflow_by_id = WorkflowByIdLoader(db)
        self.workflow_instance_by_id = WorkflowInstanceByIdLoader(db)
        self.step_runs_by_instance_id = StepRunsByInstanceIdLoader(db)
        self.sla_targets_by_thread_id = SlaTargetsByThreadIdLoader(db)
        self.compose_session_by_id = ComposeSessionByIdLoader(db, self.viewer_id)
        self.analysis_by_message_id = AnalysisByMessageIdLoader(db)
        self.suggestions_by_thread_id = SuggestionsByThreadIdLoader(db)
        self.shipment_suggestion_by_id = ShipmentSuggestionByIdLoader(db)
        self.document_by_id = DocumentByIdLoader(db)
        self.attachment_by_id = AttachmentByIdLoader(db)
        self.documents_by_shipment_id = DocumentsByShipmentIdLoader(db)
        self.documents_by_lineage_id = DocumentsByLineageIdLoader(db)
        self.document_text_by_id = DocumentTextByIdLoader(db)
        self.chunk_count_by_source_id = ChunkCountBySourceIdLoader(db)
        self.open_delivery_count_by_endpoint_id = OpenDeliveryCountByEndpointIdLoader(db)
