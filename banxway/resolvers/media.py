"""Heavy provider work, run by actors (`fetch_message_media`, `transcribe_call`): downloading inbound media into attachment storage, and transcribing
recorded calls with an OpenAI-compatible speech-to-text API.

Downloads come only from the integration's API host (and BANXWAY_PROVIDER_MEDIA_HOSTS), with the
integration's credentials, at most BANXWAY_ATTACHMENT_MAX_BYTES. A permanent failure is written on the
message (the media item's `error`, or the call's `transcript_error`); a transient one raises for a retry.
"""

from __future__ import annotations

import asyncio
import mimetypes
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from banxway.context import SystemContext
from banxway.db.headers import MessageHeaders
from banxway.db.models import Attachment, Integration, Message
from banxway.events import MessageUpdated
from banxway.integrations import ai
from banxway.integrations import messaging as providers
from banxway.integrations.storage import store_attachment_bytes
from banxway.logs import get_logger
from banxway.resolvers.integrations import provider_config
from banxway.resolvers.sending import merge_headers, read_headers
from banxway.settings import Settings

log = get_logger("banxway.media")

NO_TRANSCRIPT = "No transcript: no AI provider is configured (OPENAI_API_KEY)."


def _allowed_origins(integration: Integration, settings: Settings) -> set[tuple[str, str, int]]:
    """The integration's API server, and the media hosts of the settings (over https)."""
    return {providers.origin(integration.base_url), *(("https", host, 443) for host in settings.provider_media_hosts)}


async def _load(session: AsyncSession, message_id: uuid.UUID) -> tuple[Message, Integration, MessageHeaders] | None:
    message = await session.get(Message, message_id, with_for_update=True)
    if message is None or message.integration_id is None:
        return None
    integration = await session.get(Integration, message.integration_id)
    if integration is None:
        return None
    return message, integration, await read_headers(session, message.id)


def _updated(ctx: SystemContext, session: AsyncSession, message: Message, changed: list[str]) -> None:
    ctx.record(
        session,
        MessageUpdated(thread_id=message.thread_id, message_id=message.id, changed=changed),
        message.organization_id,
    )


async def fetch_media(ctx: SystemContext, message_id: uuid.UUID) -> int:
    """Download the message's media not fetched yet; the number stored. Raises TransientProviderError."""
    settings = ctx.settings
    async with ctx.session() as session:
        loaded = await _load(session, message_id)
    if loaded is None:
        return 0
    message, integration, headers = loaded
    config = provider_config(integration, ctx.box, settings)
    fetched: dict[int, tuple[bytes, str]] = {}
    errors: dict[int, str] = {}
    for index, item in enumerate(headers.media):
        if item.attachment_id or item.error:
            continue
        try:
            fetched[index] = await providers.download(
                config, item.url, settings.attachment_max_bytes, allowed_origins=_allowed_origins(integration, settings)
            )
        except providers.PermanentProviderError as exc:
            errors[index] = exc.detail
    if not fetched and not errors:
        return 0
    async with ctx.transaction() as session:
        loaded = await _load(session, message_id)
        assert loaded is not None
        message, _, headers = loaded
        items = [item.model_copy() for item in headers.media]
        for index, (data, content_type) in fetched.items():
            if items[index].attachment_id:
                continue  # another run stored it meanwhile
            digest = await asyncio.to_thread(store_attachment_bytes, settings.data_dir, data)
            kind = items[index].content_type or content_type
            extension = mimetypes.guess_extension(kind) or ".bin"
            attachment = Attachment(
                organization_id=message.organization_id,
                message_id=message.id,
                filename=f"{message.channel.name.lower()}-media-{index + 1}{extension}",
                content_type=kind,
                size=len(data),
                sha256=digest,
            )
            session.add(attachment)
            await session.flush()
            items[index].attachment_id = str(attachment.id)
        for index, error in errors.items():
            items[index].error = error
        await merge_headers(session, message, {"media": [item.model_dump(mode="json") for item in items]})
        _updated(ctx, session, message, ["attachments"])
    log.info("media fetched", message=str(message_id), stored=len(fetched), failed=len(errors))
    return len(fetched)


async def transcribe(ctx: SystemContext, message_id: uuid.UUID) -> str | None:
    """Transcribe the call's recording into the message's body; the transcript (None without one)."""
    settings = ctx.settings
    async with ctx.session() as session:
        loaded = await _load(session, message_id)
    if loaded is None:
        return None
    message, integration, headers = loaded
    url = headers.recording_url
    if not url or headers.transcribed:
        return headers.transcript
    transcript: str | None = None
    error: str | None = None
    if not settings.openai_api_key:
        error = NO_TRANSCRIPT
    else:
        config = provider_config(integration, ctx.box, settings)
        try:
            audio, content_type = await providers.download(
                config, url, settings.attachment_max_bytes, allowed_origins=_allowed_origins(integration, settings)
            )
            transcript = await ai.speech_to_text(
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                model=settings.transcription_model,
                audio=audio,
                content_type=content_type,
            )
        except providers.PermanentProviderError as exc:
            error = f"No transcript: {exc.detail}"
        except ai.AIError as exc:
            if exc.transient:
                raise providers.TransientProviderError(exc.detail) from exc
            error = f"No transcript: {exc.detail}"
    async with ctx.transaction() as session:
        loaded = await _load(session, message_id)
        assert loaded is not None
        message, _, headers = loaded
        summary = headers.summary or message.body
        if transcript is not None:
            message.body = f"{summary}\n\nTranscript:\n{transcript.strip()}"
            await merge_headers(session, message, {"transcribed": True, "transcript": transcript})
        else:
            message.body = f"{summary} {error}"
            await merge_headers(session, message, {"transcribed": True, "transcript_error": error})
        _updated(ctx, session, message, ["body"])
    return transcript
