"""The AI agent's provider side: embeddings of knowledge chunks and questions (`/v1/embeddings` of an
OpenAI-compatible API), a generative answer grounded in retrieved passages (one chat completion), and the built-in
extractive answer (the best-matching passage, quoted, with its source) that needs neither key nor network."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import openai

from banxway.integrations.ai.base import AIError, estimate_tokens
from banxway.integrations.ai.client import _ai_error, _client


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk as an answer cites it."""

    title: str
    text: str
    url: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    tokens: int  # spent at the provider (0 for the built-in answer)


async def embed(
    *, api_key: str, base_url: str | None, model: str, texts: Sequence[str], read_timeout: float = 30.0
) -> tuple[list[list[float]], int]:
    """(one embedding per text, in order; the tokens spent). Raises AIError."""
    if not texts:
        return [], 0
    client = _client(api_key, base_url, 5.0, read_timeout)
    try:
        response = await client.embeddings.create(model=model, input=list(texts))
    except openai.OpenAIError as exc:
        raise _ai_error(exc, "The embedding") from exc
    finally:
        await client.close()
    vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
    if len(vectors) != len(texts):
        raise AIError(f"{len(vectors)} embeddings for {len(texts)} texts", transient=False, code="AI_INVALID_OUTPUT")
    used = response.usage.total_tokens if response.usage else sum(estimate_tokens(t) for t in texts)
    return vectors, used


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


_TONES = {
    "FRIENDLY": "Be warm and friendly, and brief.",
    "FORMAL": "Be formal and courteous.",
    "CONCISE": "Be as short as possible.",
}
_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = (
    "a an and are as at be by can do does for from how i if in is it me my of on or our please the their there "
    "this to was we what when where which who why will with you your"
)
_STOP = frozenset(_STOP_WORDS.split())


def _words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP}


def _best_sentences(question: str, text: str, limit: int = 400) -> str:
    """The sentences of `text` that share most words with the question (in their order), within `limit`."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    if not sentences:
        return text[:limit]
    wanted = _words(question)
    scored = sorted(range(len(sentences)), key=lambda i: (-len(wanted & _words(sentences[i])), i))
    chosen: list[int] = []
    size = 0
    for index in scored:
        if chosen and (size + len(sentences[index]) > limit or not wanted & _words(sentences[index])):
            break
        chosen.append(index)
        size += len(sentences[index]) + 1
    passage = " ".join(sentences[i] for i in sorted(chosen))
    return passage if len(passage) <= limit else passage[: limit - 1].rstrip() + "…"


def citation(passage: Passage) -> str:
    return f"{passage.title} ({passage.url})" if passage.url else passage.title


def extractive_answer(question: str, passages: Sequence[Passage], *, tone: str = "FRIENDLY") -> Answer:
    """The built-in answer: the best passage's best sentences, quoted, and its source."""
    best = passages[0]
    quote = _best_sentences(question, best.text)
    opening = {"FORMAL": "Thank you for your message.", "CONCISE": ""}.get(tone, "Thanks for asking!")
    lead = f"{opening} " if opening else ""
    return Answer(f'{lead}From our "{best.title}":\n\n"{quote}"\n\nSource: {citation(best)}', 0)


def _prompt(question: str, passages: Sequence[Passage], tone: str, organization: str) -> list[dict[str, str]]:
    sources = "\n\n".join(f"[{i + 1}] {citation(p)}\n{p.text}" for i, p in enumerate(passages))
    system = (
        f"You answer customers of {organization}, a freight forwarder, on its behalf. Answer only from the numbered "
        "sources below; if they do not hold the answer, say that a colleague will follow up. Cite the sources you "
        f"used as [1], [2]. {_TONES.get(tone, _TONES['FRIENDLY'])}\n\nSources:\n{sources}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


async def generative_answer(
    *,
    api_key: str,
    base_url: str | None,
    model: str,
    question: str,
    passages: Sequence[Passage],
    tone: str,
    organization: str,
    read_timeout: float = 30.0,
) -> Answer:
    """An answer written by the chat model from `passages` only, with the sources listed after it. Raises
    AIError."""
    messages = _prompt(question, passages, tone, organization)
    client = _client(api_key, base_url, 5.0, read_timeout)
    try:
        completion = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0.2,
            max_completion_tokens=500,
        )
    except openai.OpenAIError as exc:
        raise _ai_error(exc, "The answer") from exc
    finally:
        await client.close()
    content = (completion.choices[0].message.content or "").strip() if completion.choices else ""
    if not content:
        raise AIError("The AI provider returned an empty answer", transient=False, code="AI_INVALID_OUTPUT")
    used = (
        completion.usage.total_tokens
        if completion.usage
        else sum(estimate_tokens(m["content"]) for m in messages) + estimate_tokens(content)
    )
    sources = "\n".join(f"[{i + 1}] {citation(p)}" for i, p in enumerate(passages))
    return Answer(f"{content}\n\nSources:\n{sources}", used)
