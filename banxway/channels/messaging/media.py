"""Heavy webhook work, run by actors: downloading inbound media into attachment storage, and transcribing
recorded calls with an OpenAI-compatible speech-to-text API.

Downloads come only from the integration's API host (and BANXWAY_PROVIDER_MEDIA_HOSTS), with the
integration's credentials, at most BANXWAY_ATTACHMENT_MAX_BYTES. A permanent failure is written on the
message (the media item's `error`, or the call's `transcript_error`); a transient one raises for a retry.
"""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from banxway import events
from banxway.broadcast import Broadcast
from banxway.channels.delivery import merge_headers
from banxway.channels.email.ingest import store_attachment_bytes
from banxway.channels.messaging import providers
from banxway.db.models import Attachment, Integration, Message
from banxway.db.session import system_session
from banxway.events import MessageUpdated
from banxway.logs import get_logger
from banxway.secrets import SecretBox
from banxway.settings import Settings

log = get_logger("banxway.media")

NO_TRANSCRIPT = "No transcript: no AI provider is configured (OPENAI_API_KEY)."


def _allowed_hosts(integration: Integration, settings: Settings) -> set[str]:
    return {httpx.URL(integration.base_url).host, *settings.provider_media_hosts}


async def _load(session: AsyncSession, message_id: uuid.UUID) -> tuple[Message, Integration, dict[str, Any]] | None:
    message = await session.get(Message, message_id, with_for_update=True)
    if message is None or message.integration_id is None:
        return None
    integration = await session.get(Integration, message.integration_id)
    if integration is None:
        return None
    headers = await session.scalar(select(Message.headers).where(Message.id == message.id)) or {}
    return message, integration, headers


def _updated(session: AsyncSession, message: Message, changed: list[str]) -> None:
    events.record(
        session,
        MessageUpdated(thread_id=message.thread_id, message_id=message.id, changed=changed),
        organization_id=message.organization_id,
        actor_id=None,
    )


async def fetch_media(
    sessionmaker: async_sessionmaker[AsyncSession],
    broadcast: Broadcast,
    settings: Settings,
    secret_key: str,
    message_id: uuid.UUID,
) -> int:
    """Download the message's media not fetched yet; the number stored. Raises TransientProviderError."""
    async with system_session(sessionmaker) as session:
        loaded = await _load(session, message_id)
    if loaded is None:
        return 0
    message, integration, headers = loaded
    from banxway.resolvers.integrations import provider_config

    config = provider_config(integration, SecretBox(secret_key), settings)
    items = [dict(item) for item in headers.get("media") or []]
    fetched: dict[int, tuple[bytes, str]] = {}
    errors: dict[int, str] = {}
    for index, item in enumerate(items):
        if item.get("attachment_id") or item.get("error"):
            continue
        try:
            fetched[index] = await providers.download(
                config, item["url"], settings.attachment_max_bytes, allowed_hosts=_allowed_hosts(integration, settings)
            )
        except providers.PermanentProviderError as exc:
            errors[index] = exc.detail
    if not fetched and not errors:
        return 0
    async with system_session(sessionmaker) as session:
        async with session.begin():
            loaded = await _load(session, message_id)
            assert loaded is not None
            message, _, headers = loaded
            items = [dict(item) for item in headers.get("media") or []]
            for index, (data, content_type) in fetched.items():
                if items[index].get("attachment_id"):
                    continue  # another run stored it meanwhile
                digest = await asyncio.to_thread(store_attachment_bytes, settings.data_dir, data)
                kind = items[index].get("content_type") or content_type
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
                items[index]["attachment_id"] = str(attachment.id)
            for index, error in errors.items():
                items[index]["error"] = error
            await merge_headers(session, message, {"media": items})
            _updated(session, message, ["attachments"])
        await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    log.info("media fetched", message=str(message_id), stored=len(fetched), failed=len(errors))
    return len(fetched)


async def transcribe(
    sessionmaker: async_sessionmaker[AsyncSession],
    broadcast: Broadcast,
    settings: Settings,
    secret_key: str,
    message_id: uuid.UUID,
) -> str | None:
    """Transcribe the call's recording into the message's body; the transcript (None without one)."""
    async with system_session(sessionmaker) as session:
        loaded = await _load(session, message_id)
    if loaded is None:
        return None
    message, integration, headers = loaded
    url = headers.get("recording_url")
    if not url or headers.get("transcribed"):
        return headers.get("transcript")
    transcript: str | None = None
    error: str | None = None
    if not settings.openai_api_key:
        error = NO_TRANSCRIPT
    else:
        from banxway.resolvers.integrations import provider_config

        config = provider_config(integration, SecretBox(secret_key), settings)
        try:
            audio, content_type = await providers.download(
                config, url, settings.attachment_max_bytes, allowed_hosts=_allowed_hosts(integration, settings)
            )
            transcript = await _speech_to_text(settings, audio, content_type)
        except providers.PermanentProviderError as exc:
            error = f"No transcript: {exc.detail}"
    async with system_session(sessionmaker) as session:
        async with session.begin():
            loaded = await _load(session, message_id)
            assert loaded is not None
            message, _, headers = loaded
            summary = headers.get("summary") or message.body
            if transcript is not None:
                message.body = f"{summary}\n\nTranscript:\n{transcript.strip()}"
                await merge_headers(session, message, {"transcribed": True, "transcript": transcript})
            else:
                message.body = f"{summary} {error}"
                await merge_headers(session, message, {"transcribed": True, "transcript_error": error})
            _updated(session, message, ["body"])
        await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    return transcript


async def _speech_to_text(settings: Settings, audio: bytes, content_type: str) -> str:
    import openai

    client = openai.AsyncOpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=httpx.Timeout(120.0, connect=10.0),
        max_retries=0,  # the actor retries
    )
    extension = mimetypes.guess_extension(content_type) or ".mp3"
    try:
        result = await client.audio.transcriptions.create(
            model=settings.transcription_model, file=(f"call{extension}", audio, content_type)
        )
    except (
        openai.APITimeoutError,
        openai.APIConnectionError,
        openai.RateLimitError,
        openai.InternalServerError,
    ) as exc:
        raise providers.TransientProviderError(f"Transcription failed for now: {exc}") from exc
    except openai.APIStatusError as exc:
        raise providers.PermanentProviderError(f"The AI provider refused the transcription: {exc.message}") from exc
    finally:
        await client.close()
    return result if isinstance(result, str) else result.text
