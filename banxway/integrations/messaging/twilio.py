"""Twilio: SMS and WhatsApp (`Messages.json`, `whatsapp:` addresses, templates by ContentSid), and what its
webhooks post, signed with `X-Twilio-Signature`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qsl

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
    _field,
    parse_call,
    request,
)

_TWILIO_STATUS = {
    "accepted": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
    "undelivered": MessageStatus.FAILED,
}


class Twilio:
    type = IntegrationType.TWILIO
    default_base_url = "https://api.twilio.com"
    region = None
    webhook_paths = [("Incoming messages", "messages"), ("Message statuses", "status"), ("Calls", "voice")]
    calls = False
    signature_header = "X-Twilio-Signature"
    mms_regions = frozenset({"US", "CA"})  # Twilio sends MMS to US and Canadian numbers

    def status_path(self, channel: Channel) -> str:
        return "voice" if channel == Channel.VOICE else "status"

    async def send_message(self, config: ProviderConfig, out: Outgoing) -> str:
        """Send a WhatsApp or SMS message; Twilio's Sid for it."""
        form = {
            "To": _address(out.channel, out.to),
            "From": _address(out.channel, out.from_number),
            "StatusCallback": out.status_callback,
        }
        if out.template is not None and out.template.content_sid:
            form["ContentSid"] = out.template.content_sid
            form["ContentVariables"] = json.dumps({str(i + 1): p for i, p in enumerate(out.template.parameters)})
        else:
            form["Body"] = out.body
        if out.media is not None:  # the provider downloads it; the body is its caption
            form["MediaUrl"] = out.media.url
        reply = await request(config, "POST", f"/2010-04-01/Accounts/{config.account_sid}/Messages.json", data=form)
        return _field(reply, "sid")

    async def start_call(
        self, config: ProviderConfig, *, agent: str, customer: str, caller_id: str, status_callback: str, reference: str
    ) -> str:
        raise PermanentProviderError("Calls are made through an Exotel integration.")

    async def test_credentials(self, config: ProviderConfig) -> str:
        """Read the account with the credentials."""
        reply = await request(config, "GET", f"/2010-04-01/Accounts/{config.account_sid}.json")
        return f"Twilio account {reply.get('friendly_name') or config.account_sid}: {reply.get('status', 'active')}"

    def verify_webhook(self, auth_token: str, url: str, body: bytes, signature: str | None) -> bool:
        """X-Twilio-Signature over the URL Twilio requested and the posted form."""
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return signature_valid(auth_token, url, form, signature)

    def parse_webhook(self, kind: str, body: bytes) -> list[Inbound | StatusUpdate | CallUpdate]:
        """What a callback on /webhooks/twilio/{token}/{kind} reports. Raises BadPayload (and decoding errors)."""
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        if kind == "voice":
            return [parse_call(form)]
        return [parse_message(form)]


def _address(channel: Channel, number: str) -> str:
    return f"whatsapp:{number}" if channel == Channel.WHATSAPP else number


def compute_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL followed by each POST parameter's name and value,
    sorted by name."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, url: str, params: dict[str, str], signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(compute_signature(auth_token, url, params).encode(), signature.encode())


def _strip_whatsapp(address: str) -> str:
    return address.removeprefix("whatsapp:")


def parse_message(form: dict[str, str]) -> Inbound | StatusUpdate:
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise BadPayload("MessageSid is missing")
    word = (form.get("MessageStatus") or form.get("SmsStatus") or "received").lower()
    if word != "received":
        status = _TWILIO_STATUS.get(word)
        if status is None:
            raise BadPayload(f"unknown MessageStatus {word!r}")
        error = None
        if status == MessageStatus.FAILED:
            error = f"Twilio error {form.get('ErrorCode') or 'unknown'}: {form.get('ErrorMessage') or word}"
        return StatusUpdate(sid, status, error, {"error_code": form.get("ErrorCode")})
    sender = form.get("From") or ""
    if not sender:
        raise BadPayload("From is missing")
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    try:
        count = int(form.get("NumMedia") or 0)
    except ValueError:
        raise BadPayload("NumMedia is not a number") from None
    media = [
        Media(form[f"MediaUrl{i}"], form.get(f"MediaContentType{i}")) for i in range(count) if form.get(f"MediaUrl{i}")
    ]
    body = form.get("Body") or ("[media]" if media else "")
    return Inbound(
        sid, channel, _strip_whatsapp(sender), _strip_whatsapp(form.get("To", "")), body, form.get("ProfileName"), media
    )
