"""`Message.headers`, typed: what the code reads and writes in a message's JSON details, one pydantic model.

The column stays JSON (old rows read as they are; unknown keys are kept), but every write goes through
`MessageHeaders` (a wrong type is refused before it is stored) and every read gets attributes, not a bag of keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class MediaItem(_Part):
    """A WhatsApp/SMS media item: where the provider keeps it, and once fetched, our attachment (or why not)."""

    url: str
    content_type: str | None = None
    caption: str | None = None
    attachment_id: str | None = None
    error: str | None = None


class TemplateUse(_Part):
    """An approved WhatsApp template sent instead of free text."""

    name: str
    language: str
    parameters: list[str] = []
    content_sid: str | None = None  # Twilio Content API


class SkippedAttachment(_Part):
    filename: str | None = None
    content_type: str | None = None
    size: int | None = None
    reason: str | None = None


class MessageHeaders(_Part):
    # email
    message_id: str | None = None
    in_reply_to: list[str] | str | None = None  # an inbound mail's list, or the id our reply answered
    references: list[str] = []
    to: list[str] = []
    cc: list[str] = []
    reply_to: list[str] = []
    date: str | None = None
    uid: int | None = None
    defects: list[str] = []
    skipped_attachments: list[SkippedAttachment] = []
    smtp_reply: str | None = None
    # WhatsApp / SMS
    provider: str | None = None
    profile_name: str | None = None
    media: list[MediaItem] = []
    template: TemplateUse | None = None
    message_tag: str | None = None  # Messenger/Instagram: the tag of a send outside the 24-hour window
    text_message_id: str | None = None  # Messenger/Instagram: the id of the text sent before the message's file
    # calls
    agent_number: str | None = None
    call_status: str | None = None
    duration: int | None = None
    recording_url: str | None = None
    summary: str | None = None
    transcribed: bool = False
    transcript: str | None = None
    transcript_error: str | None = None

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> MessageHeaders:
        return cls.model_validate(raw or {})


def checked(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as JSON for the column, after checking them against MessageHeaders (raises ValidationError)."""
    MessageHeaders.model_validate(values)
    return values
