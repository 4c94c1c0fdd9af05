"""The AI provider: an OpenAI-compatible API through the `openai` client (base URL configurable, so that any
compatible server works). Today: speech to text for recorded calls."""

from __future__ import annotations

import mimetypes

import httpx
import openai


class AIError(Exception):
    """The AI provider failed; `transient` when a later try may succeed (timeout, rate limit, 5xx)."""

    def __init__(self, detail: str, *, transient: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient


async def speech_to_text(*, api_key: str, base_url: str | None, model: str, audio: bytes, content_type: str) -> str:
    """The transcript of `audio`. Raises AIError."""
    client = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=httpx.Timeout(120.0, connect=10.0),
        max_retries=0,  # the caller's actor retries
    )
    extension = mimetypes.guess_extension(content_type) or ".mp3"
    try:
        result = await client.audio.transcriptions.create(model=model, file=(f"call{extension}", audio, content_type))
    except (
        openai.APITimeoutError,
        openai.APIConnectionError,
        openai.RateLimitError,
        openai.InternalServerError,
    ) as exc:
        raise AIError(f"Transcription failed for now: {exc}", transient=True) from exc
    except openai.APIStatusError as exc:
        raise AIError(f"The AI provider refused the transcription: {exc.message}", transient=False) from exc
    finally:
        await client.close()
    return result if isinstance(result, str) else result.text
