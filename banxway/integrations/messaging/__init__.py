"""WhatsApp, SMS and voice providers behind one `Provider` interface: `provider(IntegrationType.TWILIO)`."""

from __future__ import annotations

from banxway.enums import IntegrationType
from banxway.integrations.messaging.base import (
    BadPayload,
    CallUpdate,
    Inbound,
    Media,
    OutcomeUnknown,
    Outgoing,
    OutgoingMedia,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    ProviderError,
    StatusUpdate,
    Template,
    TransientProviderError,
    download,
    origin,
)
from banxway.integrations.messaging.exotel import Exotel
from banxway.integrations.messaging.meta import Meta
from banxway.integrations.messaging.twilio import Twilio

PROVIDERS: dict[IntegrationType, Provider] = {
    IntegrationType.EXOTEL: Exotel(),
    IntegrationType.TWILIO: Twilio(),
    IntegrationType.META: Meta(),
}


def provider(kind: IntegrationType) -> Provider:
    return PROVIDERS[kind]


__all__ = [
    "PROVIDERS",
    "BadPayload",
    "CallUpdate",
    "Inbound",
    "Media",
    "OutcomeUnknown",
    "Outgoing",
    "OutgoingMedia",
    "PermanentProviderError",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "StatusUpdate",
    "Template",
    "TransientProviderError",
    "download",
    "origin",
    "provider",
]
