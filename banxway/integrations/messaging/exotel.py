"""Exotel: SMS (`Sms/send.json`), WhatsApp (`v2/accounts/{sid}/messages`), click-to-call (`Calls/connect.json`),
and what its webhooks post. Exotel signs nothing: the webhook token (and an optional IP allow-list) is the proof."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

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
    _error_text,
    _field,
    _object,
    parse_call,
    request,
)

_EXOTEL_WA_STATUS = {30001: MessageStatus.SENT, 30002: MessageStatus.DELIVERED, 30003: MessageStatus.READ}

_EXOTEL_SMS_STATUS = {
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "submitted": MessageStatus.SENT,
    "sent": MessageStatus.DELIVERED,  # Exotel's "sent" is DELIVERED_TO_HANDSET
    "failed": MessageStatus.FAILED,
    "failed-dnd": MessageStatus.FAILED,
}


class Exotel:
    type = IntegrationType.EXOTEL
    default_base_url = "https://api.exotel.com"
    region = "IN"  # Exotel sends Indian numbers in national form (09820054321)
    webhook_paths = [("WhatsApp messages and statuses", "whatsapp"), ("SMS", "sms"), ("Calls", "voice")]
    calls = True
    signature_header = None
    mms_regions: frozenset[str] = frozenset()  # Exotel sends no MMS

    def status_path(self, channel: Channel) -> str:
        return {Channel.WHATSAPP: "whatsapp", Channel.SMS: "sms", Channel.VOICE: "voice"}[channel]

    async def send_message(self, config: ProviderConfig, out: Outgoing) -> str:
        """Send a WhatsApp or SMS message; Exotel's id for it."""
        sid = config.account_sid
        if out.channel == Channel.SMS:
            if out.media is not None:
                raise PermanentProviderError("SMS on Exotel carries no media (no MMS).")
            form = {
                "From": out.from_number,
                "To": out.to,
                "Body": out.body,
                "StatusCallback": out.status_callback,
                "CustomField": out.reference,
            }
            reply = await request(config, "POST", f"/v1/Accounts/{sid}/Sms/send.json", data=form)
            return _field(reply, "SMSMessage", "Sid")
        if out.template is not None:
            parameters = [{"type": "text", "text": p} for p in out.template.parameters]
            content: dict[str, Any] = {
                "type": "template",
                "template": {
                    "name": out.template.name,
                    "language": {"code": out.template.language},
                    "components": [{"type": "body", "parameters": parameters}] if parameters else [],
                },
            }
        elif out.media is not None:  # one media item, the body as its caption (audio takes none)
            media: dict[str, Any] = {"link": out.media.url}
            if out.media.kind != "audio" and out.body.strip():
                media["caption"] = out.body
            if out.media.kind == "document":
                media["filename"] = out.media.filename
            content = {"type": out.media.kind, out.media.kind: media}
        else:
            content = {"type": "text", "text": {"body": out.body}}
        payload = {
            "custom_data": out.reference,
            "status_callback": out.status_callback,
            "whatsapp": {"messages": [{"from": out.from_number, "to": out.to, "content": content}]},
        }
        reply = await request(config, "POST", f"/v2/accounts/{sid}/messages", json=payload)
        result = _field(reply, "response", "whatsapp", "messages")
        first = result[0] if isinstance(result, list) and result else {}
        if not isinstance(first, dict) or first.get("status") == "failure" or not first.get("data"):
            raise PermanentProviderError(f"EXOTEL refused the message: {_error_text({'response': first}) or first}")
        return _field(first, "data", "sid")

    async def start_call(
        self, config: ProviderConfig, *, agent: str, customer: str, caller_id: str, status_callback: str, reference: str
    ) -> str:
        """Exotel's click-to-call: rings the agent, then connects the customer (recorded); the call's Sid."""
        form = {
            "From": agent,
            "To": customer,
            "CallerId": caller_id,
            "Record": "true",
            "StatusCallback": status_callback,
            "StatusCallbackEvents[0]": "terminal",
            "StatusCallbackContentType": "application/x-www-form-urlencoded",
            "CustomField": reference,
        }
        reply = await request(config, "POST", f"/v1/Accounts/{config.account_sid}/Calls/connect.json", data=form)
        return _field(reply, "Call", "Sid")

    async def test_credentials(self, config: ProviderConfig) -> str:
        """Read the account's balance with the credentials."""
        reply = await request(config, "GET", f"/v1/Accounts/{config.account_sid}/Balance.json")
        balance = reply.get("Balance") if isinstance(reply, dict) else None
        if isinstance(balance, dict):
            return f"Exotel account {config.account_sid}: balance {balance.get('Balance')} {balance.get('Currency')}"
        return f"Exotel account {config.account_sid}: credentials accepted"

    def verify_webhook(self, auth_token: str, url: str, body: bytes, signature: str | None) -> bool:
        raise NotImplementedError("Exotel signs nothing: the token in the URL (and the allow-list) is its proof")

    def parse_webhook(self, kind: str, body: bytes) -> list[Inbound | StatusUpdate | CallUpdate]:
        """What a callback on /webhooks/exotel/{token}/{kind} reports. Raises BadPayload (and decoding errors)."""
        if kind == "whatsapp":
            return list(parse_whatsapp(orjson.loads(body)))
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        if kind == "voice":
            return [parse_call(form)]
        return [parse_sms(form)]


def parse_whatsapp(payload: Any) -> list[Inbound | StatusUpdate]:
    try:
        messages = payload["whatsapp"]["messages"]
        assert isinstance(messages, list)
    except (KeyError, TypeError, AssertionError):
        raise BadPayload('expected {"whatsapp": {"messages": [...]}}') from None
    found: list[Inbound | StatusUpdate] = []
    for item in messages:
        if not isinstance(item, dict) or not item.get("sid"):
            raise BadPayload("each message needs a sid")
        kind = item.get("callback_type")
        if kind == "dlr":
            try:
                code = int(item.get("exo_status_code"))
            except (TypeError, ValueError):
                raise BadPayload("a dlr needs a numeric exo_status_code") from None
            status = _EXOTEL_WA_STATUS.get(code, MessageStatus.FAILED if code >= 30004 else None)
            if status is None:
                continue  # an intermediate code we do not track
            error = None
            if status == MessageStatus.FAILED:
                error = item.get("description") or item.get("exo_detailed_status") or f"code {code}"
            details = {"exo_status_code": code}
            if item.get("custom_data"):
                details["reference"] = str(item["custom_data"])
            found.append(StatusUpdate(str(item["sid"]), status, error, details))
        elif kind in ("icm", "incoming_message"):
            content = _object(item.get("content"), "content")
            kind_of = content.get("type")
            media: list[Media] = []
            if kind_of == "text":
                body = str(_object(content.get("text"), "content.text").get("body") or "")
            elif kind_of in ("image", "audio", "document", "video", "sticker"):
                part = _object(content.get(kind_of), f"content.{kind_of}")
                if part.get("url"):
                    media.append(Media(str(part["url"]), part.get("mime_type"), part.get("caption")))
                body = str(part.get("caption") or f"[{kind_of}]")
            else:
                body = f"[{kind_of or 'unsupported message'}]"
            if not item.get("from"):
                raise BadPayload("an incoming message needs from")
            found.append(
                Inbound(
                    provider_id=str(item["sid"]),
                    channel=Channel.WHATSAPP,
                    sender=str(item["from"]),
                    to=str(item.get("to") or ""),
                    body=body,
                    profile_name=item.get("profile_name"),
                    media=media,
                )
            )
        else:
            raise BadPayload(f"unknown callback_type {kind!r}")
    return found


def parse_sms(form: dict[str, str]) -> Inbound | StatusUpdate:
    sid = form.get("SmsSid")
    if not sid:
        raise BadPayload("SmsSid is missing")
    if "Status" in form:
        status = _EXOTEL_SMS_STATUS.get(form["Status"].lower())
        if status is None:
            raise BadPayload(f"unknown SMS Status {form['Status']!r}")
        error = form.get("DetailedStatus") if status == MessageStatus.FAILED else None
        details = {"detailed_status": form.get("DetailedStatus")}
        if form.get("CustomField"):
            details["reference"] = form["CustomField"]
        return StatusUpdate(sid, status, error, details)
    if not form.get("From"):
        raise BadPayload("From is missing")
    return Inbound(sid, Channel.SMS, form["From"], form.get("To", ""), form.get("Body", ""))
