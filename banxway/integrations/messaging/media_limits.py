"""What media a WhatsApp or SMS (MMS) message may carry: one table, checked before a message is stored.

WhatsApp: Meta's documented limits for the Cloud API (which Exotel and Twilio both relay): one media item per
message, the message's text as its caption (audio takes none). SMS: MMS only where the provider sends it (Twilio, to
US and Canadian numbers: images up to 5 MB); Exotel sends no MMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from banxway.enums import Channel

MB = 1024 * 1024


@dataclass(frozen=True)
class MediaLimit:
    kind: str  # WhatsApp's media type: image, audio, video, document
    content_types: frozenset[str]
    max_bytes: int


WHATSAPP_LIMITS: tuple[MediaLimit, ...] = (
    MediaLimit("image", frozenset({"image/jpeg", "image/png"}), 5 * MB),
    MediaLimit("audio", frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB),
    MediaLimit("video", frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    MediaLimit(
        "document",
        frozenset(
            {
                "application/pdf",
                "text/plain",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * MB,
    ),
)
MMS_LIMITS: tuple[MediaLimit, ...] = (MediaLimit("image", frozenset({"image/jpeg", "image/png", "image/gif"}), 5 * MB),)
MEDIA_PER_MESSAGE = 1


def _size(value: int) -> str:
    return f"{value // MB} MB" if value % MB == 0 else f"{value} bytes"


def media_problem(
    channel: Channel, content_type: str, size: int, *, provider: str, mms_regions: frozenset[str], to: str
) -> str | None:
    """Why this file cannot go on `channel` through `provider` (to `to`), or None when it can."""
    media_type = content_type.split(";")[0].strip().lower()
    if channel == Channel.WHATSAPP:
        limits = WHATSAPP_LIMITS
    elif channel == Channel.SMS:
        if not mms_regions:
            return f"SMS on {provider.title()} carries no media (no MMS)."
        region = _region(to)
        if region not in mms_regions:
            return f"MMS through {provider.title()} goes only to numbers in {', '.join(sorted(mms_regions))}."
        limits = MMS_LIMITS
    else:
        return f"{channel.name} messages carry no media here."
    for limit in limits:
        if media_type in limit.content_types:
            if size > limit.max_bytes:
                return (
                    f"A {channel.name} {limit.kind} may be at most {_size(limit.max_bytes)}; this file is {size} bytes."
                )
            return None
    allowed = sorted({t for limit in limits for t in limit.content_types})
    return f"{channel.name} does not take {media_type or 'this type'} files; allowed: {', '.join(allowed)}."


def media_kind(channel: Channel, content_type: str) -> str:
    """The WhatsApp media type of a file that passed `media_problem` (image, audio, video, document)."""
    media_type = content_type.split(";")[0].strip().lower()
    for limit in WHATSAPP_LIMITS if channel == Channel.WHATSAPP else MMS_LIMITS:
        if media_type in limit.content_types:
            return limit.kind
    return "document"


def _region(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
