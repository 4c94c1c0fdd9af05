"""The enumerations shared by the database, the integrations and the schema (one place for each)."""

from __future__ import annotations

import enum


class Role(enum.Enum):
    ADMIN = "admin"
    MANAGER = "manager"
    VALIDATOR = "validator"
    SUPPORT = "support"
    VIEWER = "viewer"


class Channel(enum.Enum):
    EMAIL = "EMAIL"
    WHATSAPP = "WHATSAPP"
    SMS = "SMS"
    VOICE = "VOICE"
    WEB_CHAT = "WEB_CHAT"
    INTERNAL = "INTERNAL"
    MESSENGER = "MESSENGER"  # Facebook Messenger, through a META integration
    INSTAGRAM = "INSTAGRAM"  # Instagram Direct, through a META integration


class Direction(enum.Enum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class MessageStatus(enum.Enum):
    RECEIVED = "RECEIVED"
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    SCHEDULED = "SCHEDULED"  # waits for its send_at (messageSend with sendAt), then QUEUED
    CANCELLED = "CANCELLED"  # a scheduled message cancelled before it went


class ThreadStatus(enum.Enum):
    NEW = "NEW"
    OPEN = "OPEN"
    PENDING = "PENDING"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"
    ARCHIVED = "ARCHIVED"


class Priority(enum.Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


class ThreadType(enum.Enum):
    QUOTE_REQUEST = "QUOTE_REQUEST"
    BOOKING = "BOOKING"
    SHIPMENT_UPDATE = "SHIPMENT_UPDATE"
    DOCUMENTATION = "DOCUMENTATION"
    CUSTOMS = "CUSTOMS"
    INVOICE = "INVOICE"
    COMPLAINT = "COMPLAINT"
    GENERAL = "GENERAL"


class ShipmentMode(enum.Enum):
    SEA = "SEA"
    AIR = "AIR"
    ROAD = "ROAD"
    RAIL = "RAIL"


class ShipmentDirection(enum.Enum):
    IMPORT = "IMPORT"
    EXPORT = "EXPORT"


class ShipmentStatus(enum.Enum):
    DRAFT = "DRAFT"
    BOOKED = "BOOKED"
    IN_TRANSIT = "IN_TRANSIT"
    ARRIVED = "ARRIVED"
    CUSTOMS_HOLD = "CUSTOMS_HOLD"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


class MilestoneType(enum.Enum):
    BOOKED = "BOOKED"
    EMPTY_PICKUP = "EMPTY_PICKUP"
    GATE_IN = "GATE_IN"
    LOADED = "LOADED"
    DEPARTED = "DEPARTED"
    TRANSSHIPMENT = "TRANSSHIPMENT"
    ARRIVED = "ARRIVED"
    DISCHARGED = "DISCHARGED"
    CUSTOMS_CLEARED = "CUSTOMS_CLEARED"
    GATE_OUT = "GATE_OUT"
    DELIVERED = "DELIVERED"
    EMPTY_RETURNED = "EMPTY_RETURNED"


class ActionType(enum.Enum):
    TASK = "TASK"
    FOLLOW_UP = "FOLLOW_UP"
    CALL_BACK = "CALL_BACK"
    SEND_QUOTE = "SEND_QUOTE"
    QUOTE_APPROVAL = "QUOTE_APPROVAL"
    DOCUMENT_APPROVAL = "DOCUMENT_APPROVAL"


APPROVAL_ACTION_TYPES = frozenset({ActionType.QUOTE_APPROVAL, ActionType.DOCUMENT_APPROVAL})


class ActionStatus(enum.Enum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


class NotificationType(enum.Enum):
    MENTION = "mention"
    ASSIGNMENT = "assignment"
    INBOUND_MESSAGE = "inbound_message"
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    ACTION_DUE = "action_due"
    WORKFLOW = "workflow"  # a workflow's NOTIFY step
    WEBHOOK_DISABLED = "webhook_disabled"  # an outbound webhook endpoint failed for too long (admins)
    INTEGRATION_TOKEN_FAILED = "integration_token_failed"  # a Meta page token could not be refreshed (admins)


class IntegrationType(enum.Enum):
    EXOTEL = "EXOTEL"
    TWILIO = "TWILIO"
    META = "META"  # Facebook Messenger and Instagram through the Graph API


class MailSecurity(enum.StrEnum):
    """How an IMAP or SMTP connection is secured."""

    NONE = "NONE"  # plain text (only sensible on a trusted network)
    STARTTLS = "STARTTLS"  # plain connection upgraded with STARTTLS (IMAP 143, SMTP 587)
    TLS = "TLS"  # TLS from the first byte (IMAP 993, SMTP 465)


class EmailAuthMethod(enum.StrEnum):
    """How an email account logs in to IMAP and SMTP."""

    PASSWORD = "PASSWORD"  # LOGIN / AUTH PLAIN with the stored passwords
    OAUTH = "OAUTH"  # XOAUTH2 with an access token from the provider (Gmail, Microsoft 365)


class OAuthProvider(enum.StrEnum):
    """A mailbox provider whose accounts connect with OAuth 2.0 (banxway.resolvers.email_oauth)."""

    GOOGLE = "GOOGLE"
    MICROSOFT = "MICROSOFT"


class EmailAccountStatus(enum.StrEnum):
    """Whether an email account can log in: REAUTHORIZATION_REQUIRED when its OAuth grant was revoked or expired
    (polling and sending stop until an admin authorizes it again: emailAccountOAuthStart with its id)."""

    ACTIVE = "ACTIVE"
    REAUTHORIZATION_REQUIRED = "REAUTHORIZATION_REQUIRED"


class SlaStatus(enum.Enum):
    """Where a thread stands against its SLA policy (the worst of its open targets)."""

    ON_TRACK = "ON_TRACK"
    AT_RISK = "AT_RISK"  # a target is inside its policy's warn-before window
    BREACHED = "BREACHED"  # a target passed its due time unmet
    MET = "MET"  # every target so far was met in time
    PAUSED = "PAUSED"  # the thread is PENDING: the clock stopped


class SlaTargetKind(enum.Enum):
    FIRST_RESPONSE = "FIRST_RESPONSE"
    NEXT_RESPONSE = "NEXT_RESPONSE"
    RESOLUTION = "RESOLUTION"


class WorkflowInstanceStatus(enum.Enum):
    RUNNING = "RUNNING"  # a step is due now (the run_workflow actor is enqueued)
    WAITING = "WAITING"  # a WAIT step, or a reply held for approval: until an event or `due_at`
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class WorkflowStepStatus(enum.Enum):
    RUNNING = "RUNNING"  # claimed by a run; a run finding a stale claim of a non-repeatable step fails it
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Intent(enum.Enum):
    """What a customer's message asks for (message analysis)."""

    QUOTE_REQUEST = "QUOTE_REQUEST"
    BOOKING = "BOOKING"
    TRACKING = "TRACKING"
    DOCUMENTS = "DOCUMENTS"
    INVOICE = "INVOICE"
    CUSTOMS = "CUSTOMS"
    COMPLAINT = "COMPLAINT"
    OTHER = "OTHER"


class Sentiment(enum.Enum):
    NEGATIVE = "NEGATIVE"
    NEUTRAL = "NEUTRAL"
    POSITIVE = "POSITIVE"


class EntityKind(enum.Enum):
    """A freight entity found in a message's text."""

    CONTAINER = "CONTAINER"  # ISO 6346, check digit verified
    BILL_OF_LADING = "BILL_OF_LADING"
    AWB = "AWB"  # air waybill, 3-digit prefix + 8 digits, mod-7 check
    BOOKING = "BOOKING"
    PORT = "PORT"  # UN/LOCODE
    DATE = "DATE"
    INCOTERM = "INCOTERM"
    COMMODITY = "COMMODITY"
    WEIGHT = "WEIGHT"
    VOLUME = "VOLUME"


class ComposeTone(enum.Enum):
    FORMAL = "FORMAL"
    FRIENDLY = "FRIENDLY"
    CONCISE = "CONCISE"
