"""Meta: Facebook Messenger and Instagram Direct through the Graph API, behind the same `Provider` interface as
Exotel and Twilio.

* Sending: the Send API, `POST /{version}/me/messages` with the page access token (`Authorization: Bearer`),
  `{"recipient": {"id": PSID or IGSID}, "messaging_type": "RESPONSE", "message": {"text": ...}}` inside the
  24-hour window, `"messaging_type": "MESSAGE_TAG", "tag": ...` outside it; the reply's `message_id` is our
  provider id. A file goes as `"message": {"attachment": {"type": image | video | audio | file, "payload": {"url":
  ..., "is_reusable": true}}}` (Meta fetches the URL); an attachment message takes no text, so the delivery sends the
  text first as a message of its own (`media_limits.takes_caption`).
* Webhooks: one callback URL for both products, `GET` for the subscription handshake (`hub.mode=subscribe`,
  `hub.verify_token`, `hub.challenge` echoed) and `POST` signed `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the
  raw body with the app secret>`. `object: page` is Messenger, `object: instagram` is Instagram; each
  `entry[].messaging[]` item is a message (`message.mid`, `text`, `attachments`), a delivery receipt
  (`delivery.mids`, `delivery.watermark`) or a read receipt (`read.watermark`, Instagram: `read.mid`).
* Long-lived tokens: `GET /{version}/oauth/access_token?grant_type=fb_exchange_token&client_id=<app id>
  &client_secret=<app secret>&fb_exchange_token=<token>` returns a new token and its `expires_in`.

The page id is the integration's `account_sid`, the page access token its `api_token`, the app id its `api_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from banxway.enums import Channel, IntegrationType, MessageStatus
from banxway.integrations.messaging.base import (
    BadPayload,
    CallUpdate,
    Inbound,
    Media,
    Outgoing,
    PermanentProviderError,
    ProviderConfig,
    StatusUpdate,
    TransientProviderError,
    _field,
    request,
)

GRAPH_VERSION = "v19.0"
# Message tags that may be sent outside the 24-hour window (Messenger Platform docs, "Message Tags")
MESSAGE_TAGS = ("ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "HUMAN_AGENT")
_OBJECTS = {"page": Channel.MESSENGER, "instagram": Channel.INSTAGRAM}
_MEDIA_TYPES = {"image": "image/*", "video": "video/*", "audio": "audio/*", "file": None}


@dataclass(frozen=True)
class Watermark:
    """Every message sent to `customer` on `channel` up to `at` was delivered or read (Messenger receipts carry
    a watermark, not message ids); Instagram's read receipt names one message (`provider_id`) instead."""

    channel: Channel
    customer: str
    status: MessageStatus
    at: datetime | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: datetime | None


# Graph error codes that mean "slow down" although Meta answers them with HTTP 400 (Graph API docs, "Handling
# Errors"): application, user, page and send-API throttling; 1 and 2 are temporary service errors.
_RETRY_CODES = (1, 2, 4, 17, 32, 613)
_CODE = re.compile(r"\(code (\d+)\)$")


async def _graph(config: ProviderConfig, method: str, path: str, **kwargs: Any) -> Any:
    """`request`, with Meta's throttling and temporary errors (HTTP 400, codes in _RETRY_CODES) made transient."""
    try:
        return await request(config, method, path, **kwargs)
    except PermanentProviderError as exc:
        found = _CODE.search(exc.detail)
        if found and int(found.group(1)) in _RETRY_CODES:
            raise TransientProviderError(exc.detail, exc.status, 60.0) from exc
        raise


def _headers(config: ProviderConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_token}"}


def signature(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 header Meta sends with `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _millis(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError):
        return None


class Meta:
    type = IntegrationType.META
    default_base_url = "https://graph.facebook.com"
    region = None
    webhook_paths = [("Messenger and Instagram callback URL (GET handshake and POST events)", "events")]
    calls = False
    signature_header = "X-Hub-Signature-256"
    mms_regions: frozenset[str] = frozenset()

    def status_path(self, channel: Channel) -> str:
        return "events"

    async def send_message(self, config: ProviderConfig, out: Outgoing) -> str:
        """Send a Messenger or Instagram message: its file when it has one (the text is not sent with it: the Send
        API takes one or the other), else its text; Meta's message id."""
        tag = out.tag
        message: dict[str, Any] = {"text": out.body}
        if out.media is not None:
            attachment = {"url": out.media.url, "is_reusable": True}
            message = {"attachment": {"type": out.media.kind, "payload": attachment}}
        payload: dict[str, Any] = {
            "recipient": {"id": out.to},
            "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE",
            "message": message,
        }
        if tag:
            payload["tag"] = tag
        reply = await _graph(
            config, "POST", f"/{GRAPH_VERSION}/me/messages", json=payload, headers=_headers(config), auth=None
        )
        return str(_field(reply, "message_id"))

    async def start_call(
        self, config: ProviderConfig, *, agent: str, customer: str, caller_id: str, status_callback: str, reference: str
    ) -> str:
        raise PermanentProviderError("Calls are made through an Exotel integration.")

    async def test_credentials(self, config: ProviderConfig) -> str:
        """Read the page with its access token."""
        reply = await request(
            config, "GET", f"/{GRAPH_VERSION}/me", params={"fields": "id,name"}, headers=_headers(config), auth=None
        )
        return f"Facebook page {reply.get('name') or config.account_sid} ({reply.get('id') or config.account_sid})"

    async def exchange_token(self, config: ProviderConfig, app_id: str, app_secret: str) -> Token:
        """A new long-lived token for the current one (fb_exchange_token), with its expiry."""
        reply = await request(
            config,
            "GET",
            f"/{GRAPH_VERSION}/oauth/access_token",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": app_id,
                "client_secret": app_secret,
                "fb_exchange_token": config.api_token,
            },
            auth=None,
        )
        token = str(_field(reply, "access_token"))
        expires_in = reply.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) and expires_in > 0:
            expires_at = datetime.now(UTC) + timedelta(seconds=float(expires_in))
        return Token(token, expires_at)

    def verify_webhook(self, auth_token: str, url: str, body: bytes, signature_value: str | None) -> bool:
        """X-Hub-Signature-256 over the raw body, keyed with the app secret (`auth_token` here)."""
        if not signature_value or not auth_token:
            return False
        return hmac.compare_digest(signature(auth_token, body).encode(), signature_value.strip().encode())

    def parse_webhook(self, kind: str, body: bytes) -> list[Inbound | StatusUpdate | CallUpdate]:
        return [item for _, item in parse_events(body) if not isinstance(item, Watermark)]  # type: ignore[misc]


def parse_events(body: bytes) -> list[tuple[str, Inbound | StatusUpdate | Watermark]]:
    """(the page or Instagram account the entry is for, what it reports) for each item of a webhook POST.
    Echoes of our own sends and unknown items (postbacks, reactions, deletions) are skipped."""
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise BadPayload("the body must be an object")
    channel = _OBJECTS.get(payload.get("object"))  # type: ignore[arg-type]
    if channel is None:
        raise BadPayload(f"unknown object {payload.get('object')!r} (page or instagram)")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise BadPayload("entry must be a list")
    found: list[tuple[str, Inbound | StatusUpdate | Watermark]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("messaging", []), list):
            raise BadPayload("entry[] must be objects with a messaging list")
        account = str(entry.get("id") or "")
        for item in entry.get("messaging", []):
            if not isinstance(item, dict):
                raise BadPayload("messaging[] must be objects")
            found += [(account, parsed) for parsed in _parse_item(channel, account, item)]
    return found


def _parse_item(channel: Channel, account: str, item: dict[str, Any]) -> list[Inbound | StatusUpdate | Watermark]:
    sender = str((item.get("sender") or {}).get("id") or "")
    recipient = str((item.get("recipient") or {}).get("id") or account)
    message = item.get("message")
    if isinstance(message, dict):
        if message.get("is_echo") or message.get("is_deleted"):
            return []
        mid = message.get("mid")
        if not mid or not sender:
            raise BadPayload("message.mid and sender.id are required")
        media = []
        for attachment in message.get("attachments") or []:
            if not isinstance(attachment, dict):
                raise BadPayload("message.attachments[] must be objects")
            url = (attachment.get("payload") or {}).get("url")
            if url:
                media.append(Media(str(url), _MEDIA_TYPES.get(attachment.get("type") or "file")))
        text = str(message.get("text") or "")
        body = text or ("[media]" if media else "")
        return [Inbound(str(mid), channel, sender, recipient, body, None, media)]
    delivery = item.get("delivery")
    if isinstance(delivery, dict):
        mids = delivery.get("mids") or []
        if mids:
            return [StatusUpdate(str(mid), MessageStatus.DELIVERED) for mid in mids]
        at = _millis(delivery.get("watermark"))
        return [Watermark(channel, sender, MessageStatus.DELIVERED, at)] if at and sender else []
    read = item.get("read")
    if isinstance(read, dict):
        if read.get("mid"):  # Instagram names the message read
            return [Watermark(channel, sender, MessageStatus.READ, None, str(read["mid"]))]
        at = _millis(read.get("watermark"))
        return [Watermark(channel, sender, MessageStatus.READ, at)] if at and sender else []
    return []
