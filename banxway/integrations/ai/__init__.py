"""The AI provider: an OpenAI-compatible API through the `openai` client (base URL configurable, so that any
compatible server works), and a built-in composer that needs neither key nor network.

* `speech_to_text`: the transcript of a recorded call.
* Compose: `render_compose_prompt` (the versioned template `templates/compose-v1.md`), `fit_history`, and the
  `ComposeProvider`s `OpenAIComposer` (one streaming chat completion, n variants) and `BuiltinComposer` (a grounded
  draft from the context's facts alone); `compose_provider` picks one.
* `extract_with_llm`: language, sentiment, intent and freight entities of a message, as JSON held to a strict schema
  (`templates/extract-v1.md`).

Errors are `AIError` with a `code`; a transient one may succeed later.

Layout: `base` (the error, the context's data, the `ComposeProvider` interface, history fitting), `prompts` (the
versioned templates and what fills them), `client` (everything that speaks to the OpenAI-compatible API) and
`builtin` (the built-in composer)."""

from __future__ import annotations

from banxway.integrations.ai.base import (
    AIError,
    ComposeContext,
    ComposeDelta,
    ComposeProvider,
    ComposeUsage,
    HistoryMessage,
    MilestoneFact,
    ShipmentFacts,
    estimate_tokens,
    fit_history,
)
from banxway.integrations.ai.builtin import BuiltinComposer
from banxway.integrations.ai.client import (
    LlmEntity,
    LlmExtraction,
    OpenAIComposer,
    extract_with_llm,
    speech_to_text,
)
from banxway.integrations.ai.prompts import (
    COMPOSE_PROMPT_VERSION,
    EXTRACT_PROMPT_VERSION,
    extract_response_format,
    render_compose_prompt,
    render_extract_prompt,
)


def compose_provider(
    *, api_key: str | None, base_url: str | None, model: str, word_delay: float = 0.03
) -> ComposeProvider:
    """The OpenAI-compatible composer when a key is configured, else the built-in one."""
    if not api_key:
        return BuiltinComposer(word_delay=word_delay)
    return OpenAIComposer(api_key=api_key, base_url=base_url, model=model)


__all__ = [
    "COMPOSE_PROMPT_VERSION",
    "EXTRACT_PROMPT_VERSION",
    "AIError",
    "BuiltinComposer",
    "ComposeContext",
    "ComposeDelta",
    "ComposeProvider",
    "ComposeUsage",
    "HistoryMessage",
    "LlmEntity",
    "LlmExtraction",
    "MilestoneFact",
    "OpenAIComposer",
    "ShipmentFacts",
    "compose_provider",
    "estimate_tokens",
    "extract_response_format",
    "extract_with_llm",
    "fit_history",
    "render_compose_prompt",
    "render_extract_prompt",
    "speech_to_text",
]
