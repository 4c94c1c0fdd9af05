"""The GraphQL schema: `build_schema(settings)`.

Each domain module holds its object types, enums, inputs, payloads and root fields (`XQuery`,
`XMutation`, `XSubscription`); the roots are composed here with `merge_types`, in the order the
fields appear in schema.graphql."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from banxway.schema.actions import Action, ActionMutation
from banxway.schema.agents import AgentConnection, AgentMutation, AgentQuery, AgentTask
from banxway.schema.analysis import AnalysisMutation, ShipmentSuggestion
from banxway.schema.analytics import AnalyticsQuery
from banxway.schema.api_tokens import ApiTokenMutation, ApiTokenQuery
from banxway.schema.audit import AuditQuery
from banxway.schema.auth import AuthMutation
from banxway.schema.canned_responses import CannedResponseMutation, CannedResponseQuery
from banxway.schema.compose import ComposeMutation, ComposeQuery, ComposeSession, ComposeSubscription
from banxway.schema.contact_merge_suggestions import ContactMergeSuggestionMutation, ContactMergeSuggestionQuery
from banxway.schema.contacts import Contact, ContactMutation, ContactQuery
from banxway.schema.customers import Customer, CustomerMutation, CustomerQuery
from banxway.schema.dev import DevMutation, DevQuery
from banxway.schema.documents import Document, DocumentMutation, DocumentQuery
from banxway.schema.email import EmailMutation, EmailQuery
from banxway.schema.extensions import schema_extensions
from banxway.schema.integrations import IntegrationMutation, IntegrationQuery
from banxway.schema.knowledge import KnowledgeMutation, KnowledgeQuery
from banxway.schema.live import LiveMutation, LiveQuery, LiveSubscription
from banxway.schema.messages import Message, MessageMutation
from banxway.schema.nodes import NodeQuery
from banxway.schema.notes import Note, NoteMutation
from banxway.schema.notifications import (
    Notification,
    NotificationMutation,
    NotificationQuery,
    NotificationSubscription,
)
from banxway.schema.shipments import Shipment, ShipmentMutation, ShipmentQuery
from banxway.schema.sla import SlaMutation, SlaPolicy, SlaQuery
from banxway.schema.subscriptions import EventSubscription
from banxway.schema.teams import Team, TeamMutation, TeamQuery
from banxway.schema.threads import Thread, ThreadMutation, ThreadQuery
from banxway.schema.users import Organization, User, UserMutation, UserQuery
from banxway.schema.web_chat import (
    ChatWidgetMutation,
    ChatWidgetQuery,
    VisitorMutation,
    VisitorQuery,
    VisitorSubscription,
)
from banxway.schema.webhook_endpoints import WebhookMutation, WebhookQuery
from banxway.schema.workflows import Workflow, WorkflowInstance, WorkflowMutation, WorkflowQuery
from banxway.settings import Settings

Query = merge_types(
    "Query",
    (
        ThreadQuery,
        CustomerQuery,
        ContactQuery,
        ContactMergeSuggestionQuery,
        ShipmentQuery,
        DocumentQuery,
        NotificationQuery,
        LiveQuery,
        EmailQuery,
        IntegrationQuery,
        NodeQuery,
        UserQuery,
        ApiTokenQuery,
        SlaQuery,
        TeamQuery,
        CannedResponseQuery,
        DevQuery,
        WorkflowQuery,
        ComposeQuery,
        AuditQuery,
        AgentQuery,
        KnowledgeQuery,
        WebhookQuery,
        AnalyticsQuery,
        ChatWidgetQuery,
        VisitorQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        CustomerMutation,
        ContactMutation,
        ContactMergeSuggestionMutation,
        ShipmentMutation,
        DocumentMutation,
        ThreadMutation,
        MessageMutation,
        NoteMutation,
        ActionMutation,
        LiveMutation,
        NotificationMutation,
        EmailMutation,
        IntegrationMutation,
        AuthMutation,
        UserMutation,
        ApiTokenMutation,
        SlaMutation,
        TeamMutation,
        CannedResponseMutation,
        WorkflowMutation,
        ComposeMutation,
        AnalysisMutation,
        DevMutation,
        AgentMutation,
        KnowledgeMutation,
        WebhookMutation,
        ChatWidgetMutation,
        VisitorMutation,
    ),
)
Subscription = merge_types(
    "Subscription",
    (EventSubscription, NotificationSubscription, LiveSubscription, ComposeSubscription, VisitorSubscription),
)

# The types `node(id:)` fetches (those with `resolve_nodes`), listed so that each is in the schema.
NODE_TYPES = (
    Organization,
    User,
    Customer,
    Contact,
    Shipment,
    Document,
    Thread,
    Message,
    Note,
    Action,
    Notification,
    SlaPolicy,
    Team,
    Workflow,
    WorkflowInstance,
    ComposeSession,
    ShipmentSuggestion,
    AgentConnection,
    AgentTask,
)


def build_schema(settings: Settings, schema_class: type[strawberry.Schema] = strawberry.Schema, **kwargs: Any) -> Any:
    """The schema; `schema_class` a subclass such as the compiled path's, `kwargs` its own arguments."""
    return schema_class(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=list(NODE_TYPES),
        extensions=schema_extensions(settings),
        config=StrawberryConfig(relay_max_results=100),
        **kwargs,
    )


def schema_sdl() -> str:
    """The SDL that `banxway export-schema` writes to schema.graphql."""
    return build_schema(Settings()).as_str() + "\n"


__all__ = ["build_schema", "schema_sdl"]
