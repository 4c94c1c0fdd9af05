"""What media an outbound message may carry, per channel: one table, checked before a message is stored.

WhatsApp: Meta's documented limits for the Cloud API (which Exotel and Twilio both relay): one media item per
message, the message's text as its caption (audio takes none). SMS: MMS only where the provider sends it (Twilio, to
US and Canadian numbers: images up to 5 MB); Exotel sends no MMS.

Messenger and Instagram (the Send API): one attachment per message, which takes no text: the text goes as a message
of its own just before the file (`takes_caption`). Messenger ("Saving assets"): image, audio, video and file up to
25 MB, an image fetched from a URL up to 8 MB, audio served as `audio/*`. Instagram ("Send a message", "Upload media
for Instagram Messaging"): images png, jpeg, gif up to 8 MB; video mp4, ogg, avi, mov, webm, audio aac, m4a, wav, mp4
up to 25 MB; files pdf up to 25 MB.

Web chat (no provider: the visitor downloads the files, `resolvers.web_chat_files`): up to 10 files of 25 MB each, of
any type but executables and scripts; only images show inline, everything else downloads as an attachment.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from banxway.enums import Channel

MB = 1024 * 1024


@dataclass(frozen=True)
class MediaLimit:
    kind: str  # the channel's media type: image, audio, video, document (WhatsApp) or file (Messenger, Instagram)
    content_types: frozenset[str]  # media types; `type/*` for any subtype, `*/*` for any type
    max_bytes: int

    def takes(self, media_type: str) -> bool:
        return (
            media_type in self.content_types
            or f"{media_type.partition('/')[0]}/*" in self.content_types
            or "*/*" in self.content_types
        )


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
MESSENGER_LIMITS: tuple[MediaLimit, ...] = (
    MediaLimit("image", frozenset({"image/jpeg", "image/png", "image/gif"}), 8 * MB),
    MediaLimit("video", frozenset({"video/*"}), 25 * MB),
    MediaLimit("audio", frozenset({"audio/*"}), 25 * MB),
    MediaLimit("file", frozenset({"*/*"}), 25 * MB),
)
INSTAGRAM_LIMITS: tuple[MediaLimit, ...] = (
    MediaLimit("image", frozenset({"image/jpeg", "image/png", "image/gif"}), 8 * MB),
    MediaLimit(
        "video",
        frozenset({"video/mp4", "video/ogg", "video/x-msvideo", "video/avi", "video/quicktime", "video/webm"}),
        25 * MB,
    ),
    MediaLimit(
        "audio",
        frozenset({"audio/aac", "audio/mp4", "audio/x-m4a", "audio/m4a", "audio/wav", "audio/x-wav", "audio/wave"}),
        25 * MB,
    ),
    MediaLimit("file", frozenset({"application/pdf"}), 25 * MB),
)
WEB_CHAT_LIMITS: tuple[MediaLimit, ...] = (MediaLimit("file", frozenset({"*/*"}), 25 * MB),)
_LIMITS = {
    Channel.WHATSAPP: WHATSAPP_LIMITS,
    Channel.SMS: MMS_LIMITS,
    Channel.MESSENGER: MESSENGER_LIMITS,
    Channel.INSTAGRAM: INSTAGRAM_LIMITS,
    Channel.WEB_CHAT: WEB_CHAT_LIMITS,
}
MEDIA_PER_MESSAGE = 1
WEB_CHAT_FILES_PER_MESSAGE = 10
# Never sent on web chat, by type or by name: programs and scripts a visitor's computer could run.
EXECUTABLE_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-msi",
        "application/x-ms-installer",
        "application/x-executable",
        "application/x-elf",
        "application/x-mach-binary",
        "application/x-sh",
        "application/x-csh",
        "application/x-bat",
        "application/x-msbatch",
        "application/vnd.microsoft.portable-executable",
        "application/java-archive",
        "application/vnd.android.package-archive",
        "application/x-apple-diskimage",
        "application/javascript",
        "text/javascript",
        "application/x-powershell",
        "text/x-shellscript",
        "text/x-python",
        "application/hta",
        "text/vbscript",
    }
)
EXECUTABLE_EXTENSIONS = frozenset(
    {
        "exe", "com", "bat", "cmd", "msi", "msp", "scr", "pif", "cpl", "dll", "sys", "vbs", "vbe", "js", "jse",
        "wsf", "wsh", "hta", "ps1", "psm1", "sh", "bash", "jar", "apk", "app", "dmg", "pkg", "deb", "rpm", "run",
        "reg", "lnk", "msc", "py", "pyw",
    }
)  # fmt: skip


def media_per_message(channel: Channel) -> int:
    """How many files one message on `channel` may carry."""
    return WEB_CHAT_FILES_PER_MESSAGE if channel == Channel.WEB_CHAT else MEDIA_PER_MESSAGE


def takes_caption(channel: Channel) -> bool:
    """Whether the message's text goes with its file as one message (WhatsApp, MMS), or as a message of its own
    just before it (Messenger, Instagram: the Send API takes text or an attachment, not both)."""
    return channel not in (Channel.MESSENGER, Channel.INSTAGRAM)


def _size(value: int) -> str:
    return f"{value // MB} MB" if value % MB == 0 else f"{value} bytes"


def media_problem(
    channel: Channel,
    content_type: str,
    size: int,
    *,
    provider: str,
    mms_regions: frozenset[str],
    to: str,
    filename: str = "",
) -> str | None:
    """Why this file cannot go on `channel` through `provider` (to `to`), or None when it can."""
    media_type = content_type.split(";")[0].strip().lower()
    limits = _LIMITS.get(channel)
    if limits is None:
        return f"{channel.name} messages carry no media here."
    if channel == Channel.SMS:
        if not mms_regions:
            return f"SMS on {provider.title()} carries no media (no MMS)."
        region = _region(to)
        if region not in mms_regions:
            return f"MMS through {provider.title()} goes only to numbers in {', '.join(sorted(mms_regions))}."
    if channel == Channel.WEB_CHAT:
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if media_type in EXECUTABLE_TYPES or extension in EXECUTABLE_EXTENSIONS:
            shown = f".{extension}" if extension in EXECUTABLE_EXTENSIONS else media_type
            return f"Web chat sends no programs or scripts ({shown} files)."
    for limit in limits:
        if limit.takes(media_type):
            if size > limit.max_bytes:
                return (
                    f"A {channel.name} {limit.kind} may be at most {_size(limit.max_bytes)}; this file is {size} bytes."
                )
            return None
    allowed = sorted({t for limit in limits for t in limit.content_types})
    return f"{channel.name} does not take {media_type or 'this type'} files; allowed: {', '.join(allowed)}."


def media_kind(channel: Channel, content_type: str) -> str:
    """The channel's media type of a file that passed `media_problem`: image, audio, video, document (WhatsApp),
    file (Messenger, Instagram, web chat)."""
    media_type = content_type.split(";")[0].strip().lower()
    for limit in _LIMITS.get(channel, WHATSAPP_LIMITS):
        if limit.takes(media_type):
            return limit.kind
    return "document" if channel in (Channel.WHATSAPP, Channel.SMS) else "file"


def _region(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
