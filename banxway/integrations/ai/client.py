"""The OpenAI-compatible API through the `openai` client (base URL configurable, so that any compatible server
works): `speech_to_text`, the `OpenAIComposer` and `extract_with_llm`, and how the client's errors become
`AIError`s."""

from __future__ import annotations

import asyncio
import email.utils
import math
import mimetypes
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pydantic

from banxway.enums import EntityKind, Intent, Sentiment
from banxway.integrations.ai.base import AIError, ComposeContext, ComposeDelta, ComposeUsage, estimate_tokens
from banxway.integrations.ai.prompts import (
    _ExtractionOutput,
    extract_response_format,
    render_compose_prompt,
    render_extract_prompt,
)


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


# -- errors of the openai client ---------------------------------------------------------------------------------


def _retry_after(headers: httpx.Headers | Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date), or None."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            try:
                seconds = (email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


def _ai_error(exc: openai.OpenAIError, what: str) -> AIError:
    if isinstance(exc, openai.APITimeoutError):
        return AIError(f"{what} timed out", transient=True, code="AI_TIMEOUT")
    if isinstance(exc, openai.APIConnectionError):
        return AIError(f"{what} failed, the AI provider is unreachable: {exc}", transient=True)
    if isinstance(exc, openai.RateLimitError):
        wait = _retry_after(exc.response.headers)
        return AIError(f"{what} was rate limited", transient=True, code="AI_RATE_LIMITED", retry_after=wait)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 408:
            return AIError(f"{what} timed out at the AI provider", transient=True, code="AI_TIMEOUT")
        if exc.status_code >= 500 or exc.status_code == 409:
            return AIError(f"{what} failed at the AI provider ({exc.status_code}): {exc.message}", transient=True)
        return AIError(
            f"The AI provider refused {what.lower()} ({exc.status_code}): {exc.message}",
            transient=False,
            code="AI_REFUSED",
        )
    return AIError(f"{what} failed: {exc}", transient=True)


def _client(api_key: str, base_url: str | None, connect_timeout: float, read_timeout: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        max_retries=0,  # rate limits are retried here, the rest by the caller
    )


# -- the composer ------------------------------------------------------------------------------------------------


class OpenAIComposer:
    """Drafts by an OpenAI-compatible chat completions API: one streaming request for all the variants."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        max_tokens: int = 800,
        temperature: float = 0.4,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retry_wait: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        self.name = model
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_retry_wait = max_retry_wait
        self.max_attempts = max(1, max_attempts)
        self._api_key = api_key
        self._base_url = base_url
        self._timeouts = (connect_timeout, read_timeout)

    async def stream(self, context: ComposeContext, *, variants: int) -> AsyncIterator[ComposeDelta | ComposeUsage]:
        if variants < 1:
            raise ValueError(f"variants must be at least 1, not {variants}")
        messages = render_compose_prompt(context)
        texts = [""] * variants
        finished: dict[int, str] = {}  # choice index: finish_reason
        usage: ComposeUsage | None = None
        client = _client(self._api_key, self._base_url, *self._timeouts)
        try:  # closing the response and the client, whatever ends the loop: its end, an error, a cancellation
            chunks = await self._open(client, messages, variants)
            async with chunks:
                try:
                    async for chunk in chunks:
                        if chunk.usage is not None:
                            usage = ComposeUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                        for choice in chunk.choices:
                            if choice.delta is not None and choice.delta.content and choice.index < variants:
                                texts[choice.index] += choice.delta.content
                                yield ComposeDelta(variant=choice.index, text=choice.delta.content)
                            if choice.finish_reason is not None:
                                finished[choice.index] = choice.finish_reason
                except openai.OpenAIError as exc:
                    raise _ai_error(exc, "The draft") from exc
                except ValueError as exc:  # a chunk that is not JSON
                    raise AIError(f"The AI provider sent a malformed stream: {exc}", transient=True) from exc
        finally:
            await client.close()
        missing = [i for i in range(variants) if i not in finished]
        if missing:
            raise AIError(f"The draft stream was cut short (variants {missing} unfinished)", transient=True)
        if "content_filter" in finished.values():
            raise AIError("The AI provider's content filter stopped the draft", transient=False, code="AI_REFUSED")
        if usage is None:
            prompt = sum(estimate_tokens(m["content"]) for m in messages)
            usage = ComposeUsage(prompt, sum(estimate_tokens(t) for t in texts))
        yield usage

    async def _open(self, client: openai.AsyncOpenAI, messages: list[dict[str, str]], variants: int) -> Any:
        """The stream of chunks, once the response has begun; a 429 with a short Retry-After is waited out."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    n=variants,
                    stream=True,
                    stream_options={"include_usage": True},
                    max_completion_tokens=self.max_tokens,
                    temperature=self.temperature,
                )
            except openai.RateLimitError as exc:
                error = _ai_error(exc, "The draft")
                wait = error.retry_after
                if wait is None or wait > self.max_retry_wait or attempt == self.max_attempts:
                    raise error from exc
                await asyncio.sleep(wait)
            except openai.OpenAIError as exc:
                raise _ai_error(exc, "The draft") from exc
        raise AssertionError("unreachable")  # pragma: no cover


# -- extraction --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LlmEntity:
    kind: EntityKind
    text: str  # as written in the message


@dataclass(frozen=True, slots=True)
class LlmExtraction:
    language: str | None  # ISO 639-1 ("en")
    sentiment: Sentiment | None
    sentiment_score: float | None  # -1.0 (very negative) .. 1.0 (very positive)
    intent: Intent | None
    entities: tuple[LlmEntity, ...]
    usage: ComposeUsage


async def extract_with_llm(
    *,
    api_key: str,
    base_url: str | None,
    model: str,
    subject: str | None,
    body: str,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> LlmExtraction:
    """Language, sentiment, intent and entities of a message by one chat completion. Raises AIError
    (AI_INVALID_OUTPUT when the reply does not hold to the schema)."""
    messages = render_extract_prompt(subject=subject, body=body)
    client = _client(api_key, base_url, connect_timeout, read_timeout)
    try:
        completion = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            response_format=extract_response_format(),  # type: ignore[arg-type]
            temperature=0,
        )
    except openai.OpenAIError as exc:
        raise _ai_error(exc, "The analysis") from exc
    finally:
        await client.close()
    if not completion.choices:
        raise AIError("The AI provider returned no choice", transient=False, code="AI_INVALID_OUTPUT")
    message = completion.choices[0].message
    if getattr(message, "refusal", None):
        raise AIError(f"The AI provider refused the analysis: {message.refusal}", transient=False, code="AI_REFUSED")
    try:
        output = _ExtractionOutput.model_validate_json(message.content or "")
    except pydantic.ValidationError as exc:
        raise AIError(
            f"The analysis is not the JSON asked for: {exc.errors(include_url=False)[:3]}",
            transient=False,
            code="AI_INVALID_OUTPUT",
        ) from exc
    language = (output.language or "").strip().lower()
    entities = dict.fromkeys((e.kind, e.text.strip()) for e in output.entities if e.text.strip())
    if completion.usage is not None:
        usage = ComposeUsage(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    else:
        usage = ComposeUsage(
            sum(estimate_tokens(m["content"]) for m in messages), estimate_tokens(message.content or "")
        )
    return LlmExtraction(
        language=language if re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", language) else None,
        sentiment=output.sentiment,
        sentiment_score=output.sentiment_score if output.sentiment is not None else None,
        intent=output.intent,
        entities=tuple(LlmEntity(kind, text) for kind, text in entities),
        usage=usage,
    )
